"""The public trade feed: the simulated exchanges' tapes through the real ccxt classes over
HTTP, Uniswap v2 swaps on anvil, and the cross-venue `TradeTape` (POV volume, VWAP, volume
profiles from venue history)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from eth_typing import HexStr
from hypothesis import given, settings
from hypothesis import strategies as st
from web3 import Web3

from gateway.chain import tokens, uniswap
from gateway.chain.anvil import Anvil, AnvilConfig
from gateway.chain.transactions import Sender, connect
from gateway.devnet.catalogue import devnet_catalogue
from gateway.devnet.exchange_sim.binance import SPOT_SYMBOL, BinanceSim
from gateway.devnet.exchange_sim.deribit import PERPETUAL, DeribitSim
from gateway.devnet.exchange_sim.history import DAY_MS, HistoryConfig
from gateway.devnet.exchange_sim.market_maker import MAKER_ACCOUNT
from gateway.devnet.exchange_sim.matching import SimOrderType, SimSide, SimTrade
from gateway.devnet.exchange_sim.server import SimServer
from gateway.devnet.exchange_sim.venues import binance_venue_config, deribit_venue_config
from gateway.domain.instruments import Instrument
from gateway.domain.market import FeeSchedule, PublicTrade, VenueKind, VenueOrderRequest
from gateway.domain.orders import OrderType, Side
from gateway.oms.service import SystemClock
from gateway.venues.amm import Pool, UniswapV2Venue
from gateway.venues.ccxt_venue import CcxtVenue
from gateway.venues.internal import InternalVenue
from gateway.venues.trade_tape import TradeTape

SPOT = "WETH/USDC"
PERP = "WETH-PERP"
MS = timedelta(milliseconds=1)
_keys = itertools.count(1)


# --- simulators on loopback, each test its own (trading must not touch shared books) -------


@dataclass
class Served:
    sim: BinanceSim | DeribitSim
    server: SimServer

    def account(self) -> tuple[str, str]:
        n = next(_keys)
        key, secret = f"trades-key-{n}", f"trades-secret-{n}"
        self.sim.add_account(key, secret, {"ETH": Decimal(10), "USDC": Decimal(100_000)})
        return key, secret

    def venue(self) -> CcxtVenue:
        """A venue on a fresh account of this simulator (no rate limiter: loopback)."""
        key, secret = self.account()
        make = binance_venue_config if isinstance(self.sim, BinanceSim) else deribit_venue_config
        config = make(
            self.server.url, api_key=key, secret=secret, enable_rate_limit=False, websocket=False
        )
        return CcxtVenue(config, catalogue=devnet_catalogue())


def _serve(sim: BinanceSim | DeribitSim) -> Iterator[Served]:
    server = SimServer(sim.app).start()
    try:
        yield Served(sim, server)
    finally:
        server.stop()


@pytest.fixture
def private_binance() -> Iterator[Served]:
    yield from _serve(BinanceSim(seed=31))


@pytest.fixture
def three_day_binance() -> Iterator[Served]:
    """A tape of three days: the two full days before the day it ends on are always in it,
    whatever the time of day it was seeded at (two days' tape seeded at 23:50 holds 10
    minutes of the day before yesterday)."""
    yield from _serve(BinanceSim(seed=31, history=HistoryConfig(days=3)))


@pytest.fixture
def private_deribit() -> Iterator[Served]:
    yield from _serve(DeribitSim(seed=32))


MARKETS = {"binance": (SPOT, SPOT_SYMBOL), "deribit": (PERP, PERPETUAL)}


@pytest.fixture(params=sorted(MARKETS))
def private_exchange(request: pytest.FixtureRequest) -> Iterator[Served]:
    """Each simulated exchange in turn, a private one (its markets: `MARKETS`)."""
    sim = BinanceSim(seed=31) if request.param == "binance" else DeribitSim(seed=32)
    yield from _serve(sim)


def _order(instrument: str, side: Side, quantity: str) -> VenueOrderRequest:
    return VenueOrderRequest(instrument, side, OrderType.MARKET, Decimal(quantity))


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


# --- the venues' public feeds --------------------------------------------------------------


def test_a_trade_we_make_is_on_everyones_public_feed(private_exchange: Served) -> None:
    served = private_exchange
    exchange = "binance" if isinstance(served.sim, BinanceSim) else "deribit"
    instrument = MARKETS[exchange][0]
    side = Side.BUY if exchange == "binance" else Side.SELL

    async def scenario() -> None:
        trader, observer = served.venue(), served.venue()
        try:
            before = datetime.now(UTC) - MS
            order = await trader.place_order(_order(instrument, side, "0.3"))
            assert order.filled == Decimal("0.3")
            seen = await observer.fetch_trades(instrument, since=before)
            assert len(seen) == 1
            (trade,) = seen
            assert trade.venue == exchange and trade.instrument == instrument
            assert trade.quantity == Decimal("0.3")
            assert trade.price == order.average_price
            assert trade.side is side
            assert trade.timestamp.tzinfo is not None and trade.timestamp >= before
            assert (await observer.fetch_trades(instrument, limit=1)) == [trade]
            assert await observer.fetch_trades(instrument, since=trade.timestamp + MS) == []
            # `since` is inclusive and the pages are time-ordered
            since = trade.timestamp - timedelta(hours=5)
            page = await observer.fetch_trades(instrument, since=since, limit=20)
            assert page and all(t.timestamp >= since for t in page)
            assert [t.timestamp for t in page] == sorted(t.timestamp for t in page)
            assert len(page) == 20 and trade not in page  # the first 20 from `since`
        finally:
            await trader.close()
            await observer.close()

    asyncio.run(scenario())


def test_binance_aggregates_one_takers_fills_per_price(private_binance: Served) -> None:
    async def scenario() -> None:
        venue = private_binance.venue()
        try:
            before = datetime.now(UTC) - MS
            # the maker quotes 0.5 per level: 1.2 takes three levels at three prices
            order = await venue.place_order(_order(SPOT, Side.BUY, "1.2"))
            trades = await venue.fetch_trades(SPOT, since=before)
            assert [t.quantity for t in trades] == [Decimal("0.5"), Decimal("0.5"), Decimal("0.2")]
            assert len({t.price for t in trades}) == 3
            notional = sum((t.price * t.quantity for t in trades), Decimal(0))
            assert order.average_price == notional / Decimal("1.2")
        finally:
            await venue.close()

    asyncio.run(scenario())


def test_binance_recent_trades_endpoint_speaks_ccxts_format(private_binance: Served) -> None:
    """ccxt's `fetchTradesMethod: publicGetTrades` (`GET /api/v3/trades`): raw trades."""

    async def scenario() -> list[PublicTrade]:
        key, secret = private_binance.account()
        config = binance_venue_config(
            private_binance.server.url,
            api_key=key,
            secret=secret,
            enable_rate_limit=False,
            websocket=False,
        )
        options = {"fetchTradesMethod": "publicGetTrades"}
        venue = CcxtVenue(replace(config, options=options), catalogue=devnet_catalogue())
        try:
            await venue.place_order(_order(SPOT, Side.BUY, "0.7"))  # two fills at two prices
            return await venue.fetch_trades(SPOT, limit=3)
        finally:
            await venue.close()

    trades = asyncio.run(scenario())
    tape = private_binance.sim.exchange.all_trades(SPOT_SYMBOL)[-3:]
    assert [(t.trade_id, t.price, t.quantity) for t in trades] == [
        (str(t.trade_id), t.price, t.quantity) for t in tape
    ]
    assert [t.side for t in trades] == [
        Side.BUY if t.taker_side is SimSide.BUY else Side.SELL for t in tape
    ]
    assert [t.quantity for t in trades[1:]] == [Decimal("0.5"), Decimal("0.2")]


