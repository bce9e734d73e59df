"""The AMM venue against real Uniswap v2 contracts (the published artifacts) on anvil."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from web3 import Web3

from gateway.chain import tokens, uniswap
from gateway.chain.anvil import Anvil, AnvilConfig
from gateway.chain.artifacts import uniswap_v2_periphery
from gateway.chain.transactions import Sender, bind, connect
from gateway.devnet.catalogue import devnet_catalogue
from gateway.domain import amm
from gateway.domain.market import VenueOrderRequest
from gateway.domain.orders import OrderType, Side
from gateway.oms.service import SystemClock
from gateway.venues.amm import Pool, UniswapV2Venue
from gateway.venues.protocol import VenueRejected

pytestmark = pytest.mark.chain
POOL_WETH = 1_000 * 10**18
POOL_USDC = 3_000_000 * 10**6


@dataclass
class World:
    node: Anvil
    w3: Web3
    owner: Sender
    trader: Sender
    weth: str
    usdc: str
    pair: str
    router: str

    def venue(self, trader: Sender | None = None) -> UniswapV2Venue:
        pool = Pool("WETH/USDC", self.pair, self.weth, self.usdc, 18, 6)
        return UniswapV2Venue(
            "uniswap",
            self.w3,
            self.router,
            [pool],
            devnet_catalogue(),
            SystemClock(),
            trader=trader or self.trader,
            poll_interval=0.01,
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
        tokens.mint(owner, weth, owner.address, POOL_WETH)
        tokens.mint(owner, usdc, owner.address, POOL_USDC)
        uniswap.add_liquidity(owner, pair, weth, POOL_WETH, usdc, POOL_USDC)
        tokens.mint(owner, weth, trader.address, 100 * 10**18)
        tokens.mint(owner, usdc, trader.address, 1_000_000 * 10**6)
        yield World(node, w3, owner, trader, weth, usdc, pair, uni.router)


def router(world: World):  # type: ignore[no-untyped-def]
    return bind(world.w3, uniswap_v2_periphery("UniswapV2Router02"), world.router)


@settings(max_examples=40, deadline=None)
@given(quantity=st.integers(min_value=1, max_value=500_000).map(lambda n: Decimal(n) / 10_000))
def test_quotes_equal_the_router_math_to_the_wei(world: World, quantity: Decimal) -> None:
    venue = world.venue()
    units = int(quantity * 10**18)
    sell = venue.quote("WETH/USDC", Side.SELL, quantity)
    assert (
        sell.quote_units
        == router(world).functions.getAmountsOut(units, [world.weth, world.usdc]).call()[1]
    )
    buy = venue.quote("WETH/USDC", Side.BUY, quantity)
    assert (
        buy.quote_units
        == router(world).functions.getAmountsIn(units, [world.usdc, world.weth]).call()[0]
    )
    assert buy.quote_units > sell.quote_units  # the spread: fee both ways plus impact


def test_a_swap_lands_exactly_at_its_quote(world: World) -> None:
    venue = world.venue()
    quantity = Decimal("2.5")
    before = tokens.balance_of(world.w3, world.usdc, world.trader.address)
    quote = venue.quote("WETH/USDC", Side.SELL, quantity)
    order = asyncio.run(
        venue.place_order(
            VenueOrderRequest("WETH/USDC", Side.SELL, OrderType.LIMIT, quantity, Decimal("2900"))
        )
    )
    received = tokens.balance_of(world.w3, world.usdc, world.trader.address) - before
    assert received == quote.quote_units
    assert order.filled == quantity
    assert order.average_price == Decimal(received) / 10**6 / quantity
    reserves = uniswap.get_reserves(world.w3, world.pair)
    assert reserves.of(world.weth) == quote.reserve_base + quote.base_units
    assert reserves.of(world.usdc) == quote.reserve_quote - quote.quote_units


def test_a_price_bound_that_cannot_be_met_reverts_and_moves_nothing(world: World) -> None:
    venue = world.venue()
    weth_before = tokens.balance_of(world.w3, world.weth, world.trader.address)
    usdc_before = tokens.balance_of(world.w3, world.usdc, world.trader.address)
    with pytest.raises(VenueRejected):
        asyncio.run(
            venue.place_order(
                VenueOrderRequest(
                    "WETH/USDC", Side.BUY, OrderType.LIMIT, Decimal(1), Decimal("2000")
                )
            )
        )
    assert tokens.balance_of(world.w3, world.weth, world.trader.address) == weth_before
    assert tokens.balance_of(world.w3, world.usdc, world.trader.address) == usdc_before


def test_the_pool_as_a_book(world: World) -> None:
    venue = world.venue()
    book = asyncio.run(venue.fetch_order_book("WETH/USDC", depth=10))
    assert len(book.asks) == len(book.bids) == 10
    assert all(a.price <= b.price for a, b in itertools.pairwise(book.asks))
    assert all(a.price >= b.price for a, b in itertools.pairwise(book.bids))
    assert book.bids[0].price < book.asks[0].price
    reserves = uniswap.get_reserves(world.w3, world.pair)
    chunk = int(book.asks[0].quantity * 10**18)
    first_cost = amm.amount_in(chunk, reserves.of(world.usdc), reserves.of(world.weth))
    assert book.asks[0].price == Decimal(first_cost) / 10**6 / book.asks[0].quantity


def test_stream_yields_a_new_book_when_reserves_move(world: World) -> None:
    async def scenario() -> None:
        venue = world.venue()
        stream = venue.stream_order_books(["WETH/USDC"])
        first = await asyncio.wait_for(anext(stream), 10)
        await venue.place_order(
            VenueOrderRequest("WETH/USDC", Side.BUY, OrderType.MARKET, Decimal("1"))
        )
        second = await asyncio.wait_for(anext(stream), 10)
        assert second.asks[0].price > first.asks[0].price  # buying made WETH dearer
        await stream.aclose()

    asyncio.run(scenario())


def test_without_a_trading_account_the_venue_only_quotes(world: World) -> None:
    venue = UniswapV2Venue(
        "uniswap",
        world.w3,
        world.router,
        [Pool("WETH/USDC", world.pair, world.weth, world.usdc, 18, 6)],
        devnet_catalogue(),
        SystemClock(),
    )
    assert venue.quote("WETH/USDC", Side.SELL, Decimal(1)).quote_units > 0
    with pytest.raises(VenueRejected):
        asyncio.run(
            venue.place_order(
                VenueOrderRequest("WETH/USDC", Side.SELL, OrderType.MARKET, Decimal(1))
            )
        )
