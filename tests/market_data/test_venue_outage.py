"""A real venue dies mid-stream: its quotes leave the book within a bounded time, and
when it comes back the feed reconnects by itself."""

from __future__ import annotations

import asyncio

from gateway.devnet.catalogue import devnet_catalogue
from gateway.devnet.exchange_sim.binance import BinanceSim
from gateway.devnet.exchange_sim.server import SimServer
from gateway.devnet.exchange_sim.venues import binance_venue_config
from gateway.oms.service import SystemClock
from gateway.venues.ccxt_venue import CcxtVenue
from gateway.venues.market_data import Backoff, FeedStatus, MarketDataHub
from tests.market_data.test_hub import status_change

SYMBOL = "WETH/USDC"


def test_a_killed_exchange_goes_stale_then_recovers() -> None:
    async def scenario() -> None:
        sim = BinanceSim(seed=3)
        server = await asyncio.to_thread(SimServer(sim.app).start)
        port = server.port
        venue = CcxtVenue(
            binance_venue_config(server.url, websocket=False, poll_interval=0.05),
            catalogue=devnet_catalogue(),
            clock=SystemClock(),
        )
        hub = MarketDataHub(
            [venue],
            {"binance": [SYMBOL]},
            SystemClock(),
            stale_after=1.0,
            backoff=Backoff(initial=0.05, maximum=0.2),
            seed=1,
        )
        hub.start()
        try:
            await status_change(hub, "binance", FeedStatus.LIVE, timeout=20)
            assert hub.book(SYMBOL).asks

            await asyncio.to_thread(server.stop)  # the exchange goes away
            loop = asyncio.get_running_loop()
            died = loop.time()
            await status_change(hub, "binance", FeedStatus.STALE, timeout=10)
            assert loop.time() - died < 5  # bounded: an error or the 1 s staleness age
            book = hub.book(SYMBOL)
            assert book.live_venues == () and book.asks == () and book.bids == ()

            server = await asyncio.to_thread(SimServer(sim.app, port).start)  # same address
            await status_change(hub, "binance", FeedStatus.LIVE, timeout=20)
            assert hub.book(SYMBOL).live_venues == ("binance",)
            assert hub.feeds["binance"].failures == 0
        finally:
            await hub.stop()
            await venue.close()
            await asyncio.to_thread(server.stop)

    asyncio.run(scenario())
