"""When a venue is stale, by the kind of liquidity behind it (the hub's `STALENESS` rule).

An exchange is stale when its stream is silent past `stale_after` or failing; a pool when its
chain read fails (at once) or its reserves were not read at the head within `stale_after`;
the internal book only when its feed fails or its task ended, never for being quiet. Time is
the hub's injected clock, moved by the test: nothing here sleeps to let time pass.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from eth_abi import encode
from web3 import Web3
from web3.providers.base import BaseProvider
from web3.types import RPCEndpoint, RPCResponse

from gateway.devnet.catalogue import devnet_catalogue
from gateway.domain.market import BookLevel, FeeSchedule, VenueOrderRequest
from gateway.domain.orders import OrderType, Side
from gateway.venues.amm import Pool, UniswapV2Venue
from gateway.venues.internal import InternalVenue
from gateway.venues.market_data import Backoff, FeedStatus, MarketDataHub, Staleness
from tests.market_data.test_hub import ScriptedVenue, status_change

SYMBOL = "WETH/USDC"
ZERO = FeeSchedule(Decimal(0), Decimal(0))
FAST = Backoff(initial=0.01, maximum=0.05)
WETH_TOKEN, USDC_TOKEN = "0x" + "11" * 20, "0x" + "22" * 20
PAIR, ROUTER = "0x" + "33" * 20, "0x" + "44" * 20


class ManualClock:
    """The hub's and the venues' clock; time passes only when the test says so."""

    def __init__(self) -> None:
        self._now = datetime(2026, 1, 5, 9, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


def statuses(hub: MarketDataHub) -> list[tuple[str, FeedStatus]]:
    """Every status change the hub's listeners hear, in order."""
    heard: list[tuple[str, FeedStatus]] = []
    hub.on_status_change(lambda venue, status: heard.append((venue, status)))
    return heard


# -- an exchange ----------------------------------------------------------------------------


def test_an_exchange_silent_past_stale_after_is_stale_and_one_erroring_at_once() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        exchange = ScriptedVenue("exchange")
        hub = MarketDataHub([exchange], {"exchange": [SYMBOL]}, clock, stale_after=5, backoff=FAST)
        assert hub.feeds["exchange"].staleness is Staleness.SILENCE
        heard = statuses(hub)
        hub.start()
        try:
            exchange.push("3000", "3001")
            await status_change(hub, "exchange", FeedStatus.LIVE)
            clock.advance(5)  # silent for exactly `stale_after`: still live
            hub.check_staleness()
            assert hub.stale_venues() == frozenset()

            clock.advance(0.001)  # silent beyond it
            assert hub.stale_venues() == {"exchange"}
            hub.check_staleness()  # the watchdog's turn: listeners hear it
            assert heard == [("exchange", FeedStatus.LIVE), ("exchange", FeedStatus.STALE)]
            book = hub.book(SYMBOL)
            assert book.live_venues == () and book.stale_venues == ("exchange",)
            assert book.bids == () and hub.venue_books(SYMBOL) == {}
            feed_task = hub.feeds["exchange"].task
            assert feed_task is not None and not feed_task.done()  # silent, still listening

            exchange.push("3000", "3001")  # it speaks again
            await status_change(hub, "exchange", FeedStatus.LIVE)
            assert hub.stale_venues() == frozenset()

            exchange.fail()  # its stream errors: stale at once, though no time has passed
            await status_change(hub, "exchange", FeedStatus.STALE)
            assert hub.stale_venues() == {"exchange"}
            assert hub.feeds["exchange"].last_error == "ConnectionError: exchange went away"
        finally:
            await hub.stop()

    asyncio.run(scenario())


# -- a pool -----------------------------------------------------------------------------------


