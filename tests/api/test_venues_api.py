"""GET /v1/venues: each market-data feed, live or stale by the same rule as the consolidated
book (the hub's `stale_venues()`), with the rule of its kind, its last update and its
failures. Time is a manual clock: staleness comes from moving it, never from waiting."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.config import Settings
from gateway.devnet.catalogue import devnet_catalogue
from gateway.domain.instruments import Instrument
from gateway.domain.market import BookLevel, FeeSchedule, OrderBook, VenueKind
from gateway.runtime import Runtime
from gateway.venues.internal import InternalVenue
from gateway.venues.market_data import FeedStatus
from tests.conftest import ManualClock
from tests.operator_access import OPERATOR_TOKEN, operator_headers

SYMBOL = "WETH/USDC"


class SilentExchange:
    """An exchange that sends one book on its first connection and then says nothing, until
    the test breaks its stream; it never sends a book again after that."""

    kind = VenueKind.CEX
    name = "exchange"

    def __init__(self) -> None:
        self.delivered = threading.Event()  # set once the hub folded the first book in
        self.loop: asyncio.AbstractEventLoop | None = None
        self.broken: asyncio.Event | None = None
        self.connections = 0
        self.reconnecting: asyncio.Event | None = None

    async def load_instruments(self) -> list[Instrument]:
        return [devnet_catalogue().get(SYMBOL)]

    def fees(self, instrument: str) -> FeeSchedule:
        return FeeSchedule(Decimal(0), Decimal("0.001"))

    async def stream_order_books(self, instruments: Sequence[str]) -> AsyncIterator[OrderBook]:
        self.connections += 1
        self.loop = asyncio.get_running_loop()
        self.broken = asyncio.Event()
        if self.connections == 1:
            self.reconnecting = asyncio.Event()
        else:
            assert self.reconnecting is not None
            await self.reconnecting.wait()  # the test lets it come back
        yield OrderBook(
            self.name,
            SYMBOL,
            (BookLevel(Decimal("2999"), Decimal("2")),),
            (BookLevel(Decimal("3001"), Decimal("3")),),
            datetime.now(UTC),
        )
        self.delivered.set()  # resumed: the hub applied the book before asking again
        await self.broken.wait()
        if self.connections == 1:
            raise ConnectionError("exchange went away")
        await asyncio.Event().wait()  # reconnected with one book, and silent for good

    def break_stream(self) -> None:
        assert self.loop is not None and self.broken is not None
        self.loop.call_soon_threadsafe(self.broken.set)

    def let_it_reconnect(self) -> None:
        assert self.loop is not None and self.reconnecting is not None
        self.loop.call_soon_threadsafe(self.reconnecting.set)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[TestClient, ManualClock, SilentExchange]]:
    clock = ManualClock()
    exchange = SilentExchange()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'venues.db'}",
        operator_token=OPERATOR_TOKEN,
        venue_stale_after_seconds=5,
    )
    catalogue = devnet_catalogue()
    internal = InternalVenue(catalogue, clock, FeeSchedule(Decimal(0), Decimal(0)))
    venues: list[Any] = [internal, exchange]
    rt = Runtime.build(settings, clock=clock, venues=venues)
    internal_live = threading.Event()
    rt.market_data.on_status_change(
        lambda name, status: (
            internal_live.set() if (name, status) == ("internal", FeedStatus.LIVE) else None
        )
    )
    with TestClient(create_app(settings, runtime=rt), headers=operator_headers()) as client:
        assert exchange.delivered.wait(10), "the exchange's first book never reached the hub"
        assert internal_live.wait(10), "the internal book's feed never went live"
        yield client, clock, exchange


def venues(client: TestClient) -> dict[str, dict[str, Any]]:
    response = client.get("/v1/venues")
    assert response.status_code == 200, response.text
    return {v["name"]: v for v in response.json()["venues"]}


def stale_in_book(client: TestClient) -> list[str]:
    response = client.get(f"/v1/book/{SYMBOL}")
    assert response.status_code == 200, response.text
    stale: list[str] = response.json()["stale_venues"]
    return stale


def test_each_venue_with_its_kind_rule_and_last_update(
    gateway: tuple[TestClient, ManualClock, SilentExchange],
) -> None:
    client, clock, _ = gateway
    answer = client.get("/v1/venues").json()
    assert answer["stale_after_seconds"] == "5"
    assert answer["as_of"] == clock.now().isoformat().replace("+00:00", "Z")
    feeds = {v["name"]: v for v in answer["venues"]}
    assert set(feeds) == {"exchange", "internal"}
    exchange = feeds["exchange"]
    assert exchange["kind"] == "cex" and exchange["staleness"] == "silence"
    assert exchange["state"] == "live" and exchange["feed_status"] == "live"
    assert exchange["instruments"] == [SYMBOL]
    assert exchange["last_update"] == answer["as_of"]
    assert exchange["age_seconds"] == "0.000"
    assert exchange["failures"] == 0 and exchange["last_error"] is None
    assert exchange["reconnects"] == 0  # its first book is no reconnect
    assert "silent for longer than stale_after" in exchange["staleness_rule"]
    assert feeds["internal"]["kind"] == "internal"
    assert feeds["internal"]["staleness"] == "feed_alive"


def test_a_silent_exchange_turns_stale_exactly_when_the_book_drops_it(
    gateway: tuple[TestClient, ManualClock, SilentExchange],
) -> None:
    client, clock, _ = gateway
    clock.advance(seconds=5)  # silent for exactly stale_after: still live
    assert venues(client)["exchange"]["state"] == "live"
    assert venues(client)["exchange"]["age_seconds"] == "5.000"
    assert "exchange" not in stale_in_book(client)

    clock.advance(seconds=0.001)
    exchange = venues(client)["exchange"]
    assert exchange["state"] == "stale" and exchange["age_seconds"] == "5.001"
    assert "exchange" in stale_in_book(client)
    # the internal book is never stale for silence
    clock.advance(seconds=600)
    assert venues(client)["internal"]["state"] == "live"
    assert "internal" not in stale_in_book(client)


def test_a_failing_stream_is_stale_at_once_with_its_error_and_failures(
    gateway: tuple[TestClient, ManualClock, SilentExchange],
) -> None:
    client, _, exchange = gateway
    rt: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    failed, back = threading.Event(), threading.Event()
    rt.market_data.on_status_change(
        lambda name, status: (
            failed.set() if (name, status) == ("exchange", FeedStatus.STALE) else None
        )
    )
    exchange.break_stream()
    assert failed.wait(10)
    feed = venues(client)["exchange"]  # no time passed on the clock
    assert feed["state"] == "stale" and feed["feed_status"] == "stale"
    assert feed["failures"] == 1
    assert feed["last_error"] == "ConnectionError: exchange went away"
    assert "exchange" in stale_in_book(client)
    # the feed reconnects (after its backoff) and the venue is live again, counted once
    rt.market_data.on_status_change(
        lambda name, status: back.set() if (name, status) == ("exchange", FeedStatus.LIVE) else None
    )
    exchange.let_it_reconnect()
    assert back.wait(10)
    feed = venues(client)["exchange"]
    assert feed["state"] == "live" and feed["reconnects"] == 1 and feed["failures"] == 0
