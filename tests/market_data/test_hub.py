"""The market-data hub: consolidation from live venues, staleness, recovery, conflation, and
subscribers told only of the levels they read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from gateway.devnet.catalogue import devnet_catalogue
from gateway.domain.market import BookLevel, FeeSchedule, OrderBook, VenueKind, VenueOrderRequest
from gateway.domain.orders import OrderType, Side
from gateway.oms.service import SystemClock
from gateway.venues.internal import InternalVenue
from gateway.venues.market_data import Backoff, FeedStatus, MarketDataHub

ZERO = FeeSchedule(Decimal(0), Decimal(0))
SYMBOL = "WETH/USDC"


class ScriptedVenue:
    """A venue whose stream the test drives: push books, break it, or let it hang."""

    kind = VenueKind.CEX

    def __init__(self, name: str, fee_bps: int = 0) -> None:
        self.name = name
        self._fees = FeeSchedule(Decimal(0), Decimal(fee_bps))
        self.queue: asyncio.Queue[OrderBook | Exception] = asyncio.Queue()
        self.connections = 0

    def push(self, bid: str, ask: str) -> None:
        self.queue.put_nowait(
            OrderBook(
                self.name,
                SYMBOL,
                (BookLevel(Decimal(bid), Decimal(1)),),
                (BookLevel(Decimal(ask), Decimal(1)),),
                datetime.now(UTC),
            )
        )

    def fail(self) -> None:
        self.queue.put_nowait(ConnectionError("exchange went away"))

    async def stream_order_books(self, instruments: Sequence[str]) -> AsyncIterator[OrderBook]:
        self.connections += 1
        while True:
            item = await self.queue.get()
            if isinstance(item, Exception):
                raise item
            yield item

    def fees(self, instrument: str) -> FeeSchedule:
        return self._fees


async def status_change(
    hub: MarketDataHub, venue: str, status: FeedStatus, timeout: float = 5
) -> None:
    reached = asyncio.Event()
    if hub.feeds[venue].status is status:
        return
    hub.on_status_change(
        lambda name, new: reached.set() if (name, new) == (venue, status) else None
    )
    await asyncio.wait_for(reached.wait(), timeout)


def test_internal_book_flows_into_the_consolidated_book() -> None:
    async def scenario() -> None:
        internal = InternalVenue(devnet_catalogue(), SystemClock(), ZERO)
        hub = MarketDataHub([internal], {"internal": [SYMBOL]}, SystemClock(), stale_after=60)
        subscription = hub.subscribe(frozenset({SYMBOL}))
        hub.start()
        try:
            await status_change(hub, "internal", FeedStatus.LIVE)
            for price in ("2999", "2998"):
                await internal.place_order(
                    VenueOrderRequest(
                        SYMBOL, Side.BUY, OrderType.LIMIT, Decimal("0.5"), Decimal(price)
                    )
                )
            await internal.place_order(
                VenueOrderRequest(SYMBOL, Side.SELL, OrderType.LIMIT, Decimal("2"), Decimal("3001"))
            )
            while True:
                (book,) = await asyncio.wait_for(subscription.next(), 5)
                if len(book.bids) == 2 and book.asks:
                    break
            assert [lvl.price for lvl in book.bids] == [Decimal(2999), Decimal(2998)]
            assert book.asks[0].quantity == Decimal(2)
            assert hub.book(SYMBOL).live_venues == ("internal",)
        finally:
            await hub.stop()

    asyncio.run(scenario())


def test_a_failed_venue_leaves_the_book_at_once_and_comes_back() -> None:
    async def scenario() -> None:
        flaky, steady = ScriptedVenue("flaky", fee_bps=10), ScriptedVenue("steady")
        hub = MarketDataHub(
            [flaky, steady],
            {"flaky": [SYMBOL], "steady": [SYMBOL]},
            SystemClock(),
            stale_after=60,
            backoff=Backoff(initial=0.01, maximum=0.05),
            seed=1,
        )
        hub.start()
        try:
            flaky.push("3000", "3001")
            steady.push("2990", "3010")
            await status_change(hub, "flaky", FeedStatus.LIVE)
            await status_change(hub, "steady", FeedStatus.LIVE)
            book = hub.book(SYMBOL)
            assert book.live_venues == ("flaky", "steady")
            assert book.bids[0].price == Decimal("2997")  # 3000 less the 10 bp taker fee

            flaky.fail()
            await status_change(hub, "flaky", FeedStatus.STALE)
            book = hub.book(SYMBOL)
            assert book.stale_venues == ("flaky",)
            assert {s.venue for lvl in book.bids + book.asks for s in lvl.shares} == {"steady"}

            flaky.push("3002", "3003")  # served after the reconnect
            await status_change(hub, "flaky", FeedStatus.LIVE)
            assert flaky.connections == 2
            assert hub.book(SYMBOL).bids[0].shares[0].price == Decimal("3002")
        finally:
            await hub.stop()

    asyncio.run(scenario())


def test_a_silent_venue_is_marked_stale_by_age() -> None:
    async def scenario() -> None:
        quiet = ScriptedVenue("quiet")
        hub = MarketDataHub([quiet], {"quiet": [SYMBOL]}, SystemClock(), stale_after=0.2)
        hub.start()
        try:
            quiet.push("3000", "3001")
            await status_change(hub, "quiet", FeedStatus.LIVE)
            started = asyncio.get_running_loop().time()
            await status_change(hub, "quiet", FeedStatus.STALE, timeout=5)
            assert asyncio.get_running_loop().time() - started < 2  # bounded detection time
            assert hub.book(SYMBOL).live_venues == ()
            assert hub.book(SYMBOL).bids == ()
        finally:
            await hub.stop()

    asyncio.run(scenario())


def test_the_same_book_again_keeps_a_quiet_venue_live_without_publishing() -> None:
    """A venue that sends the same book again (a pool's reserves read at the head) was heard
    from: it is live again, and subscribers get nothing new."""
    hub = MarketDataHub([ScriptedVenue("pool")], {"pool": [SYMBOL]}, SystemClock(), stale_after=0.2)
    book = OrderBook(
        "pool",
        SYMBOL,
        (BookLevel(Decimal("3000"), Decimal(1)),),
        (BookLevel(Decimal("3001"), Decimal(1)),),
        datetime.now(UTC),
    )
    hub.apply("pool", book)
    assert hub.updates == 1 and hub.feeds["pool"].status is FeedStatus.LIVE
    seen = hub.feeds["pool"].last_update
    hub.feeds["pool"].status = FeedStatus.STALE  # as the watchdog would after a silence
    again = OrderBook("pool", SYMBOL, book.bids, book.asks, datetime.now(UTC))
    hub.apply("pool", again)
    assert hub.feeds["pool"].status is FeedStatus.LIVE
    assert hub.feeds["pool"].last_update is not None and seen is not None
    assert hub.feeds["pool"].last_update >= seen
    assert hub.updates == 1  # a heartbeat, not an update
    moved = OrderBook(
        "pool", SYMBOL, (BookLevel(Decimal("2999"), Decimal(1)),), book.asks, datetime.now(UTC)
    )
    hub.apply("pool", moved)
    assert hub.updates == 2 and hub.book(SYMBOL).bids[0].price == Decimal("2999")


def test_a_slow_subscriber_gets_the_latest_book_not_a_backlog() -> None:
    async def scenario() -> None:
        venue = ScriptedVenue("burst")
        hub = MarketDataHub([venue], {"burst": [SYMBOL]}, SystemClock(), stale_after=60)
        slow = hub.subscribe(frozenset({SYMBOL}))
        other = hub.subscribe(frozenset({SYMBOL}))
        for n in range(1000):
            hub.apply("burst", venue_book(3000 + n))
            if n % 100 == 0:
                await other.next()  # the other subscriber keeps reading meanwhile
        assert slow.pending == 1
        (latest,) = await slow.next()
        assert latest.bids[0].price == Decimal(3999)
        assert slow.conflated >= 999

    asyncio.run(scenario())


def test_a_subscriber_is_told_only_of_changes_in_the_levels_it_reads() -> None:
    """An order resting below a subscriber's depth changes nothing it sees: the risk monitor
    (one level) is not woken by it, a deeper reader is; a change at the top wakes both."""

    def book(*bids: tuple[str, str]) -> OrderBook:
        levels = tuple(BookLevel(Decimal(p), Decimal(q)) for p, q in bids)
        asks = (BookLevel(Decimal(3010), Decimal(1)),)
        return OrderBook("burst", SYMBOL, levels, asks, datetime.now(UTC))

    async def scenario() -> None:
        hub = MarketDataHub([ScriptedVenue("burst")], {"burst": [SYMBOL]}, SystemClock())
        top, deep = hub.subscribe(frozenset({SYMBOL}), depth=1), hub.subscribe(frozenset({SYMBOL}))
        hub.apply("burst", book(("3000", "1")))
        await top.next(), await deep.next()
        hub.apply("burst", book(("3000", "1"), ("2990", "2")))  # rests below the best bid
        assert (top.pending, deep.pending) == (0, 1)
        (seen,) = await deep.next()
        assert [level.price for level in seen.bids] == [Decimal(3000), Decimal(2990)]
        hub.apply("burst", book(("3000", "3"), ("2990", "2")))  # joins the best bid
        assert (top.pending, deep.pending) == (1, 1)
        (best,) = await top.next()
        assert (best.bids[0].quantity, len(best.bids)) == (Decimal(3), 1)

    asyncio.run(scenario())


def venue_book(bid: int) -> OrderBook:
    return OrderBook(
        "burst",
        SYMBOL,
        (BookLevel(Decimal(bid), Decimal(1)),),
        (BookLevel(Decimal(bid + 1), Decimal(1)),),
        datetime.now(UTC),
    )


def test_venues_declare_what_they_trade() -> None:
    """With no instrument list, each feed asks its venue (as the gateway runtime does)."""

    async def scenario() -> None:
        internal = InternalVenue(devnet_catalogue(), SystemClock(), ZERO)
        hub = MarketDataHub([internal], None, SystemClock(), stale_after=60)
        hub.start()
        try:
            await status_change(hub, "internal", FeedStatus.LIVE)
            assert set(hub.feeds["internal"].instruments) == {i.symbol for i in devnet_catalogue()}
            assert hub.book("WETH-PERP").live_venues == ("internal",)
        finally:
            await hub.stop()

    asyncio.run(scenario())