class ScriptedChain(BaseProvider):
    """A node answering what a Uniswap v2 pair's reader asks: the head and the pair's
    reserves and tokens. It can be unreachable (a read fails) or stall (a read hangs)."""

    def __init__(self) -> None:
        super().__init__()
        self.block = 1
        self.reserves = (1_000 * 10**18, 3_000_000 * 10**6)  # 1,000 WETH at 3,000 USDC
        self.reachable = True
        self._flowing = threading.Event()
        self._flowing.set()
        self.stalled = threading.Event()  # set once a read is held by `stall`

    def stall(self) -> None:
        self.stalled.clear()
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        if not self._flowing.is_set():
            self.stalled.set()
            self._flowing.wait()
        if not self.reachable:
            raise ConnectionError("connection refused")
        return {"jsonrpc": "2.0", "id": 1, "result": self._answer(method, params)}

    def _answer(self, method: str, params: Any) -> str:
        if method == "eth_chainId":
            return hex(31337)
        if method == "eth_blockNumber":
            return hex(self.block)
        if method == "eth_call":
            selector = params[0]["data"][:10]
            returns: dict[str, tuple[list[str], list[Any]]] = {
                "0x0902f1ac": (["uint112", "uint112", "uint32"], [*self.reserves, 0]),
                "0x0dfe1681": (["address"], [WETH_TOKEN]),  # token0
                "0xd21220a7": (["address"], [USDC_TOKEN]),  # token1
            }
            types, values = returns[selector]
            return "0x" + encode(types, values).hex()
        raise ValueError(f"unexpected {method}")

    def is_connected(self, show_traceback: bool = False) -> bool:
        return self.reachable


def pool_hub(chain: ScriptedChain, clock: ManualClock) -> MarketDataHub:
    pool = UniswapV2Venue(
        "uniswap",
        Web3(chain),
        ROUTER,
        [Pool(SYMBOL, PAIR, WETH_TOKEN, USDC_TOKEN, 18, 6)],
        devnet_catalogue(),
        clock,
        poll_interval=0.005,
    )
    return MarketDataHub([pool], {"uniswap": [SYMBOL]}, clock, stale_after=5, backoff=FAST)


def test_a_pool_whose_chain_read_fails_is_stale_at_once_and_live_again_after_a_read() -> None:
    async def scenario() -> None:
        chain, clock = ScriptedChain(), ManualClock()
        hub = pool_hub(chain, clock)
        assert hub.feeds["uniswap"].staleness is Staleness.CHAIN_READ
        hub.start()
        try:
            await status_change(hub, "uniswap", FeedStatus.LIVE)
            assert hub.book(SYMBOL).live_venues == ("uniswap",)

            chain.reachable = False  # the node goes away
            await status_change(hub, "uniswap", FeedStatus.STALE)
            assert hub.feeds["uniswap"].last_update == clock.now()  # not age: the failed read
            assert hub.stale_venues() == {"uniswap"}
            book = hub.book(SYMBOL)
            assert book.live_venues == () and book.stale_venues == ("uniswap",) and not book.asks
            error = hub.feeds["uniswap"].last_error
            assert error is not None and error.startswith("VenueUnavailable")

            chain.reachable = True  # a read at the head succeeds again
            await status_change(hub, "uniswap", FeedStatus.LIVE)
            assert hub.stale_venues() == frozenset()
            assert hub.book(SYMBOL).live_venues == ("uniswap",)
            assert hub.feeds["uniswap"].failures == 0
        finally:
            await hub.stop()

    asyncio.run(scenario())


def test_a_quiet_pool_read_at_the_head_stays_live_and_one_not_read_goes_stale() -> None:
    async def scenario() -> None:
        chain, clock = ScriptedChain(), ManualClock()
        hub = pool_hub(chain, clock)
        heard = statuses(hub)
        hub.start()
        try:
            await status_change(hub, "uniswap", FeedStatus.LIVE)
            # a quiet minute: no block, no swap, the same reserves; the pool is read at the
            # head each second of it (on the venue's clock, not the wall's), and is never stale
            loop = asyncio.get_running_loop()
            started = loop.time()
            for _ in range(60):
                clock.advance(1)
                await asyncio.wait_for(hub.heard_from("uniswap", clock.now()), 5)
                hub.check_staleness()
                assert hub.stale_venues() == frozenset()
            assert loop.time() - started < 30  # a heartbeat on wall time would take 60 s
            assert heard == [("uniswap", FeedStatus.LIVE)]
            assert hub.updates == 1  # each read was the same book: nothing new published

            chain.stall()  # the node hangs mid-read: the reserves are no longer read
            assert await asyncio.to_thread(chain.stalled.wait, 5)
            clock.advance(5)
            assert hub.stale_venues() == frozenset()  # read `stale_after` ago: still live
            clock.advance(0.001)
            assert hub.stale_venues() == {"uniswap"}
            hub.check_staleness()
            assert heard[-1] == ("uniswap", FeedStatus.STALE)
            assert hub.book(SYMBOL).live_venues == ()

            chain.resume()  # the read completes at the head: live again
            await status_change(hub, "uniswap", FeedStatus.LIVE)
            assert hub.stale_venues() == frozenset()
        finally:
            chain.resume()
            await hub.stop()

    asyncio.run(scenario())


