"""What one running gateway holds: engines, the writer, the service, the event fan-out."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from decimal import Decimal

from fastapi import Request, WebSocket
from sqlalchemy import Engine

from gateway.config import Settings
from gateway.devnet.catalogue import devnet_catalogue
from gateway.domain.clock import Clock
from gateway.domain.instruments import InstrumentCatalogue
from gateway.domain.market import FeeSchedule
from gateway.oms.events import OrderEvents
from gateway.oms.group_commit import GroupCommitter
from gateway.oms.service import OrderService, SystemClock
from gateway.store.database import create_database_engine, migrate
from gateway.venues.internal import InternalVenue
from gateway.venues.market_data import MarketDataHub
from gateway.venues.protocol import Venue


@dataclass
class Runtime:
    settings: Settings
    write_engine: Engine
    read_engine: Engine
    events: OrderEvents
    writer: GroupCommitter
    orders: OrderService
    market_data: MarketDataHub
    venues: list[Venue]
    background: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        catalogue: InstrumentCatalogue | None = None,
        clock: Clock | None = None,
        venues: list[Venue] | None = None,
    ) -> Runtime:
        clock = clock or SystemClock()
        catalogue = catalogue or devnet_catalogue()
        write_engine = create_database_engine(settings.database_url)
        migrate(write_engine)
        read_engine = create_database_engine(settings.database_url, for_writes=False)
        events = OrderEvents(settings.stream_queue_size)
        writer = GroupCommitter(
            write_engine,
            clock,
            batch_max=settings.commit_batch_max,
            on_committed=events.publish_all,
        )
        orders = OrderService(writer, read_engine, catalogue, clock)
        if venues is None:
            venues = [InternalVenue(catalogue, clock, FeeSchedule(Decimal(0), Decimal(0)))]
        market_data = MarketDataHub(
            venues,
            None,  # each venue says what it trades
            clock,
            stale_after=settings.venue_stale_after_seconds,
        )
        return cls(settings, write_engine, read_engine, events, writer, orders, market_data, venues)

    async def start(self, *, expiry_interval: float | None = 1.0) -> None:
        self.writer.start()
        self.market_data.start()
        if expiry_interval is not None:
            self.background.append(asyncio.create_task(self._expire_loop(expiry_interval)))

    async def _expire_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await self.orders.expire_due()

    async def stop(self) -> None:
        for task in self.background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.background.clear()
        await self.market_data.stop()
        for venue in self.venues:
            with contextlib.suppress(Exception):
                await venue.close()
        await self.writer.stop()
        self.write_engine.dispose()
        self.read_engine.dispose()


async def runtime(request: Request) -> Runtime:
    value: Runtime = request.app.state.runtime
    return value


async def websocket_runtime(websocket: WebSocket) -> Runtime:
    value: Runtime = websocket.app.state.runtime
    return value