# --- seeded venue history ------------------------------------------------------------------

NOW_MS = 1_795_000_000_000 + 12_345  # a fixed clock: not on a slot boundary


def _tape(sim: BinanceSim | DeribitSim, symbol: str) -> list[tuple[object, ...]]:
    return [
        (t.timestamp_ms, t.price, t.quantity, t.taker_side) for t in sim.exchange.all_trades(symbol)
    ]


def test_history_is_a_function_of_the_seed_and_the_slots_it_covers() -> None:
    first = BinanceSim(seed=7, clock_ms=lambda: NOW_MS)
    again = BinanceSim(seed=7, clock_ms=lambda: NOW_MS)
    other = BinanceSim(seed=8, clock_ms=lambda: NOW_MS)
    assert _tape(first, SPOT_SYMBOL) == _tape(again, SPOT_SYMBOL)
    assert _tape(first, SPOT_SYMBOL) != _tape(other, SPOT_SYMBOL)
    # started an hour later: the same trades where both cover the same time
    later = BinanceSim(seed=7, clock_ms=lambda: NOW_MS + 3_600_000)
    overlap_start = NOW_MS + 3_600_000 - 2 * DAY_MS
    ours = [t for t in _tape(first, SPOT_SYMBOL) if int(str(t[0])) >= overlap_start + 300_000]
    theirs = [t for t in _tape(later, SPOT_SYMBOL) if t[0] in {o[0] for o in ours}]
    assert ours == theirs and len(ours) > 1000
    tape = first.exchange.all_trades(SPOT_SYMBOL)
    assert 1000 < len(tape) < 5000  # a few thousand: startup stays fast
    assert all(NOW_MS - 2 * DAY_MS <= t.timestamp_ms < NOW_MS for t in tape)
    assert [t.trade_id for t in tape] == sorted(t.trade_id for t in tape)
    assert [t.timestamp_ms for t in tape] == sorted(t.timestamp_ms for t in tape)
    assert all(abs(t.price - Decimal(3000)) < Decimal(30) for t in tape)  # around the mid
    deribit = DeribitSim(seed=7, clock_ms=lambda: NOW_MS)
    assert _tape(deribit, PERPETUAL) == _tape(
        DeribitSim(seed=7, clock_ms=lambda: NOW_MS), PERPETUAL
    )
    assert len(deribit.exchange.all_trades(PERPETUAL)) > 1000


