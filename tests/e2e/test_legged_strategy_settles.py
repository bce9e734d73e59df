"""A signed strategy legged across two exchanges (`"route": "legged"`), traded with the
operator's inventory on chain: a covered call (buy WETH, sell a WETH call) for 3 units in
clips of at most 3,500 USDC unhedged; the first two clips complete, then the spot exchange
goes cancel-only and the third clip's call leg is unwound. Only the two completed clips
settle, both legs in one transaction; the unwound clip settles nothing (it was never the
trader's); the inventory wallet holds the mirror of the completed units and the exchange
accounts the hedges (the unwound clip back out).

Both legs trade on simulated Binance exchanges (the real ccxt class over HTTP); the second
quotes the call (its one market, named by the venue's symbol map as the catalogue's option)
so that both legs are instruments of one underlying that settle on chain. Time is a
`SimClock`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from gateway.chain.anvil import Anvil
from gateway.chain.deploy import register_option
from gateway.chain.transactions import Sender
from gateway.chain.wallet_state import read_wallet_state
from gateway.devnet.catalogue import OPTION_EXPIRY, devnet_catalogue
from gateway.devnet.exchange_sim.binance import BinanceSim
from gateway.devnet.exchange_sim.server import SimServer
from gateway.devnet.exchange_sim.venues import binance_venue_config
from gateway.domain.instruments import InstrumentCatalogue
from gateway.domain.market import FeeSchedule, VenueOrder, VenueOrderRequest
from gateway.domain.sim_clock import SimClock
from gateway.oms.settlement_service import SettlementService
from gateway.routing.legging import LeggingStatus
from gateway.settlement.auditor import verify
from gateway.venues.ccxt_venue import CcxtVenue
from gateway.venues.market_data import FeedStatus
from gateway.venues.protocol import Venue, VenueRejected
from tests.chain.settlement_desk import USDC, WETH, Desk, serve
from tests.market_data.test_hub import status_change

pytestmark = pytest.mark.chain

KEY, SECRET = "legging-hedge-key", "legging-hedge-secret"
SECOND = timedelta(seconds=1)
TAKER_FEE = Decimal("0.001")
CALL = "WETH-20270326-3200-C"


class GoesCancelOnly:
    """The real venue, refusing new orders after its first `allowed` (an exchange gone
    cancel-only in the middle of the run)."""

    def __init__(self, venue: Venue, allowed: int) -> None:
        self._venue = venue
        self.allowed = allowed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._venue, name)

    async def place_order(self, request: VenueOrderRequest) -> VenueOrder:
        if self.allowed <= 0:
            raise VenueRejected("cancel-only mode", venue=self._venue.name)
        self.allowed -= 1
        return await self._venue.place_order(request)


@pytest.fixture
def two_exchanges() -> Iterator[tuple[BinanceSim, SimServer, BinanceSim, SimServer]]:
    first = BinanceSim(seed=31, start_mid=Decimal("3000.00"))
    second = BinanceSim(seed=32, start_mid=Decimal("150.00"))
    first.add_account(KEY, SECRET, {"ETH": Decimal(0), "USDC": Decimal(100_000)})
    # the call's exchange: its "ETH" is the call
    second.add_account(KEY, SECRET, {"ETH": Decimal(10), "USDC": Decimal(10_000)})
    servers = SimServer(first.app).start(), SimServer(second.app).start()
    try:
        yield first, servers[0], second, servers[1]
    finally:
        for server in servers:
            server.stop()


def _venue(server: SimServer, name: str, symbol: str, catalogue: InstrumentCatalogue) -> CcxtVenue:
    config = binance_venue_config(
        server.url,
        api_key=KEY,
        secret=SECRET,
        enable_rate_limit=False,
        poll_interval=0.05,
        websocket=False,
    )
    fees = FeeSchedule(maker_bps=Decimal(8), taker_bps=Decimal(10))
    config = replace(
        config,
        name=name,
        symbol_map={symbol: "ETH/USDC"},
        asset_map={"ETH": "WETH"},  # what the cap on a sell reads: the base held
        fees={symbol: fees},
    )
    return CcxtVenue(config, catalogue=catalogue)


def test_a_legged_strategy_settles_its_two_completed_units_and_not_the_unwound_one(
    w3: Web3,
    deployer: Sender,
    anvil_node: Anvil,
    fresh_chain: Web3,
    tmp_path: Path,
    two_exchanges: tuple[BinanceSim, SimServer, BinanceSim, SimServer],
) -> None:
    first, first_server, second, second_server = two_exchanges
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'legged.db'}")
    register_option(
        deployer, desk.d, 3200 * USDC, int(OPTION_EXPIRY.timestamp()), True
    )  # the call, on chain
    catalogue = devnet_catalogue()
    token_map = {"WETH": desk.d.weth, "USDC": desk.d.usdc}
    trader, wallet = desk.buyer, desk.buyer_wallet  # 20,000 USDC
    inventory = desk.open_inventory(
        deployer, anvil_node.dev_accounts()[8], weth=5 * WETH, usdc=50_000 * USDC
    )

    def holdings(address: str) -> tuple[int, int]:
        return desk.balances(address)

    trader_before, inventory_before = holdings(wallet), holdings(inventory)
    chain_time = datetime.fromtimestamp(w3.eth.get_block("latest")["timestamp"], UTC)

    async def scenario() -> None:
        clock = SimClock(chain_time)
        # the call goes first (its spread is the wider); two clips' spot orders go
        # through, the third clip's is refused: its call leg is unwound
        spot_venue = GoesCancelOnly(_venue(first_server, "binance", "WETH/USDC", catalogue), 2)
        call_venue = _venue(second_server, "binance-options", CALL, catalogue)
        rt = desk.runtime(
            venues=(spot_venue, call_venue),  # type: ignore[arg-type]
            catalogue=catalogue,
            clock=clock,
            tokens=token_map,
            risk_orders_per_second=1000,
            risk_order_burst=1000,
        )
        http = await serve(rt)
        try:
            await status_change(rt.market_data, "binance", FeedStatus.LIVE, timeout=20)
            await status_change(rt.market_data, "binance-options", FeedStatus.LIVE, timeout=20)
            # buy WETH, sell the call: ~2,850 USDC of net debit per unit, at most 2,870
            created = await desk.strategy(
                http,
                trader,
                wallet,
                "buy",
                "2870",
                [
                    {"instrument": "WETH/USDC", "side": "buy"},
                    {"instrument": CALL, "side": "sell"},
                ],
                quantity="3",
                route="legged",
                # the call's tick is 0.5: unwinds need room beyond the mid to reach the ask
                legging={
                    "max_unhedged_notional": "3500",
                    "max_legging_time": "2",
                    "max_slippage_bps": "200",
                },
            )
            order_id = created["id"]
            for _ in range(20):  # clip by clip, the clock advanced by the test
                if not rt.legging.is_running(order_id):
                    break
                clock.advance(SECOND)
                await rt.legging.run_due(clock.now())
            report = await rt.legging.report(order_id)
            assert report.status is LeggingStatus.PARTIALLY_DONE, report
            assert report.clips == 3 and report.reason == "legging_timeout"
            units = report.completed_units  # two clips of 3,500 / 3,000 in lots of 0.01
            assert units == 2 * Decimal("1.16")
            call_leg = report.legs[1]
            assert call_leg.unwound_quantity == call_leg.opened_quantity - units > 0
            order = (await http.get(f"/v1/orders/{order_id}")).json()
            assert Decimal(order["filled_quantity"]) == units
            fills = (await http.get(f"/v1/orders/{order_id}/fills")).json()
            assert sorted((f["instrument"], f["side"], Decimal(f["quantity"])) for f in fills) == [
                (CALL, "sell", units),
                ("WETH/USDC", "buy", units),
            ]
            net = sum(Decimal(f["price"]) * (1 if f["side"] == "buy" else -1) for f in fills)
            assert net <= Decimal(2870)  # within the signed net limit per unit

            service = rt.settlement
            assert isinstance(service, SettlementService)
            outcome = await service.run_once()
            assert (outcome.batches, outcome.refused) == (1, 0)  # every leg, one transaction
            fills = (await http.get(f"/v1/orders/{order_id}/fills")).json()
            assert {f["settlement"] for f in fills} == {"settled"}
            assert len({f["tx_hash"] for f in fills}) == 1

            weth, usdc = holdings(wallet)
            paid = sum(
                int(Decimal(f["price"]) * Decimal(f["quantity"]) * USDC)
                * (1 if f["side"] == "buy" else -1)
                for f in fills
            )
            moved = int(units * WETH)
            assert weth - trader_before[0] == moved
            assert trader_before[1] - usdc == paid
            inv_weth, inv_usdc = holdings(inventory)
            assert inventory_before[0] - inv_weth == moved
            assert inv_usdc - inventory_before[1] == paid
            # the call on chain: the trader short what completed, the inventory long
            expiry, strike = int(OPTION_EXPIRY.timestamp()), 3200 * USDC
            for owner, sign in ((wallet, -1), (inventory, 1)):
                state = read_wallet_state(w3, owner, desk.d.settlement)
                assert state.position(desk.d.weth, expiry, strike, True) == sign * moved
            # the hedges: the completed units on each exchange, the unwound clip back out
            # (a buy's 10 bps fee is charged in what it buys)
            kept = 1 - TAKER_FEE
            assert first.exchange.free(KEY, "ETH") == units * kept
            sold, bought_back = call_leg.opened_quantity, call_leg.unwound_quantity
            assert second.exchange.free(KEY, "ETH") == 10 - sold + bought_back * kept
            assert sold - bought_back == units

            report_json = await asyncio.to_thread(
                verify, w3, desk.d.settlement, engine=rt.read_engine, tokens=token_map
            )
            assert report_json.ok, report_json.to_json()
        finally:
            await http.aclose()
            await rt.stop()

    asyncio.run(scenario())
