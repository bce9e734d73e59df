"""The unmodified ccxt `deribit` class, through `CcxtVenue`, against the Deribit simulator."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TypeVar

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import httpx
import pytest

from gateway.devnet.catalogue import OPTION_EXPIRY, OPTION_STRIKES, devnet_catalogue
from gateway.devnet.exchange_sim.deribit import DeribitSim
from gateway.domain.instruments import EuropeanOption, InstrumentKind, OptionRight, Perpetual
from gateway.domain.market import FeeSchedule, VenueOrderRequest, VenueOrderStatus
from gateway.domain.orders import OrderType, Side
from gateway.venues.ccxt_venue import CcxtVenue
from gateway.venues.protocol import (
    VenueError,
    VenueInsufficientFunds,
    VenueOrderNotFound,
    VenueRejected,
    VenueUnavailable,
)
from tests.venues.conftest import Account, RunningSim, open_account, with_venue

T = TypeVar("T")
CALL = "WETH-20270326-3000-C"
PUT = "WETH-20270326-2800-P"
PERP = "WETH-PERP"
FIVE_BPS = Decimal(5) / Decimal(10_000)


def sim_of(account: Account) -> DeribitSim:
    sim = account.running.sim
    assert isinstance(sim, DeribitSim)
    return sim


def test_instruments_are_the_devnet_options_and_perpetual(deribit_account: Account) -> None:
    venue = deribit_account.venue()
    assert type(venue.exchange) is ccxt_async.deribit
    asyncio.run(venue.close())
    instruments = {i.symbol: i for i in with_venue(deribit_account, lambda v: v.load_instruments())}
    catalogue = devnet_catalogue()
    expected = {i.symbol for i in catalogue if i.kind is not InstrumentKind.SPOT}
    assert set(instruments) == expected
    call = instruments[CALL]
    assert isinstance(call, EuropeanOption)
    assert (call.strike, call.expires_at, call.right) == (
        Decimal(3000),
        OPTION_EXPIRY,
        OptionRight.CALL,
    )
    assert call.base.symbol == "WETH"
    assert call.quote.symbol == "WETH"  # inverse option: premium in ETH
    assert (call.rules.tick_size, call.rules.lot_size) == (Decimal("0.0005"), Decimal("0.01"))
    put = instruments[PUT]
    assert isinstance(put, EuropeanOption) and put.right is OptionRight.PUT
    perp = instruments[PERP]
    assert isinstance(perp, Perpetual)
    assert (perp.base.symbol, perp.quote.symbol) == ("WETH", "USDC")
    assert len(OPTION_STRIKES) * 2 + 1 == len(instruments)


def test_fees_come_from_the_instrument_list(deribit_account: Account) -> None:
    async def scenario(venue: CcxtVenue) -> FeeSchedule:
        await venue.load_instruments()
        return venue.fees(CALL)

    assert with_venue(deribit_account, scenario) == FeeSchedule(Decimal(3), Decimal(5))


def test_option_order_book(deribit_account: Account) -> None:
    book = with_venue(deribit_account, lambda v: v.fetch_order_book(CALL, depth=3))
    bids, asks = sim_of(deribit_account).exchange.depth("ETH-26MAR27-3000-C", 3)
    assert [(b.price, b.quantity) for b in book.bids] == bids
    assert [(a.price, a.quantity) for a in book.asks] == asks
    assert all(type(level.price) is Decimal for level in (*book.bids, *book.asks))
    assert book.bids[0].price < book.asks[0].price
    assert book.sequence is not None


def test_buying_an_option_opens_a_position_and_pays_premium_and_fee(
    deribit_account: Account,
) -> None:
    async def scenario(venue: CcxtVenue) -> None:
        before = await venue.fetch_balances()
        book = await venue.fetch_order_book(CALL, depth=1)
        order = await venue.place_order(
            VenueOrderRequest(CALL, Side.BUY, OrderType.MARKET, Decimal("1.5"))
        )
        ask = book.asks[0].price
        assert order.status is VenueOrderStatus.CLOSED
        assert (order.filled, order.average_price) == (Decimal("1.5"), ask)
        premium = ask * Decimal("1.5")
        fee = (premium * FIVE_BPS).quantize(Decimal("1e-8"))
        assert (order.fee, order.fee_asset) == (fee, "WETH")
        after = await venue.fetch_balances()
        assert before["WETH"].total - after["WETH"].total == premium + fee
        positions = {p.instrument: p for p in await venue.fetch_positions()}
        assert positions[CALL].quantity == Decimal("1.5")
        assert positions[CALL].average_price == ask
        fetched = await venue.fetch_order(order.venue_order_id, CALL)
        assert (fetched.status, fetched.filled, fetched.fee) == (
            VenueOrderStatus.CLOSED,
            Decimal("1.5"),
            fee,
        )

    with_venue(deribit_account, scenario)


def test_selling_an_option_short_locks_margin(deribit_account: Account) -> None:
    async def scenario(venue: CcxtVenue) -> None:
        book = await venue.fetch_order_book(PUT, depth=1)
        bid = book.bids[0].price
        order = await venue.place_order(
            VenueOrderRequest(PUT, Side.SELL, OrderType.LIMIT, Decimal(2), price=bid)
        )
        assert order.status is VenueOrderStatus.CLOSED and order.average_price == bid
        positions = {p.instrument: p for p in await venue.fetch_positions()}
        assert positions[PUT].quantity == Decimal(-2)
        balances = await venue.fetch_balances()
        assert balances["WETH"].locked == Decimal(2)  # one ETH of margin per option sold
        fee = (bid * 2 * FIVE_BPS).quantize(Decimal("1e-8"))
        assert balances["WETH"].total == Decimal(10) + bid * 2 - fee

    with_venue(deribit_account, scenario)


def test_perpetual_position_and_margin(deribit_account: Account) -> None:
    async def scenario(venue: CcxtVenue) -> None:
        book = await venue.fetch_order_book(PERP, depth=1)
        order = await venue.place_order(
            VenueOrderRequest(PERP, Side.BUY, OrderType.MARKET, Decimal("0.5"))
        )
        ask = book.asks[0].price
        assert (order.filled, order.average_price) == (Decimal("0.5"), ask)
        fee = (ask * Decimal("0.5") * FIVE_BPS).quantize(Decimal("1e-8"))
        assert (order.fee, order.fee_asset) == (fee, "USDC")
        positions = {p.instrument: p for p in await venue.fetch_positions()}
        assert positions[PERP].quantity == Decimal("0.5")
        balances = await venue.fetch_balances()
        assert balances["USDC"].total == Decimal(100_000) - fee
        assert balances["USDC"].locked == ask * Decimal("0.5") / 10  # 10% initial margin

    with_venue(deribit_account, scenario)


def test_resting_order_cancel_and_unknown_orders(deribit_account: Account) -> None:
    async def scenario(venue: CcxtVenue) -> None:
        book = await venue.fetch_order_book(CALL, depth=1)
        price = book.bids[0].price - Decimal("0.01")
        order = await venue.place_order(
            VenueOrderRequest(
                CALL, Side.BUY, OrderType.LIMIT, Decimal(1), price=price, client_order_id="c-1"
            )
        )
        assert order.status is VenueOrderStatus.OPEN and order.price == price
        assert order.client_order_id == "c-1"
        sim = sim_of(deribit_account)
        assert (
            sim.exchange.order(deribit_account.name, int(order.venue_order_id[4:])).client_order_id
            == "c-1"
        )
        assert order.venue_order_id.startswith("ETH-")
        balances = await venue.fetch_balances()
        assert balances["WETH"].locked == price + (price * FIVE_BPS).quantize(Decimal("1e-8"))
        canceled = await venue.cancel_order(order.venue_order_id, CALL)
        assert canceled.status is VenueOrderStatus.CANCELED
        assert (await venue.fetch_balances())["WETH"].locked == 0
        with pytest.raises(VenueOrderNotFound):  # 10010 already_closed
            await venue.cancel_order(order.venue_order_id, CALL)
        with pytest.raises(VenueOrderNotFound):  # 10004 order_not_found
            await venue.fetch_order("ETH-99999999", CALL)
        with pytest.raises(VenueOrderNotFound):
            await venue.cancel_order("ETH-99999999", CALL)

    with_venue(deribit_account, scenario)


def test_insufficient_funds(deribit: RunningSim) -> None:
    poor = open_account(deribit, {"ETH": Decimal("0.01")})

    async def scenario(venue: CcxtVenue) -> None:
        with pytest.raises(VenueInsufficientFunds, match="not_enough_funds"):
            await venue.place_order(VenueOrderRequest(CALL, Side.BUY, OrderType.MARKET, Decimal(1)))
        with pytest.raises(VenueInsufficientFunds):
            await venue.place_order(
                VenueOrderRequest(PUT, Side.SELL, OrderType.LIMIT, Decimal(1), price=Decimal("1"))
            )

    with_venue(poor, scenario)


def test_post_only_that_would_take_is_rejected(deribit_account: Account) -> None:
    async def scenario(venue: CcxtVenue) -> None:
        book = await venue.fetch_order_book(CALL, depth=1)
        with pytest.raises(VenueRejected, match="post_only_reject"):
            await venue.place_order(
                VenueOrderRequest(
                    CALL,
                    Side.BUY,
                    OrderType.LIMIT,
                    Decimal(1),
                    price=book.asks[0].price,
                    post_only=True,
                )
            )

    with_venue(deribit_account, scenario)


def test_bad_credentials_are_authentication_errors(deribit_account: Account) -> None:
    async def scenario(venue: CcxtVenue) -> VenueError:
        with pytest.raises(VenueError) as raised:
            await venue.fetch_balances()
        return raised.value

    bad_secret = with_venue(deribit_account, scenario, secret="wrong")
    assert type(bad_secret) is VenueError and bad_secret.code == "venue_authentication"
    assert "13009" in str(bad_secret)
    bad_id = with_venue(deribit_account, scenario, api_key="nobody")
    assert type(bad_id) is VenueError and bad_id.code == "venue_authentication"
    sim = sim_of(deribit_account)
    with sim.lock:
        sim.clock_offset_ms = -120_000  # signed timestamps two minutes in the server's future
    try:
        stale = with_venue(deribit_account, scenario)
    finally:
        with sim.lock:
            sim.clock_offset_ms = 0
    assert type(stale) is VenueError and stale.code == "venue_authentication"


def test_too_many_requests_is_venue_unavailable(deribit_account: Account) -> None:
    sim_of(deribit_account).limiter.key_limits[deribit_account.api_key] = 3

    async def scenario(venue: CcxtVenue) -> None:
        with pytest.raises(VenueUnavailable, match="too_many_requests"):
            for _ in range(5):
                await venue.fetch_balances()

    with_venue(deribit_account, scenario)


def test_client_credentials_token_authorizes_private_calls(deribit_account: Account) -> None:
    base = deribit_account.running.url + "/api/v2"
    token = httpx.get(
        base + "/public/auth",
        params={
            "grant_type": "client_credentials",
            "client_id": deribit_account.api_key,
            "client_secret": deribit_account.secret,
        },
    ).json()["result"]["access_token"]
    summary = httpx.get(
        base + "/private/get_account_summary",
        params={"currency": "ETH"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert summary["result"]["currency"] == "ETH"
    assert summary["result"]["available_funds"] == 10
    refused = httpx.get(
        base + "/private/get_account_summary",
        params={"currency": "ETH"},
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert refused.json()["error"] == {"code": 13009, "message": "unauthorized"}
    wrong = httpx.get(
        base + "/public/auth",
        params={
            "grant_type": "client_credentials",
            "client_id": deribit_account.api_key,
            "client_secret": "wrong",
        },
    ).json()
    assert wrong["error"]["code"] == 13004
    rpc = httpx.post(
        base,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "private/get_positions",
            "params": {"currency": "ETH"},
        },
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert rpc["result"] == []


@pytest.mark.parametrize("websocket", [False, True], ids=["polling", "websocket"])
def test_stream_order_books_follows_the_market(deribit: RunningSim, websocket: bool) -> None:
    """Books of several instruments, polled or from the `book.<instrument>.100ms` WebSocket
    subscription through ccxt.pro: after the market moves, the stream reaches the
    simulator's book for each instrument."""
    account = open_account(deribit, {"ETH": Decimal(1)})
    sim = sim_of(account)
    names = {PERP: "ETH_USDC-PERPETUAL", CALL: "ETH-26MAR27-3000-C"}
    Levels = list[tuple[Decimal, Decimal]]

    def simulator_book(instrument: str) -> tuple[Levels, Levels]:
        with sim.lock:
            return sim.exchange.depth(names[instrument], 1000)

    async def scenario(venue: CcxtVenue) -> None:
        stream = venue.stream_order_books([PERP, CALL])
        seen: dict[str, tuple[Levels, Levels]] = {}

        async def read_until(targets: dict[str, tuple[Levels, Levels]]) -> None:
            for _ in range(50):
                if all(seen.get(i) == target for i, target in targets.items()):
                    return
                book = await anext(stream)
                assert all(type(level.price) is Decimal for level in (*book.bids, *book.asks))
                seen[book.instrument] = (
                    [(b.price, b.quantity) for b in book.bids],
                    [(a.price, a.quantity) for a in book.asks],
                )
            raise AssertionError(f"the stream never reached the simulator's books: {targets}")

        await read_until({i: simulator_book(i) for i in names})
        for _ in range(3):
            before = simulator_book(PERP)
            for _ in range(100):  # a step of zero ticks changes nothing: step again
                sim.step()
                if simulator_book(PERP) != before:
                    break
            assert simulator_book(PERP) != before
            await read_until({i: simulator_book(i) for i in names})
        await stream.aclose()  # type: ignore[attr-defined]

    async def main() -> None:
        venue = account.venue(websocket=websocket)
        assert type(venue.exchange) is (ccxt_pro.deribit if websocket else ccxt_async.deribit)
        try:
            await asyncio.wait_for(scenario(venue), timeout=30)
        finally:
            await venue.close()

    asyncio.run(main())