def test_history_is_market_tape_only() -> None:
    """Seeded or not, every account, book, position and account's own trades are the same."""
    none = HistoryConfig(days=0)
    for make in (BinanceSim, DeribitSim):
        seeded = make(seed=9, clock_ms=lambda: NOW_MS)
        bare = make(seed=9, clock_ms=lambda: NOW_MS, history=none)
        assert seeded.exchange.all_trades() and not bare.exchange.all_trades()
        assert seeded.exchange.all_accounts() == bare.exchange.all_accounts()
        for account in bare.exchange.all_accounts():
            for asset in bare.exchange.assets(account):
                assert seeded.exchange.total(account, asset) == bare.exchange.total(account, asset)
                assert seeded.exchange.free(account, asset) == bare.exchange.free(account, asset)
            assert seeded.exchange.trades(account) == []
            assert seeded.exchange.positions(account) == bare.exchange.positions(account)
        for symbol in bare.exchange.markets:
            assert seeded.exchange.depth(symbol, 100) == bare.exchange.depth(symbol, 100)
        seeded.step(5)
        bare.step(5)
        for symbol in bare.exchange.markets:
            assert seeded.exchange.depth(symbol, 100) == bare.exchange.depth(symbol, 100)
        assert seeded.exchange.positions(MAKER_ACCOUNT) == bare.exchange.positions(MAKER_ACCOUNT)


def _hour_volumes(trades: Sequence[PublicTrade]) -> list[Decimal]:
    volumes = [Decimal(0)] * 24
    for trade in trades:
        volumes[trade.timestamp.hour] += trade.quantity
    return volumes


def test_venue_history_is_served_exactly_and_u_shaped(private_exchange: Served) -> None:
    served = private_exchange
    exchange = "binance" if isinstance(served.sim, BinanceSim) else "deribit"
    instrument, symbol = MARKETS[exchange]

    async def scenario() -> list[PublicTrade]:
        venue = served.venue()
        try:
            now = datetime.now(UTC)
            return await TradeTape([venue]).trades(instrument, now - timedelta(days=3), now)
        finally:
            await venue.close()

    trades = asyncio.run(scenario())
    tape = served.sim.exchange.all_trades(symbol)
    assert [(t.timestamp, t.price, t.quantity) for t in trades] == [
        (datetime.fromtimestamp(t.timestamp_ms / 1000, UTC), t.price, t.quantity) for t in tape
    ]
    hours = _hour_volumes(trades)
    around_open_close = sum(hours[h] for h in (22, 23, 0, 1))
    midday = sum(hours[h] for h in (10, 11, 12, 13))
    assert around_open_close > 2 * midday


