"""A single writer that commits concurrent write commands in batches.

Requests queue their command and wait. The writer takes everything queued (up to
`batch_max`), runs each command in its own SAVEPOINT inside one transaction (a failing
command rolls back alone), appends the audit records of the successful ones, and commits
once: one fsync for the whole batch. Only then are callers answered and events published,
so nothing is acknowledged before it is durable.

The transactions run on one writer thread with its own connection, off the event loop,
except a lone write on an idle SQLite writer: that one commits on the loop itself, since the
two thread hops cost nearly as much as its commit. On PostgreSQL every batch goes to the
thread (its statements are round trips to a server).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Connection, Engine

from gateway.domain.clock import Clock
from gateway.store import audit_log, commit_memory
from gateway.store.audit_log import AuditEntry

log = logging.getLogger("gateway.oms")
T = TypeVar("T")
YIELDS_BEFORE_BATCH = 2


@dataclass(slots=True)
class CommandResult(Generic[T]):
    value: T
    audit: list[AuditEntry] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


Command = Callable[[Connection, datetime], CommandResult[Any]]


class BatchableCommand(Protocol):
    """A command whose instances can be applied together, set-wise, in a few statements.

    `apply_batch` returns one outcome per command: a result, or the exception that command
    alone must fail with. If it raises, the batch is retried one command at a time.
    """

    def __call__(self, connection: Connection, now: datetime) -> CommandResult[Any]: ...

    @classmethod
    def apply_batch(
        cls, connection: Connection, now: datetime, commands: Sequence[Any]
    ) -> list[CommandResult[Any] | Exception]: ...


class GroupCommitter:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        batch_max: int,
        on_committed: Callable[[list[dict[str, Any]]], None],
        fence: Callable[[Connection], None] | None = None,
        event_sink: Callable[[Connection, list[dict[str, Any]], datetime], None] | None = None,
    ) -> None:
        self._engine = engine
        # replicas: every commit first checks this replica still holds its lease (in the same
        # transaction), and writes its events where every replica's stream reads them
        self.fence = fence
        self.event_sink = event_sink
        self._clock = clock
        self._batch_max = batch_max
        self._on_committed = on_committed
        self._queue: asyncio.Queue[tuple[Command, asyncio.Future[Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._thread: _WriterThread | None = None
        # the writer thread's own connection, kept between batches (no pool checkout each)
        self._connection: Connection | None = None
        # SQLite commits in-process, in well under a millisecond, and nobody else writes
        # (one gateway per file): a lone write may commit on the loop itself. A server's
        # round trips (PostgreSQL) always go to the thread.
        self._inline = engine.dialect.name == "sqlite"
        self.batches = 0
        self.commands = 0

    @property
    def engine(self) -> Engine:
        return self._engine

    def now(self) -> datetime:
        """The time the writer stamps its records with."""
        return self._clock.now()

    def start(self) -> None:
        if self._task is None:
            # `_apply` looked up per batch: a test may wrap it to see each transaction
            self._thread = _WriterThread(lambda c: self._apply(c), self._close_connection)
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
        if self._thread is not None:
            await self._thread.stop()
            self._thread = None

    async def execute(self, command: Command) -> Any:
        return await self.enqueue(command)

    def enqueue(self, command: Command) -> asyncio.Future[Any]:
        """Queue `command` now (commands commit in the order they were queued) and return
        the future of its outcome."""
        if self._task is None:
            raise RuntimeError("the writer is not running")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((command, future))
        return future

    def publish(self, event: dict[str, Any]) -> None:
        """Publish an event that records nothing (a risk alert) through the commit path, so
        that it reaches subscribers the way committed events do (replicas: every replica's)."""

        def command(connection: Connection, now: datetime) -> CommandResult[None]:
            return CommandResult(None, [], [event])

        future = self.enqueue(command)
        future.add_done_callback(_log_failure)

    async def drain(self) -> None:
        """Wait until everything queued so far is committed (or failed)."""
        await self._queue.join()

    async def _run(self) -> None:
        thread = self._thread
        assert thread is not None, "started with its thread"
        while True:
            batch = [await self._queue.get()]
            # Let requests that already arrived reach the queue before cutting the batch:
            # a yield, not a delay, so an idle gateway answers just as fast.
            for _ in range(YIELDS_BEFORE_BATCH):
                await asyncio.sleep(0)
            while len(batch) < self._batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            commands = [c for c, _ in batch]
            try:
                if len(batch) == 1 and self._queue.empty() and self._inline:
                    # a lone write on an idle SQLite writer commits here: the two thread
                    # hops (~0.2 ms) were most of what it waited for beyond the commit
                    outcomes, events = self._apply(commands)
                else:
                    outcomes, events = await thread.run(commands)
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
                try:
                    self._on_committed(events)
                except Exception:  # a broken subscriber must not stop the writer
                    log.exception("publishing committed events failed")
            self.batches += 1
            self.commands += len(batch)
            for _ in batch:
                self._queue.task_done()

    def _apply(self, commands: list[Command]) -> tuple[list[Any], list[dict[str, Any]]]:
        try:
            return self._apply_in_transaction(commands, set_wise=True)
        except _RetryOneByOne:
            # A set-wise group failed as a whole (e.g. a constraint hit by another replica);
            # everything was rolled back, so replay each command in its own savepoint.
            return self._apply_in_transaction(commands, set_wise=False)

    def _apply_in_transaction(
        self, commands: list[Command], *, set_wise: bool
    ) -> tuple[list[Any], list[dict[str, Any]]]:
        now = self._clock.now()
        connection = self._connection
        if connection is None:
            connection = self._connection = self._engine.connect()
        try:
            return self._apply_on(connection, commands, now, set_wise=set_wise)
        except BaseException:
            # whatever failed (a retry one by one, a lost database), the next batch starts
            # on a fresh connection, checked out (and pinged) by the pool
            self._close_connection()
            raise

    def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    def _apply_on(
        self, connection: Connection, commands: list[Command], now: datetime, *, set_wise: bool
    ) -> tuple[list[Any], list[dict[str, Any]]]:
        outcomes: list[Any] = []
        entries: list[AuditEntry] = []
        events: list[dict[str, Any]] = []
        commit_memory.forget_since(connection)  # what an earlier failed transaction noted
        with connection.begin():
            if self.fence is not None:
                self.fence(connection)
            for group in _runs_of_same_kind(commands):
                for outcome in self._apply_group(connection, now, group, set_wise=set_wise):
                    if isinstance(outcome, CommandResult):
                        outcomes.append(outcome.value)
                        entries.extend(outcome.audit)
                        events.extend(outcome.events)
                    else:
                        outcomes.append(outcome)
            audit_log.append(connection, entries, now)
            if self.event_sink is not None and events:
                self.event_sink(connection, events, now)
        commit_memory.keep_pending(connection)
        return outcomes, events

    def _apply_group(
        self, connection: Connection, now: datetime, group: list[Command], *, set_wise: bool
    ) -> list[CommandResult[Any] | Exception]:
        batch_apply = getattr(type(group[0]), "apply_batch", None)
        if set_wise and batch_apply is not None:
            try:
                results: list[CommandResult[Any] | Exception] = batch_apply(connection, now, group)
            except Exception as error:
                raise _RetryOneByOne from error
            return results
        single: list[CommandResult[Any] | Exception] = []
        for command in group:
            position = commit_memory.mark(connection)
            try:
                with connection.begin_nested():
                    single.append(command(connection, now))
            except Exception as error:
                commit_memory.forget_since(connection, position)  # its savepoint rolled back
                single.append(error)
        return single


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("an event could not be published: %s", future.exception())


class _RetryOneByOne(Exception):
    pass


class _WriterThread:
    """The one thread that runs the writer's transactions, fed through a queue and answering
    on the loop: cheaper per batch than `asyncio.to_thread` (no executor bookkeeping, no
    context copy, no chained futures), which a one-order batch paid twice per order."""

    def __init__(self, apply: Callable[[list[Command]], Any], finish: Callable[[], None]) -> None:
        self._apply = apply
        self._finish = finish
        self._jobs: queue.SimpleQueue[tuple[list[Command], asyncio.Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._work, name="group-commit", daemon=True)
        self._thread.start()

    def run(self, commands: list[Command]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._jobs.put((commands, future))
        return future

    async def stop(self) -> None:
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            commands, future = job
            loop = future.get_loop()
            try:
                outcome: tuple[Any, BaseException | None] = (self._apply(commands), None)
            except BaseException as error:  # answered on the loop, like to_thread did
                outcome = (None, error)
            with contextlib.suppress(RuntimeError):  # the loop closed under a crash
                loop.call_soon_threadsafe(_settle, future, *outcome)
        self._finish()


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _runs_of_same_kind(commands: list[Command]) -> list[list[Command]]:
    """Consecutive commands of one batchable type form a group; order is kept."""
    groups: list[list[Command]] = []
    for command in commands:
        kind = type(command)
        if groups and type(groups[-1][0]) is kind and hasattr(kind, "apply_batch"):
            groups[-1].append(command)
        else:
            groups.append([command])
    return groups
