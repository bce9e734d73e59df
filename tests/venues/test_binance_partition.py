"""The Binance simulator's fault switch: an order executed, then the exchange cut off before
its answer (`BinanceSim.lose_next_order_answer`), seen through the real ccxt class."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal

import pytest

from gateway.devnet.catalogue import devnet_catalogue
from gateway.devnet.exchange_sim.binance import BinanceSim
from gateway.devnet.exchange_sim.history import HistoryConfig
from gateway.devnet.exchange_sim.server import SimServer
from gateway.devnet.exchange_sim.venues import binance_venue_config
from gateway.domain.market import VenueOrderRequest, VenueOrderStatus
from gateway.domain.orders import OrderType, Side, TimeInForce
from gateway.venues.ccxt_venue import CcxtVenue
from gateway.venues.protocol import VenueUnavailable

KEY, SECRET = "partition-key", "partition-secret"
SELL = VenueOrderRequest(
    "WETH/USDC",
    Side.SELL,
    OrderType.LIMIT,
    Decimal("0.7"),
    Decimal("2990"),
    TimeInForce.IOC,
    client_order_id="parent-1-0",
)


@pytest.fixture
def served() -> Iterator[tuple[BinanceSim, SimServer]]:
    sim = BinanceSim(seed=3, devnet_account=False, history=HistoryConfig(days=0))
    sim.add_account(KEY, SECRET, {"ETH": Decimal(5), "USDC": Decimal(10_000)})
    server = SimServer(sim.app).start()
    try:
        yield sim, server
    finally:
        server.stop()


def _venue(server: SimServer) -> CcxtVenue:
    config = binance_venue_config(
        server.url, api_key=KEY, secret=SECRET, enable_rate_limit=False, websocket=False
    )
    return CcxtVenue(replace(config, timeout_ms=1000), catalogue=devnet_catalogue())


def test_a_lost_answer_times_out_and_the_order_is_found_once_the_exchange_is_back(
    served: tuple[BinanceSim, SimServer],
) -> None:
    sim, server = served
    partition = sim.lose_next_order_answer()

    async def scenario() -> None:
        venue = _venue(server)
        try:
            await venue.load_instruments()
            with pytest.raises(VenueUnavailable):
                await venue.place_order(SELL)
            assert partition.executed.is_set()
            assert partition.client_order_id == SELL.client_order_id
            with pytest.raises(VenueUnavailable):  # cut off: nothing is answered
                await venue.find_order("parent-1-0", "WETH/USDC")
            assert sim.exchange.free(KEY, "ETH") == Decimal("4.3")  # but it was executed
            partition.restore()
            found = await venue.find_order("parent-1-0", "WETH/USDC")
            assert found is not None
            assert (found.status, found.filled) == (VenueOrderStatus.CLOSED, Decimal("0.7"))
            with pytest.raises(RuntimeError):  # one at a time
                sim.lose_next_order_answer()
                sim.lose_next_order_answer()
        finally:
            await venue.close()

    asyncio.run(scenario())
    assert [o.client_order_id for o in sim.exchange.open_orders(KEY)] == []


def test_a_held_answer_can_arrive_late(served: tuple[BinanceSim, SimServer]) -> None:
    sim, server = served
    partition = sim.lose_next_order_answer()

    def restore_once_executed() -> None:
        assert partition.executed.wait(30)
        partition.restore(deliver_answer=True)

    restorer = threading.Thread(target=restore_once_executed)
    restorer.start()

    async def scenario() -> None:
        venue = _venue(server)
        try:
            await venue.load_instruments()
            placed = await venue.place_order(SELL)
            assert (placed.status, placed.filled) == (VenueOrderStatus.CLOSED, Decimal("0.7"))
        finally:
            await venue.close()

    asyncio.run(scenario())
    restorer.join()