# --- TradeTape: live volume ---------------------------------------------------------------


def test_poll_counts_exactly_the_new_public_volume(
    private_binance: Served, private_deribit: Served
) -> None:
    async def scenario() -> None:
        binance, deribit = private_binance.venue(), private_deribit.venue()
        internal = InternalVenue(
            devnet_catalogue(), SystemClock(), FeeSchedule(Decimal(0), Decimal(0))
        )
        tape = TradeTape([binance, deribit, internal])
        someone_else = private_binance.venue()
        try:
            assert await tape.poll(SPOT) == 0  # sets the cursors
            assert await tape.poll(PERP) == 0
            assert await tape.poll(SPOT) == 0
            await binance.place_order(_order(SPOT, Side.BUY, "1.2"))  # three aggregate trades
            await someone_else.place_order(_order(SPOT, Side.SELL, "0.35"))
            await deribit.place_order(_order(PERP, Side.SELL, "0.7"))
            assert await tape.poll(SPOT) == Decimal("1.55")
            assert await tape.poll(SPOT) == 0
            assert await tape.poll(PERP) == Decimal("0.7")
            assert await tape.poll(PERP) == 0
        finally:
            for venue in (binance, deribit, someone_else):
                await venue.close()

    asyncio.run(scenario())


class HangingVenue:
    """A venue whose trade feed never answers."""

    kind = VenueKind.CEX

    def __init__(self) -> None:
        self.name = "hanging"
        self.released = asyncio.Event()

    async def load_instruments(self) -> list[Instrument]:
        return [devnet_catalogue().get(SPOT)]

    async def fetch_trades(
        self, instrument: str, since: datetime | None = None, limit: int = 1000
    ) -> list[PublicTrade]:
        await self.released.wait()
        return []


