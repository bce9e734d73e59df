"""The gateway's own book behind the `Venue` protocol.

Attached to the gateway's `InternalBook` (`attach`), it publishes that book's depth, so the
consolidated book and the smart order router see internal liquidity (the router takes it
through `InternalBook.take`, not through `place_order`). Unattached (tests of the venue
protocol), it is a stand-alone book that rests limit orders by price and time and refuses
orders that would cross.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from gateway.domain.clock import Clock
from gateway.domain.instruments import Instrument, InstrumentCatalogue
from gateway.domain.market import (
    Balance,
    BookLevel,
    FeeSchedule,
    OrderBook,
    PublicTrade,
    VenueKind,
    VenueOrder,
    VenueOrderRequest,
    VenueOrderStatus,
    VenuePosition,
)
from gateway.domain.orders import OrderType, Side
from gateway.venues.protocol import VenueOrderNotFound, VenueRejected

if TYPE_CHECKING:
    from gateway.oms.internal_book import InternalBook


class InternalVenue:
    def __init__(self, catalogue: InstrumentCatalogue, clock: Clock, fees: FeeSchedule) -> None:
        self._catalogue = catalogue
        self._clock = clock
        self._fees = fees
        self._orders: dict[str, VenueOrder] = {}
        self._ids = itertools.count(1)
        self._sequence = itertools.count(1)
        self._changed = asyncio.Event()
        self._depth: Callable[[str, int], tuple[list[BookLevel], list[BookLevel]]] | None = None
        self._changed_books: Callable[[], set[str]] | None = None

    def attach(self, book: InternalBook) -> None:
        """Publish `book`'s depth instead of this venue's own orders."""
        self._depth = book.depth
        self._changed_books = book.changed_books
        book.on_change(self._changed.set)

    @property
    def name(self) -> str:
        return "internal"

    @property
    def kind(self) -> VenueKind:
        return VenueKind.INTERNAL

    async def load_instruments(self) -> list[Instrument]:
        return list(self._catalogue)

    def _book(self, instrument: str, depth: int) -> OrderBook:
        if self._depth is not None:
            bid_levels, ask_levels = self._depth(instrument, depth)
            return OrderBook(
                self.name,
                instrument,
                tuple(bid_levels),
                tuple(ask_levels),
                self._clock.now(),
                next(self._sequence),
            )
        bids: dict[Decimal, Decimal] = {}
        asks: dict[Decimal, Decimal] = {}
        for order in self._orders.values():
            if order.instrument != instrument or order.status is not VenueOrderStatus.OPEN:
                continue
            assert order.price is not None
            side = bids if order.side is Side.BUY else asks
            side[order.price] = side.get(order.price, Decimal(0)) + order.remaining
        return OrderBook(
            self.name,
            instrument,
            tuple(BookLevel(p, q) for p, q in sorted(bids.items(), reverse=True)[:depth]),
            tuple(BookLevel(p, q) for p, q in sorted(asks.items())[:depth]),
            self._clock.now(),
            next(self._sequence),
        )

    async def fetch_order_book(self, instrument: str, depth: int = 20) -> OrderBook:
        self._catalogue.get(instrument)
        return self._book(instrument, depth)

    async def stream_order_books(self, instruments: Sequence[str]) -> AsyncIterator[OrderBook]:
        """Every book now, then again whenever the book changes, and nothing while it is
        quiet: the market-data hub never takes the internal book's silence for staleness
        (it is stale only while this stream fails or once its feed task ended)."""
        changed: Collection[str] = set(instruments)  # every book first
        while True:
            self._changed.clear()  # before reading: a change while we yield comes round again
            for symbol in instruments:
                if symbol in changed:
                    yield self._book(symbol, 50)
            await self._changed.wait()
            # only the books that changed (all of them for this venue's own orders)
            changed = instruments if self._changed_books is None else self._changed_books()

    async def fetch_trades(
        self, instrument: str, since: datetime | None = None, limit: int = 1000
    ) -> list[PublicTrade]:
        """Always empty: this book does not match yet, so it has no trades to publish
        (internal fills happen in `gateway.matching` and are not recorded here)."""
        self._catalogue.get(instrument)
        return []

    async def _notify(self) -> None:
        self._changed.set()

    async def place_order(self, request: VenueOrderRequest) -> VenueOrder:
        rules = self._catalogue.get(request.instrument).rules
        if request.order_type is not OrderType.LIMIT or request.price is None:
            raise VenueRejected("the internal book takes limit orders only", venue=self.name)
        rules.check_price(request.price)
        rules.check_quantity(request.quantity)
        book = self._book(request.instrument, 1)
        best = book.best_ask if request.side is Side.BUY else book.best_bid
        if best is not None and (
            (request.side is Side.BUY and request.price >= best.price)
            or (request.side is Side.SELL and request.price <= best.price)
        ):
            raise VenueRejected("would cross: matching is not enabled yet", venue=self.name)
        order = VenueOrder(
            venue=self.name,
            venue_order_id=f"int-{next(self._ids)}",
            instrument=request.instrument,
            side=request.side,
            order_type=request.order_type,
            quantity=request.quantity,
            price=request.price,
            status=VenueOrderStatus.OPEN,
            filled=Decimal(0),
            average_price=None,
            client_order_id=request.client_order_id,
            timestamp=self._clock.now(),
        )
        self._orders[order.venue_order_id] = order
        await self._notify()
        return order

    async def cancel_order(self, venue_order_id: str, instrument: str) -> VenueOrder:
        order = await self.fetch_order(venue_order_id, instrument)
        if order.status is not VenueOrderStatus.OPEN:
            raise VenueRejected(f"order {venue_order_id} is {order.status.value}", venue=self.name)
        cancelled = replace(order, status=VenueOrderStatus.CANCELED)
        self._orders[venue_order_id] = cancelled
        await self._notify()
        return cancelled

    async def fetch_order(self, venue_order_id: str, instrument: str) -> VenueOrder:
        order = self._orders.get(venue_order_id)
        if order is None or order.instrument != instrument:
            raise VenueOrderNotFound(f"no order {venue_order_id}", venue=self.name)
        return order

    async def find_order(self, client_order_id: str, instrument: str) -> VenueOrder | None:
        for order in self._orders.values():
            if order.client_order_id == client_order_id and order.instrument == instrument:
                return order
        return None

    async def fetch_balances(self) -> dict[str, Balance]:
        return {}

    async def fetch_positions(self) -> list[VenuePosition]:
        return []

    def fees(self, instrument: str) -> FeeSchedule:
        return self._fees

    async def close(self) -> None:
        return None