# -- the internal book ------------------------------------------------------------------------


def test_an_internal_book_silent_far_longer_than_stale_after_is_not_stale() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        internal = InternalVenue(devnet_catalogue(), clock, ZERO)
        hub = MarketDataHub([internal], {"internal": [SYMBOL]}, clock, stale_after=5)
        assert hub.feeds["internal"].staleness is Staleness.FEED_ALIVE
        heard = statuses(hub)
        subscription = hub.subscribe(frozenset({SYMBOL}))
        hub.start()
        try:
            await status_change(hub, "internal", FeedStatus.LIVE)
            await internal.place_order(
                VenueOrderRequest(SYMBOL, Side.BUY, OrderType.LIMIT, Decimal(1), Decimal(2999))
            )
            while not hub.book(SYMBOL).bids:
                await asyncio.wait_for(subscription.next(), 5)
            spoke = hub.feeds["internal"].last_update

            clock.advance(3600)  # an hour in which nothing rests, trades or leaves
            hub.check_staleness()
            assert hub.stale_venues() == frozenset()
            assert hub.feeds["internal"].status is FeedStatus.LIVE
            assert heard == [("internal", FeedStatus.LIVE)]
            assert hub.feeds["internal"].last_update == spoke  # silent: no heartbeat needed
            book = hub.book(SYMBOL)
            assert book.live_venues == ("internal",) and book.stale_venues == ()
            assert book.bids[0].price == Decimal(2999)
            assert hub.venue_books(SYMBOL)["internal"].bids == (
                BookLevel(Decimal(2999), Decimal(1)),
            )
        finally:
            await hub.stop()

    asyncio.run(scenario())


class BreakableBook:
    """Stands in for the gateway's `InternalBook` behind the internal venue: its depth can
    fail (a bug, corrupt state), which crashes the venue's stream."""

    def __init__(self) -> None:
        self.broken = False
        self._listeners: list[Callable[[], None]] = []

    def depth(self, instrument: str, levels: int) -> tuple[list[BookLevel], list[BookLevel]]:
        if self.broken:
            raise RuntimeError("book state is corrupt")
        return [BookLevel(Decimal(2999), Decimal(1))], []

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def changed_books(self) -> set[str]:
        return {SYMBOL}

    def changed(self) -> None:
        for listener in self._listeners:
            listener()


def test_an_internal_book_whose_feed_crashed_is_stale() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        book = BreakableBook()
        internal = InternalVenue(devnet_catalogue(), clock, ZERO)
        internal.attach(book)  # type: ignore[arg-type]
        hub = MarketDataHub([internal], {"internal": [SYMBOL]}, clock, stale_after=5, backoff=FAST)
        heard = statuses(hub)
        hub.start()
        try:
            await status_change(hub, "internal", FeedStatus.LIVE)
            book.broken = True
            book.changed()  # the stream reads the book and crashes: stale at once
            await status_change(hub, "internal", FeedStatus.STALE)
            assert hub.stale_venues() == {"internal"}
            assert hub.book(SYMBOL).live_venues == () and hub.venue_books(SYMBOL) == {}
            assert hub.feeds["internal"].last_error == "RuntimeError: book state is corrupt"

            book.broken = False  # the reconnect reads it again: live
            await status_change(hub, "internal", FeedStatus.LIVE)
            assert hub.stale_venues() == frozenset()
        finally:
            await hub.stop()
        assert heard == [
            ("internal", FeedStatus.LIVE),
            ("internal", FeedStatus.STALE),
            ("internal", FeedStatus.LIVE),
        ]  # stopping the hub is not a crash

    asyncio.run(scenario())


def test_an_internal_book_whose_feed_task_ended_is_stale() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        internal = InternalVenue(devnet_catalogue(), clock, ZERO)
        hub = MarketDataHub([internal], {"internal": [SYMBOL]}, clock, stale_after=5)
        hub.start()
        try:
            await status_change(hub, "internal", FeedStatus.LIVE)
            feed_task = hub.feeds["internal"].task
            assert feed_task is not None
            feed_task.cancel()  # killed outside the hub's own retry loop
            await status_change(hub, "internal", FeedStatus.STALE)
            assert hub.stale_venues() == {"internal"}
            assert hub.feeds["internal"].last_error == "feed task cancelled"
            assert hub.book(SYMBOL).live_venues == ()
        finally:
            await hub.stop()

    asyncio.run(scenario())
