"""An exchange child's answer arrives late, after the reconciler has already looked the child
up at the exchange: the exchange executed it once, so the gateway must record it once.

The reconciler (`VenueChildren.reconcile`, every few seconds in a running gateway) looks up
every child that is not final, the ones still waiting for their answer included. Here the
exchange executes the smart sell's child and is cut off before answering
(`BinanceSim.lose_next_order_answer`); the reconciler's lookup arrives meanwhile; then the
exchange comes back and answers both, the order's answer late but intact."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from web3 import Web3

from gateway.chain.anvil import Anvil
from gateway.chain.transactions import Sender
from gateway.devnet.catalogue import devnet_catalogue
from gateway.devnet.exchange_sim.binance import BinanceSim
from gateway.devnet.exchange_sim.history import HistoryConfig
from gateway.devnet.exchange_sim.server import SimServer
from gateway.devnet.exchange_sim.venues import binance_venue_config
from gateway.venues.ccxt_venue import CcxtVenue
from tests.chain.settlement_desk import USDC, WETH, Desk, serve

pytestmark = pytest.mark.chain

HEDGE_KEY, HEDGE_SECRET = "late-hedge-key", "late-hedge-secret"


@pytest.fixture
def binance_sim() -> Iterator[tuple[BinanceSim, SimServer]]:
    sim = BinanceSim(seed=21, devnet_account=False, history=HistoryConfig(days=0))
    sim.add_account(HEDGE_KEY, HEDGE_SECRET, {"ETH": Decimal(50), "USDC": Decimal(500_000)})
    server = SimServer(sim.app).start()
    try:
        yield sim, server
    finally:
        server.stop()


def test_a_late_answer_after_the_reconciler_found_the_child_records_the_fill_once(
    w3: Web3,
    deployer: Sender,
    anvil_node: Anvil,
    fresh_chain: Web3,
    tmp_path: Path,
    binance_sim: tuple[BinanceSim, SimServer],
) -> None:
    sim, server = binance_sim
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'late.db'}")
    desk.open_inventory(deployer, anvil_node.dev_accounts()[8], weth=10 * WETH, usdc=100_000 * USDC)
    binance = CcxtVenue(
        binance_venue_config(
            server.url,
            api_key=HEDGE_KEY,
            secret=HEDGE_SECRET,
            enable_rate_limit=False,
            poll_interval=0.05,
            websocket=False,
        ),
        catalogue=devnet_catalogue(),
    )

    async def scenario() -> None:
        rt = desk.runtime(venues=(binance,))
        http = await serve(rt)
        try:
            hub = rt.market_data
            feed = hub.subscribe(frozenset({"WETH/USDC"}))
            while "binance" not in hub.book("WETH/USDC").live_venues:
                await asyncio.wait_for(feed.next(), 30)
            hub.unsubscribe(feed)
            partition = sim.lose_next_order_answer()
            sell = asyncio.create_task(
                desk.order(
                    http,
                    desk.seller,
                    desk.seller_wallet,
                    "sell",
                    "2",
                    "2996.90",  # after Binance's fee, only its best bid (0.5) is within
                    route="smart",
                    time_in_force="ioc",
                )
            )
            assert await asyncio.to_thread(partition.executed.wait, 30)
            reconciling = asyncio.create_task(rt.venue_children.reconcile())
            while partition.held < 2:  # the order's answer and the reconciler's lookup
                await asyncio.sleep(0.01)
            partition.restore(deliver_answer=True)
            order = await sell
            assert await reconciling == 1
            fills = (await http.get(f"/v1/orders/{order['id']}/fills")).json()
            on_binance = sum(Decimal(f["quantity"]) for f in fills if f["venue"] == "binance")
            executed = Decimal(50) - sim.exchange.total(HEDGE_KEY, "ETH")
            assert executed == Decimal("0.5")
            assert on_binance == executed, fills  # found twice, recorded once
        finally:
            await http.aclose()
            await rt.stop()

    asyncio.run(scenario())
