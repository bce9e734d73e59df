"""A single writer that commits concurrent write commands in batches.

Requests queue their command and wait. The writer takes everything queued (up to
`batch_max`), runs each command in its own SAVEPOINT inside one transaction (a failing
command rolls back alone), appends the audit records of the successful ones, and commits
once: one fsync for the whole batch. Only then are callers answered and events published,
so nothing is acknowledged before it is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine

from gateway.domain.clock import Clock
from gateway.store import audit_log
from gateway.store.audit_log import AuditEntry

T = TypeVar("T")


@dataclass(slots=True)
class CommandResult(Generic[T]):
    value: T
    audit: list[AuditEntry] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


Command = Callable[[Connection, datetime], CommandResult[Any]]


class GroupCommitter:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        batch_max: int,
        on_committed: Callable[[list[dict[str, Any]]], None],
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._batch_max = batch_max
        self._on_committed = on_committed
        self._queue: asyncio.Queue[tuple[Command, asyncio.Future[Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.commands = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def execute(self, command: Command) -> Any:
        if self._task is None:
            raise RuntimeError("the writer is not running")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((command, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                outcomes, events = await asyncio.to_thread(self._apply, [c for c, _ in batch])
            except Exception as error:  # the commit itself failed: nothing was written
                outcomes, events = [error] * len(batch), []
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():  # the caller went away; its write stands
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
            if events:
                self._on_committed(events)
            self.batches += 1
            self.commands += len(batch)
            for _ in batch:
                self._queue.task_done()

    def _apply(self, commands: list[Command]) -> tuple[list[Any], list[dict[str, Any]]]:
        now = self._clock.now()
        outcomes: list[Any] = []
        entries: list[AuditEntry] = []
        events: list[dict[str, Any]] = []
        with self._engine.begin() as connection:
            for command in commands:
                try:
                    with connection.begin_nested():
                        result = command(connection, now)
                except Exception as error:
                    outcomes.append(error)
                    continue
                outcomes.append(result.value)
                entries.extend(result.audit)
                events.extend(result.events)
            audit_log.append(connection, entries, now)
        return outcomes, events