def test_poll_skips_a_dead_or_hanging_venue_and_keeps_its_cursor(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        sim = BinanceSim(seed=33)
        server = await asyncio.to_thread(SimServer(sim.app).start)
        port = server.port
        venue = Served(sim, server).venue()
        hanging = HangingVenue()
        tape = TradeTape([venue, hanging], timeout=1.5)  # type: ignore[list-item]
        sim.add_account("other", "other-secret", {"ETH": Decimal(5)})
        try:
            assert await tape.poll(SPOT) == 0
            await asyncio.to_thread(server.stop)  # the exchange goes away...
            with sim.lock:  # ...while the market trades on
                sim.exchange.submit(
                    "other", SPOT_SYMBOL, SimSide.SELL, SimOrderType.MARKET, Decimal("0.45")
                )
            with caplog.at_level(logging.WARNING, logger="gateway.venues.trade_tape"):
                assert await tape.poll(SPOT) == 0
            assert any("binance" in r.message for r in caplog.records)
            assert any("hanging" in r.message for r in caplog.records)
            server = await asyncio.to_thread(SimServer(sim.app, port).start)  # back again
            assert await tape.poll(SPOT) == Decimal("0.45")  # the missed trade, once
            assert await tape.poll(SPOT) == 0
        finally:
            hanging.released.set()
            await venue.close()
            await asyncio.to_thread(server.stop)

    asyncio.run(scenario())


# --- TradeTape: VWAP and volume profiles ---------------------------------------------------


def test_vwap_of_a_window_with_our_trade(private_binance: Served) -> None:
    async def scenario() -> None:
        venue = private_binance.venue()
        tape = TradeTape([venue])
        try:
            before = datetime.now(UTC) - MS
            order = await venue.place_order(_order(SPOT, Side.SELL, "0.3"))
            after = datetime.now(UTC) + MS
            assert await tape.vwap(SPOT, before, after) == (order.average_price, Decimal("0.3"))
            assert await tape.vwap(SPOT, after, after + timedelta(hours=1)) == (None, Decimal(0))
        finally:
            await venue.close()

    asyncio.run(scenario())


def _profile_from(
    tape: Sequence[SimTrade], start: datetime, buckets: int, days: int
) -> list[Decimal]:
    """The expected profile, bucketed directly from the simulator's tape."""
    totals = [Decimal(0)] * buckets
    for day in range(1, days + 1):
        window_start = _ms(start - timedelta(days=day))
        for trade in tape:
            offset = trade.timestamp_ms - window_start
            if 0 <= offset <= DAY_MS:
                totals[min(offset * buckets // DAY_MS, buckets - 1)] += trade.quantity
    grand = sum(totals, Decimal(0))
    return [t / grand for t in totals]


def test_volume_profile_from_venue_history_weighs_the_open_and_close(
    three_day_binance: Served,
) -> None:
    async def scenario() -> None:
        venue = three_day_binance.venue()
        tape = TradeTape([venue])
        try:
            # the day the tape was seeded on, not today's: a run that crosses midnight would
            # otherwise ask for a day the tape does not cover
            seeded = datetime.fromtimestamp(three_day_binance.sim.history_until_ms / 1000, UTC)
            midnight = seeded.replace(hour=0, minute=0, second=0, microsecond=0)
            tomorrow = midnight + timedelta(days=1)
            profile = await tape.volume_profile(SPOT, midnight, tomorrow, buckets=8, days=1)
            assert profile is not None and len(profile) == 8
            assert abs(sum(profile, Decimal(0)) - 1) < Decimal("1e-24")
            assert min(profile[0], profile[-1]) > max(profile[3], profile[4])
            tape_trades = three_day_binance.sim.exchange.all_trades(SPOT_SYMBOL)
            expected = _profile_from(tape_trades, midnight, 8, 1)
            assert all(
                abs(a - b) < Decimal("1e-24") for a, b in zip(profile, expected, strict=True)
            )
            two_days = await tape.volume_profile(SPOT, midnight, tomorrow, buckets=8, days=2)
            assert two_days is not None and two_days != profile
            assert min(two_days[0], two_days[-1]) > max(two_days[3], two_days[4])
            long_ago = midnight - timedelta(days=30)
            assert (
                await tape.volume_profile(SPOT, long_ago, long_ago + timedelta(hours=2), 4, 3)
                is None
            )
        finally:
            await venue.close()

    asyncio.run(scenario())


class ListVenue:
    """Public trades from a list (for the normalisation property: no exchange involved)."""

    kind = VenueKind.CEX

    def __init__(self, name: str, trades: list[PublicTrade]) -> None:
        self.name = name
        self._trades = sorted(trades, key=lambda t: t.timestamp)

    async def load_instruments(self) -> list[Instrument]:
        return [devnet_catalogue().get(SPOT)]

    async def fetch_trades(
        self, instrument: str, since: datetime | None = None, limit: int = 1000
    ) -> list[PublicTrade]:
        if since is None:
            return self._trades[-limit:]
        return [t for t in self._trades if t.timestamp >= since][:limit]


WINDOW_START = datetime(2026, 11, 25, 13, 30, tzinfo=UTC)


@settings(max_examples=60, deadline=None)
@given(
    entries=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=3),  # days back
            st.integers(min_value=0, max_value=2 * 3600 * 1000),  # ms into the 2 h window
            st.integers(min_value=1, max_value=10**6).map(lambda n: Decimal(n) / 1000),
        ),
        min_size=1,
        max_size=60,
        # one trade per instant: a page must hold all trades at an instant, and pages of one
        # trade are drawn too
        unique_by=lambda entry: (entry[0], entry[1]),
    ),
    buckets=st.integers(min_value=1, max_value=12),
    page_size=st.integers(min_value=1, max_value=7),
)
def test_volume_profile_is_a_normalised_bucketing_of_history(
    entries: list[tuple[int, int, Decimal]], buckets: int, page_size: int
) -> None:
    trades = [
        PublicTrade(
            "list",
            SPOT,
            str(i),
            Decimal(3000),
            quantity,
            None,
            WINDOW_START - timedelta(days=days) + timedelta(milliseconds=offset),
        )
        for i, (days, offset, quantity) in enumerate(entries)
    ]
    tape = TradeTape([ListVenue("list", trades)], page_size=page_size)  # type: ignore[list-item]
    end = WINDOW_START + timedelta(hours=2)
    profile = asyncio.run(tape.volume_profile(SPOT, WINDOW_START, end, buckets, days=3))
    assert profile is not None and len(profile) == buckets
    assert all(p >= 0 for p in profile)
    assert abs(sum(profile, Decimal(0)) - 1) < Decimal("1e-24")
    totals = [Decimal(0)] * buckets
    for _, offset, quantity in entries:
        totals[min(offset * buckets // (2 * 3600 * 1000), buckets - 1)] += quantity
    grand = sum(totals, Decimal(0))
    assert all(abs(p - t / grand) < Decimal("1e-24") for p, t in zip(profile, totals, strict=True))


# --- the AMM: Uniswap v2 swaps on anvil ----------------------------------------------------


@dataclass
class World:
    w3: Web3
    trader: Sender
    weth: str
    usdc: str
    pair: str
    router: str

    def venue(self) -> UniswapV2Venue:
        pool = Pool(SPOT, self.pair, self.weth, self.usdc, 18, 6)
        return UniswapV2Venue(
            "uniswap",
            self.w3,
            self.router,
            [pool],
            devnet_catalogue(),
            SystemClock(),
            trader=self.trader,
            poll_interval=0.01,
            log_chunk_blocks=3,  # several get_logs requests even on a short chain
        )


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with Anvil(AnvilConfig()) as node:
        w3 = connect(node.rpc_url)
        accounts = node.dev_accounts()
        owner, trader = Sender(w3, accounts[0]), Sender(w3, accounts[1])
        weth = tokens.deploy_token(owner, tokens.WETH).address
        usdc = tokens.deploy_token(owner, tokens.USDC).address
        uni = uniswap.deploy_uniswap_v2(owner, weth=weth)
        assert uni.router is not None
        pair = uniswap.get_or_create_pair(owner, uni.factory, weth, usdc)
        tokens.mint(owner, weth, owner.address, 1_000 * 10**18)
        tokens.mint(owner, usdc, owner.address, 3_000_000 * 10**6)
        uniswap.add_liquidity(owner, pair, weth, 1_000 * 10**18, usdc, 3_000_000 * 10**6)
        # Start the pair's price accumulators now (with gas to spare): their first write,
        # zero to non-zero, costs ~40k gas more than an estimate made in the same block
        # second includes, and swaps estimated that way ran out of gas now and then.
        w3.provider.make_request("evm_increaseTime", [2])  # type: ignore[arg-type]
        owner.transact(uniswap.pair_contract(w3, pair).functions.sync(), gas=200_000)
        tokens.mint(owner, weth, trader.address, 100 * 10**18)
        tokens.mint(owner, usdc, trader.address, 1_000_000 * 10**6)
        yield World(w3, trader, weth, usdc, pair, uni.router)


@pytest.mark.chain
def test_amm_swaps_are_public_trades_at_the_pool_price(world: World) -> None:
    async def scenario() -> None:
        venue = world.venue()
        tape = TradeTape([venue])
        assert await tape.poll(SPOT) == 0
        sell = await venue.place_order(_order(SPOT, Side.SELL, "2.5"))
        buy = await venue.place_order(_order(SPOT, Side.BUY, "1.25"))
        assert await tape.poll(SPOT) == Decimal("3.75")
        assert await tape.poll(SPOT) == 0
        latest = await venue.fetch_trades(SPOT, limit=2)
        assert [(t.side, t.quantity, t.price) for t in latest] == [
            (Side.SELL, Decimal("2.5"), sell.average_price),
            (Side.BUY, Decimal("1.25"), buy.average_price),
        ]
        assert latest[0].trade_id != latest[1].trade_id
        for trade, order in zip(latest, (sell, buy), strict=True):
            receipt = world.w3.eth.get_transaction_receipt(HexStr(order.venue_order_id))
            block = world.w3.eth.get_block(receipt["blockNumber"])
            assert trade.timestamp == datetime.fromtimestamp(block["timestamp"], UTC)
            assert trade.trade_id.startswith(order.venue_order_id)
        since = await venue.fetch_trades(SPOT, since=latest[1].timestamp)
        assert latest[1] in since and all(t.timestamp >= latest[1].timestamp for t in since)
        later = latest[1].timestamp + timedelta(seconds=1)
        assert await venue.fetch_trades(SPOT, since=later) == []
        await venue.place_order(_order(SPOT, Side.SELL, "0.5"))  # the cursor is a swap now
        assert await tape.poll(SPOT) == Decimal("0.5")

    asyncio.run(scenario())
