"""The unmodified ccxt `binance` class, through `CcxtVenue`, against the Binance simulator."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from decimal import Decimal
from typing import TypeVar

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import httpx
import pytest

from gateway.devnet.catalogue import SPOT_RULES
from gateway.devnet.exchange_sim.binance import BinanceSim
from gateway.domain.instruments import InstrumentKind, SpotPair
from gateway.domain.market import (
    FeeSchedule,
    VenueKind,
    VenueOrderRequest,
    VenueOrderStatus,
)
from gateway.domain.orders import OrderType, Side, TimeInForce
from gateway.venues.ccxt_venue import CcxtVenue
from gateway.venues.protocol import (
    Venue,
    VenueError,
    VenueInsufficientFunds,
    VenueOrderNotFound,
    VenueRejected,
    VenueUnavailable,
)
from tests.venues.conftest import Account, RunningSim, open_account, with_venue

T = TypeVar("T")
PAIR = "WETH/USDC"


def sim_of(account: Account) -> BinanceSim:
    sim = account.running.sim
    assert isinstance(sim, BinanceSim)
    return sim


def test_only_urls_are_changed_on_the_ccxt_object(binance_account: Account) -> None:
    venue = binance_account.venue()
    assert type(venue.exchange) is ccxt_async.binance
    assert isinstance(venue, Venue)
    assert venue.kind is VenueKind.CEX
    for key, url in venue.exchange.urls["api"].items():
        assert url.startswith(binance_account.running.url + "/"), key
    assert venue.exchange.urls["api"]["public"] == binance_account.running.url + "/api/v3"
    asyncio.run(venue.close())


def test_load_instruments(binance_account: Account) -> None:
    instruments = with_venue(binance_account, lambda v: v.load_instruments())
    assert len(instruments) == 1
    pair = instruments[0]
    assert isinstance(pair, SpotPair)
    assert pair.symbol == PAIR and pair.kind is InstrumentKind.SPOT
    assert (pair.base.symbol, pair.base.decimals) == ("WETH", 18)
    assert (pair.quote.symbol, pair.quote.decimals) == ("USDC", 6)
    assert pair.rules == SPOT_RULES  # PRICE_FILTER tickSize, LOT_SIZE stepSize and minQty


def test_order_book_is_sorted_decimal_and_matches_the_simulator(binance_account: Account) -> None:
    book = with_venue(binance_account, lambda v: v.fetch_order_book(PAIR, depth=5))
    bids, asks = sim_of(binance_account).exchange.depth("ETHUSDC", 5)
    assert [(level.price, level.quantity) for level in book.bids] == bids
    assert [(level.price, level.quantity) for level in book.asks] == asks
    assert len(book.bids) == 5 and len(book.asks) == 5
    for level in (*book.bids, *book.asks):
        assert type(level.price) is Decimal and type(level.quantity) is Decimal
    assert [b.price for b in book.bids] == sorted((b.price for b in book.bids), reverse=True)
    assert [a.price for a in book.asks] == sorted(a.price for a in book.asks)
    assert book.best_bid is not None and book.best_ask is not None
    assert book.best_bid.price < book.best_ask.price
    assert book.venue == "binance" and book.instrument == PAIR


def test_market_buy_fills_against_the_market_maker_with_the_taker_fee(
    binance_account: Account,
) -> None:
    async def scenario(venue: CcxtVenue) -> None:
        before = await venue.fetch_balances()
        book = await venue.fetch_order_book(PAIR, depth=10)
        quantity = Decimal("0.75")  # more than the best level (0.5): walks two levels
        order = await venue.place_order(
            VenueOrderRequest(PAIR, Side.BUY, OrderType.MARKET, quantity, client_order_id="mkt-1")
        )
        assert order.status is VenueOrderStatus.CLOSED
        assert order.filled == quantity and order.remaining == 0
        first, second = book.asks[0], book.asks[1]
        cost = first.price * first.quantity + second.price * (quantity - first.quantity)
        assert order.average_price == cost / quantity
        fee = quantity * Decimal(10) / Decimal(10_000)  # 10 bps taker, paid in the base asset
        assert (order.fee, order.fee_asset) == (fee, "WETH")
        assert order.client_order_id == "mkt-1"
        after = await venue.fetch_balances()
        assert after["WETH"].total - before["WETH"].total == quantity - fee
        assert before["USDC"].total - after["USDC"].total == cost
        fetched = await venue.fetch_order(order.venue_order_id, PAIR)
        assert (fetched.status, fetched.filled, fetched.fee) == (
            VenueOrderStatus.CLOSED,
            quantity,
            fee,
        )
        assert venue.fees(PAIR) == FeeSchedule(maker_bps=Decimal(8), taker_bps=Decimal(10))

    with_venue(binance_account, scenario)


def test_market_sell_pays_the_fee_in_quote(binance_account: Account) -> None:
    async def scenario(venue: CcxtVenue) -> None:
        before = await venue.fetch_balances()
        book = await venue.fetch_order_book(PAIR, depth=1)
        order = await venue.place_order(
            VenueOrderRequest(PAIR, Side.SELL, OrderType.MARKET, Decimal("0.2"))
        )
        proceeds = book.bids[0].price * Decimal("0.2")
        fee = (proceeds * Decimal(10) / Decimal(10_000)).quantize(Decimal("1e-8"))
        assert (order.filled, order.average_price) == (Decimal("0.2"), book.bids[0].price)
        assert (order.fee, order.fee_asset) == (fee, "USDC")
        after = await venue.fetch_balances()
        assert before["WETH"].total - after["WETH"].total == Decimal("0.2")
        assert after["USDC"].total - before["USDC"].total == proceeds - fee

    with_venue(binance_account, scenario)


def test_limit_order_rests_locks_funds_and_cancels(binance_account: Account) -> None:
    async def scenario(venue: CcxtVenue) -> None:
        book = await venue.fetch_order_book(PAIR, depth=1)
        price = book.bids[0].price - Decimal("5.00")
        order = await venue.place_order(
            VenueOrderRequest(PAIR, Side.BUY, OrderType.LIMIT, Decimal("1.5"), price=price)
        )
        assert order.status is VenueOrderStatus.OPEN
        assert (order.filled, order.price, order.average_price) == (Decimal(0), price, None)
        balances = await venue.fetch_balances()
        assert balances["USDC"].locked == price * Decimal("1.5")
        assert balances["USDC"].total == Decimal(100_000)
        fetched = await venue.fetch_order(order.venue_order_id, PAIR)
        assert fetched.status is VenueOrderStatus.OPEN and fetched.quantity == Decimal("1.5")
        canceled = await venue.cancel_order(order.venue_order_id, PAIR)
        assert canceled.status is VenueOrderStatus.CANCELED and canceled.filled == 0
        assert (await venue.fetch_balances())["USDC"].locked == 0
        with pytest.raises(VenueOrderNotFound):
            await venue.cancel_order(order.venue_order_id, PAIR)

    with_venue(binance_account, scenario)


def test_marketable_limit_and_ioc(binance_account: Account) -> None:
    async def scenario(venue: CcxtVenue) -> None:
        book = await venue.fetch_order_book(PAIR, depth=1)
        ask = book.asks[0]
        limit = ask.price + Decimal("100.00")
        order = await venue.place_order(
            VenueOrderRequest(PAIR, Side.BUY, OrderType.LIMIT, Decimal("0.1"), price=limit)
        )
        assert order.status is VenueOrderStatus.CLOSED
        assert order.average_price == ask.price  # filled at the resting price, not the limit
        book = await venue.fetch_order_book(PAIR, depth=1)
        ioc = await venue.place_order(
            VenueOrderRequest(
                PAIR,
                Side.BUY,
                OrderType.LIMIT,
                book.asks[0].quantity + Decimal(1),
                price=book.asks[0].price,
                time_in_force=TimeInForce.IOC,
            )
        )
        assert ioc.status is VenueOrderStatus.EXPIRED
        assert ioc.filled == book.asks[0].quantity

    with_venue(binance_account, scenario)


def test_resting_limit_order_fills_as_maker_when_the_market_moves(
    fresh_binance: RunningSim,
) -> None:
    account = open_account(fresh_binance, {"ETH": Decimal(0), "USDC": Decimal(10_000)})
    sim = sim_of(account)

    async def scenario(venue: CcxtVenue) -> None:
        book = await venue.fetch_order_book(PAIR, depth=1)
        price = book.asks[0].price - Decimal("0.01")  # inside the spread: rests
        order = await venue.place_order(
            VenueOrderRequest(PAIR, Side.BUY, OrderType.LIMIT, Decimal("0.5"), price=price)
        )
        assert order.status is VenueOrderStatus.OPEN
        for _ in range(500):
            sim.step()  # the random walk re-quotes; an ask at or below our bid trades with it
            if not sim.exchange.open_orders(account.name):
                break
        filled = await venue.fetch_order(order.venue_order_id, PAIR)
        assert filled.status is VenueOrderStatus.CLOSED
        assert filled.average_price == price  # the maker's price
        maker_fee = Decimal("0.5") * Decimal(8) / Decimal(10_000)
        assert (filled.fee, filled.fee_asset) == (maker_fee, "WETH")
        balances = await venue.fetch_balances()
        assert balances["WETH"].total == Decimal("0.5") - maker_fee
        assert balances["USDC"].total == Decimal(10_000) - price * Decimal("0.5")
        assert balances["USDC"].locked == 0

    with_venue(account, scenario)


def test_insufficient_funds(binance: RunningSim) -> None:
    poor = open_account(binance, {"USDC": Decimal(100)})

    async def scenario(venue: CcxtVenue) -> None:
        with pytest.raises(VenueInsufficientFunds):
            await venue.place_order(
                VenueOrderRequest(PAIR, Side.BUY, OrderType.LIMIT, Decimal(1), price=Decimal(2000))
            )
        with pytest.raises(VenueInsufficientFunds):
            await venue.place_order(
                VenueOrderRequest(PAIR, Side.SELL, OrderType.MARKET, Decimal(1))
            )

    with_venue(poor, scenario)


def test_unknown_orders(binance_account: Account) -> None:
    async def scenario(venue: CcxtVenue) -> None:
        with pytest.raises(VenueOrderNotFound):
            await venue.fetch_order("987654321", PAIR)
        with pytest.raises(VenueOrderNotFound):
            await venue.cancel_order("987654321", PAIR)

    with_venue(binance_account, scenario)


def test_filters_and_post_only_are_rejected(binance_account: Account) -> None:
    async def scenario(venue: CcxtVenue) -> None:
        book = await venue.fetch_order_book(PAIR, depth=1)
        with pytest.raises(VenueRejected, match="NOTIONAL"):  # 0.001 * ~3000 < 5 USDC
            await venue.place_order(
                VenueOrderRequest(
                    PAIR, Side.BUY, OrderType.LIMIT, Decimal("0.001"), price=book.bids[0].price
                )
            )
        with pytest.raises(VenueRejected, match="immediately match"):
            await venue.place_order(
                VenueOrderRequest(
                    PAIR,
                    Side.BUY,
                    OrderType.LIMIT,
                    Decimal("0.1"),
                    price=book.asks[0].price,
                    post_only=True,
                )
            )
        maker = await venue.place_order(
            VenueOrderRequest(
                PAIR,
                Side.BUY,
                OrderType.LIMIT,
                Decimal("0.1"),
                price=book.bids[0].price,
                post_only=True,
            )
        )
        assert maker.status is VenueOrderStatus.OPEN
        await venue.cancel_order(maker.venue_order_id, PAIR)

    with_venue(binance_account, scenario)


def _authentication_error(
    account: Account, api_key: str | None = None, secret: str | None = None
) -> VenueError:
    async def scenario(venue: CcxtVenue) -> VenueError:
        with pytest.raises(VenueError) as raised:
            await venue.fetch_balances()
        return raised.value

    return with_venue(account, scenario, api_key=api_key, secret=secret)


def test_bad_signature_and_bad_key_are_authentication_errors(binance_account: Account) -> None:
    bad_secret = _authentication_error(binance_account, secret="not-the-secret")
    assert type(bad_secret) is VenueError and bad_secret.code == "venue_authentication"
    assert "-1022" in str(bad_secret)
    bad_key = _authentication_error(binance_account, api_key="nobody")
    assert type(bad_key) is VenueError and bad_key.code == "venue_authentication"
    assert "-2015" in str(bad_key)


def test_expired_timestamp_is_an_authentication_error(binance_account: Account) -> None:
    sim = sim_of(binance_account)
    with sim.lock:
        sim.clock_offset_ms = 120_000  # the server is two minutes ahead: outside recvWindow
    try:
        error = _authentication_error(binance_account)
    finally:
        with sim.lock:
            sim.clock_offset_ms = 0
    assert type(error) is VenueError and error.code == "venue_authentication"
    assert "-1021" in str(error)


def test_request_weight_limit_is_venue_unavailable(binance_account: Account) -> None:
    sim = sim_of(binance_account)
    sim.limiter.key_limits[binance_account.api_key] = 30
    # one window for the whole test: a minute boundary between the last request of the
    # scenario and the check below would otherwise start a fresh window (and answer 400)
    window_ms = sim.limiter.window_ms
    sim.limiter.window_ms = 2**62

    async def scenario(venue: CcxtVenue) -> None:
        await venue.load_instruments()  # exchangeInfo (20) and the sapi calls fit (or not)
        with pytest.raises(VenueUnavailable, match="429"):
            for _ in range(10):
                await venue.fetch_balances()

    try:
        with_venue(binance_account, scenario)
        response = httpx.get(
            binance_account.running.url + "/api/v3/account",
            headers={"X-MBX-APIKEY": binance_account.api_key},
        )
    finally:
        sim.limiter.window_ms = window_ms
    assert response.status_code == 429
    assert response.json()["code"] == -1003


@pytest.mark.parametrize("websocket", [False, True], ids=["polling", "websocket"])
def test_stream_order_books_follows_the_market(binance: RunningSim, websocket: bool) -> None:
    """Polling, or ccxt.pro kept in sync by the simulator's diff-depth stream (ccxt raises
    on any gap in the update ids): either way each yielded book is the simulator's book."""
    account = open_account(binance, {"USDC": Decimal(1)})
    sim = sim_of(account)

    Levels = list[tuple[Decimal, Decimal]]

    def simulator_book() -> tuple[Levels, Levels]:
        with sim.lock:
            return sim.exchange.depth("ETHUSDC", 1000)

    async def scenario(venue: CcxtVenue) -> None:
        stream = venue.stream_order_books([PAIR])
        previous = await anext(stream)
        for steps in (1, 3, 1):
            sim.step(steps)  # the market maker moves and re-quotes, once per step
            target = simulator_book()
            for _ in range(steps):  # one update per step at most; polling may see them merged
                book = await anext(stream)
                assert (book.bids, book.asks) != (previous.bids, previous.asks)
                assert all(type(level.price) is Decimal for level in (*book.bids, *book.asks))
                assert [b.price for b in book.bids] == sorted(b.price for b in book.bids)[::-1]
                previous = book
                levels = (
                    [(b.price, b.quantity) for b in book.bids],
                    [(a.price, a.quantity) for a in book.asks],
                )
                if levels == target:
                    break
            assert levels == target
        await stream.aclose()  # type: ignore[attr-defined]

    async def main() -> None:
        venue = account.venue(websocket=websocket)
        assert type(venue.exchange) is (ccxt_pro.binance if websocket else ccxt_async.binance)
        try:
            await asyncio.wait_for(scenario(venue), timeout=30)
        finally:
            await venue.close()

    asyncio.run(main())


