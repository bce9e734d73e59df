"""Every replica's stream follows the committed events through the database.

The holder's writer appends each commit's events to `stream_events` and NOTIFYs in the same
transaction; each replica LISTENs, reads what is new in order and publishes it to its own
WebSocket subscribers. A lost connection is caught up from the last event read, so nothing is
skipped; if the events it missed were already pruned, every subscriber is told of the gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

import psycopg
from sqlalchemy import Engine

from gateway.domain.clock import Clock
from gateway.oms.events import OrderEvents
from gateway.store import stream_outbox as store

log = logging.getLogger("gateway.stream")
READ_LIMIT = 1000
POLL_SECONDS = 1.0  # also read without a notification, should one be lost with its connection
KEEP = timedelta(minutes=10)


class EventFollower:
    def __init__(self, engine: Engine, events: OrderEvents, clock: Clock) -> None:
        self._engine = engine
        self._events = events
        self._clock = clock
        self._dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.last = 0

    def start_from_now(self) -> None:
        with self._engine.connect() as connection:
            self.last = store.last_seq(connection)

    async def run(self) -> None:
        await asyncio.to_thread(self.start_from_now)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True
                ) as connection:
                    await connection.execute(f"LISTEN {store.CHANNEL}")
                    await self.catch_up()
                    while True:
                        async for _ in connection.notifies(timeout=POLL_SECONDS, stop_after=1):
                            pass
                        await self.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following the stream events failed; reconnecting")
                await asyncio.sleep(POLL_SECONDS)

    async def catch_up(self) -> None:
        while True:
            last = self.last

            def read(last: int = last) -> tuple[int | None, list[tuple[int, dict[str, object]]]]:
                with self._engine.connect() as connection:
                    return store.after(connection, last, READ_LIMIT)

            oldest, rows = await asyncio.to_thread(read)
            if last and oldest is not None and oldest > last + 1 and rows and rows[0][0] == oldest:
                # what came between was pruned before this replica read it
                self._events.gap()
            for seq, event in rows:
                self._events.publish(event)
                self.last = seq
            if len(rows) < READ_LIMIT:
                return

    async def prune(self) -> None:
        """The holder keeps the last ten minutes (a replica cut off longer is told of a gap)."""
        now = self._clock.now()

        def delete() -> int:
            with self._engine.begin() as connection:
                return store.prune(connection, now, KEEP)

        with contextlib.suppress(Exception):
            await asyncio.to_thread(delete)
