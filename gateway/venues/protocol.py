"""The one interface every liquidity source implements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from gateway.domain.foreign_text import printable
from gateway.domain.instruments import Instrument
from gateway.domain.market import (
    Balance,
    FeeSchedule,
    OrderBook,
    PublicTrade,
    VenueKind,
    VenueOrder,
    VenueOrderRequest,
    VenuePosition,
)


class VenueError(Exception):
    """A venue refused or failed a request. `code` is stable across venue kinds."""

    code = "venue_error"

    def __init__(self, message: str, *, venue: str, code: str | None = None) -> None:
        super().__init__(printable(message))  # often the venue's own words
        self.venue = venue
        if code is not None:
            self.code = code


class VenueUnavailable(VenueError):
    """The venue cannot be reached (network, maintenance, rate limit): retry later."""

    code = "venue_unavailable"


class VenueOrderNotFound(VenueError):
    code = "venue_order_not_found"


class VenueInsufficientFunds(VenueError):
    code = "venue_insufficient_funds"


class VenueRejected(VenueError):
    code = "venue_rejected"


@runtime_checkable
class Venue(Protocol):
    """A liquidity source. Instruments are named by our symbols (e.g. `WETH/USDC`)."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> VenueKind: ...

    async def load_instruments(self) -> list[Instrument]:
        """The instruments this venue trades that the gateway knows."""
        ...

    async def fetch_order_book(self, instrument: str, depth: int = 20) -> OrderBook: ...

    def stream_order_books(self, instruments: Sequence[str]) -> AsyncIterator[OrderBook]:
        """Books as they change; raises `VenueUnavailable` when the stream breaks."""
        ...

    async def fetch_trades(
        self, instrument: str, since: datetime | None = None, limit: int = 1000
    ) -> list[PublicTrade]:
        """Public market trades (everyone's), oldest first: with `since`, the first `limit`
        trades at or after it; without, the most recent `limit`. A page shorter than
        `limit` does not prove there are no more: page on with `since` = the last timestamp
        (and dedupe by `trade_id`, since trades at that instant come again)."""
        ...

    async def place_order(self, request: VenueOrderRequest) -> VenueOrder: ...

    async def cancel_order(self, venue_order_id: str, instrument: str) -> VenueOrder: ...

    async def fetch_order(self, venue_order_id: str, instrument: str) -> VenueOrder: ...

    async def find_order(self, client_order_id: str, instrument: str) -> VenueOrder | None:
        """Our order by the client order id we sent it with: how an order whose answer was
        lost (a timeout, a stop) is found. None only when the venue proves it never had it;
        raises `VenueUnavailable` when it cannot tell."""
        ...

    async def fetch_balances(self) -> dict[str, Balance]: ...

    async def fetch_positions(self) -> list[VenuePosition]: ...

    def fees(self, instrument: str) -> FeeSchedule: ...

    async def close(self) -> None: ...