def test_unreachable_exchange_is_venue_unavailable(binance_account: Account) -> None:
    from dataclasses import replace

    from gateway.devnet.exchange_sim.server import free_port

    config = replace(binance_account.venue().config, url_host=f"http://127.0.0.1:{free_port()}")

    async def scenario() -> None:
        venue = CcxtVenue(config)
        try:
            with pytest.raises(VenueUnavailable):
                await venue.load_instruments()
        finally:
            await venue.close()

    asyncio.run(scenario())


def test_command_line_entry_point_serves_binance() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.devnet.exchange_sim.server", "binance", "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        # the socket listens before the URL is printed: this request waits for the app
        response = httpx.get(url + "/api/v3/time", timeout=30)
        assert response.status_code == 200 and "serverTime" in response.json()
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_built_from_the_gateway_config_file_section(
    binance_account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`[[venues]] kind = "ccxt"` in the gateway's TOML config builds this adapter."""
    from datetime import UTC, datetime

    from gateway.devnet.catalogue import devnet_catalogue
    from gateway.venues.config import GatewayConfig, build_venues

    class FixedClock:
        def now(self) -> datetime:
            return datetime(2026, 11, 25, tzinfo=UTC)

    monkeypatch.setenv("TEST_BINANCE_KEY", binance_account.api_key)
    monkeypatch.setenv("TEST_BINANCE_SECRET", binance_account.secret)
    config = GatewayConfig.model_validate(
        {
            "venues": [
                {
                    "kind": "ccxt",
                    "name": "binance",
                    "exchange": "binance",
                    "api_key_env": "TEST_BINANCE_KEY",
                    "secret_env": "TEST_BINANCE_SECRET",
                    "url_host": binance_account.running.url,
                    "symbols": {"WETH/USDC": "ETH/USDC"},
                    "maker_bps": "8",
                    "taker_bps": "10",
                    "options": {"recvWindow": 5000},
                }
            ]
        }
    )
    (venue,) = build_venues(config, devnet_catalogue(), FixedClock())
    assert isinstance(venue, CcxtVenue)

    async def scenario() -> None:
        try:
            (pair,) = await venue.load_instruments()
            assert (pair.symbol, pair.base.symbol, pair.quote.symbol) == (PAIR, "WETH", "USDC")
            assert venue.fees(PAIR) == FeeSchedule(Decimal(8), Decimal(10))
            balances = await venue.fetch_balances()
            assert balances["WETH"].free == Decimal(10)
            assert balances["USDC"].free == Decimal(100_000)
        finally:
            await venue.close()

    asyncio.run(scenario())
