"""Holding a single-writer role through a lease in PostgreSQL (`gateway.store.leases`).

Every replica runs one `RoleLease` per role. It renews the lease while it holds it and tries to
take it while it does not. Taking it calls `on_acquired` (the replica rebuilds the role's state
from the store and the chain, as a restart does, then serves it); renewing keeps running
meanwhile. A holder that finds its lease gone (it was paused or cut off past the lease and
another replica took over) calls `on_lost`: its in-memory state may be behind the store, so the
process must not go on serving the role. Its writes are refused by the store in any case: the
writer checks the fencing token inside each commit (`fence`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import Connection, Engine

from gateway.store import leases as store
from gateway.store.leases import Lease, StaleLease

log = logging.getLogger("gateway.leases")
# the share of the lease's term after the last renewal in which a holder still acts alone
FRESH_SHARE = 0.8


class RoleLease:
    def __init__(
        self,
        engine: Engine,
        role: str,
        replica_id: str,
        address: str,
        *,
        ttl: float,
        renew_every: float,
        on_acquired: Callable[[int], Awaitable[None]],
        on_lost: Callable[[], None],
        pid: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self.role = role
        self.replica_id = replica_id
        self.address = address
        self.ttl = ttl
        self.renew_every = renew_every
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self._pid = pid
        self._monotonic = monotonic  # runs on while the process is stopped
        self.token: int | None = None
        self.holder: Lease | None = None  # the live holder as last read (maybe this replica)
        self.active = asyncio.Event()  # set once `on_acquired` has finished
        self.running = False
        self._renewed = 0.0  # monotonic time before the last renewal (or acquisition) began
        self._activation: asyncio.Task[None] | None = None

    @property
    def holding(self) -> bool:
        return self.token is not None

    def fence(self, connection: Connection) -> None:
        """For the writer: refuse the commit unless this replica still holds the role."""
        if self.token is None:
            raise StaleLease(
                f"this replica does not hold {self.role!r}; the write was refused",
                code="not_holder",
            )
        store.check_fence(connection, self.role, self.replica_id, self.token)

    async def run(self) -> None:
        self.running = True
        try:
            while True:
                try:
                    await self.tick()
                except Exception:
                    log.exception("lease %s: the database did not answer", self.role)
                await asyncio.sleep(self.renew_every)
        finally:
            self.running = False

    async def tick(self) -> None:
        """One renewal (or attempt to take the role), and the holder as the database says."""
        token = self.token
        began = self._monotonic()

        def step() -> tuple[int | None, bool, Lease | None]:
            with self._engine.begin() as connection:
                store.heartbeat(connection, self.replica_id, self.address, self._pid)
                if token is not None:
                    kept = store.renew(connection, self.role, self.replica_id, token, self.ttl)
                    return (token if kept else None), not kept, store.holder(connection, self.role)
                taken = store.try_acquire(
                    connection, self.role, self.replica_id, self.address, self.ttl
                )
                return taken, False, store.holder(connection, self.role)

        new_token, lost, self.holder = await asyncio.to_thread(step)
        if new_token is not None:
            self._renewed = began
        if lost:
            self.token = None
            self.active.clear()
            log.error("lease %s: lost (token %s); another replica holds it now", self.role, token)
            self._on_lost()
            return
        if token is None and new_token is not None:
            self.token = new_token
            log.warning("lease %s: taken with token %s", self.role, new_token)
            self._activation = asyncio.create_task(
                self._activate(new_token), name=f"{self.role}-activation"
            )

    async def _activate(self, token: int) -> None:
        try:
            await self._on_acquired(token)
        except Exception:
            log.exception("lease %s: taking over the role failed", self.role)
            self._on_lost()
            return
        self.active.set()

    def ensure_fresh(self) -> None:
        """Before an action the store cannot take back (an exchange order, a transaction):
        raise unless this replica renewed its lease within most of its term by its own
        monotonic clock, which runs on while the process is paused. A holder stopped past its
        lease therefore does nothing on waking up before it learns it lost the role."""
        if self.token is None or self._monotonic() - self._renewed > self.ttl * FRESH_SHARE:
            raise StaleLease(
                f"this replica's lease on {self.role!r} may have lapsed; nothing was sent",
                code="stale_lease",
            )

    def holder_address(self) -> str | None:
        """Where the role's holder serves, as last read (None: nobody holds it)."""
        return None if self.holder is None else self.holder.address

    async def release(self) -> None:
        """A clean stop: give the role up so another replica takes it at once."""
        if self._activation is not None and not self._activation.done():
            self._activation.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._activation
        token, self.token = self.token, None
        if token is None:
            return

        def step() -> None:
            with self._engine.begin() as connection:
                store.release(connection, self.role, self.replica_id, token)

        with contextlib.suppress(Exception):
            await asyncio.to_thread(step)
