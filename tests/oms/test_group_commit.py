"""The group-commit writer on both backends: concurrent writes share a commit and keep their
own outcomes, a failed commit answers every caller and the next batch still commits, a lone
write on SQLite commits on the loop (no thread hop) while PostgreSQL always uses the writer
thread, stopping finishes what was queued, and an account is remembered only once a commit
proved its row."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select

from gateway.oms.group_commit import CommandResult, GroupCommitter
from gateway.store import audit_log
from gateway.store import order_repository as repo
from gateway.store.audit_log import AUDIT_LOG, AuditEntry
from tests.conftest import ManualClock


class Record:
    """A write that appends one audit record and notes the thread it ran on."""

    def __init__(self, name: str, fail: bool = False) -> None:
        self.name = name
        self.fail = fail
        self.thread: int | None = None

    def __call__(self, connection: Connection, now: datetime) -> CommandResult[str]:
        self.thread = threading.get_ident()
        if self.fail:
            raise ValueError(f"{self.name} refused")
        return CommandResult(
            self.name,
            [AuditEntry("test.recorded", self.name, {"name": self.name})],
            [{"type": "test.recorded", "name": self.name}],
        )


def records(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(select(AUDIT_LOG.c.entity_id).order_by(AUDIT_LOG.c.seq)).scalars()
        )


def writer(engine: Engine, published: list[dict[str, Any]], **options: Any) -> GroupCommitter:
    return GroupCommitter(
        engine, ManualClock(), batch_max=64, on_committed=published.extend, **options
    )


def test_concurrent_writes_share_a_commit_and_keep_their_own_outcomes(engine: Engine) -> None:
    published: list[dict[str, Any]] = []

    async def scenario() -> list[Any]:
        w = writer(engine, published)
        w.start()
        try:
            commands = [Record(f"w{n}", fail=n == 3) for n in range(8)]
            return await asyncio.gather(*(w.execute(c) for c in commands), return_exceptions=True)
        finally:
            await w.stop()
            assert w.batches < w.commands == 8

    outcomes = asyncio.run(scenario())
    assert [o if isinstance(o, str) else type(o) for o in outcomes] == [
        "w0", "w1", "w2", ValueError, "w4", "w5", "w6", "w7",
    ]  # fmt: skip
    assert records(engine) == ["w0", "w1", "w2", "w4", "w5", "w6", "w7"]
    assert [e["name"] for e in published] == ["w0", "w1", "w2", "w4", "w5", "w6", "w7"]
    with engine.connect() as connection:
        assert audit_log.verify(connection).ok


def test_a_failed_commit_answers_every_caller_and_the_next_batch_commits(
    engine: Engine,
) -> None:
    published: list[dict[str, Any]] = []
    fenced = {"on": True}

    def fence(connection: Connection) -> None:
        if fenced["on"]:
            raise RuntimeError("lease lost")

    async def scenario() -> tuple[list[Any], str]:
        w = writer(engine, published, fence=fence)
        w.start()
        try:
            failed = await asyncio.gather(
                *(w.execute(Record(f"f{n}")) for n in range(3)), return_exceptions=True
            )
            fenced["on"] = False
            return failed, await w.execute(Record("after"))
        finally:
            await w.stop()

    failed, after = asyncio.run(scenario())
    assert [type(f) for f in failed] == [RuntimeError] * 3
    assert after == "after"
    assert records(engine) == ["after"]
    assert [e["name"] for e in published] == ["after"]


def test_a_lone_sqlite_write_commits_on_the_loop_and_postgresql_uses_the_thread(
    engine: Engine,
) -> None:
    published: list[dict[str, Any]] = []

    async def scenario() -> tuple[int, Record, list[Record]]:
        w = writer(engine, published)
        w.start()
        try:
            lone = Record("lone")
            await w.execute(lone)
            together = [Record(f"t{n}") for n in range(4)]
            await asyncio.gather(*(w.execute(c) for c in together))
            return threading.get_ident(), lone, together
        finally:
            await w.stop()

    loop_thread, lone, together = asyncio.run(scenario())
    if engine.dialect.name == "sqlite":
        assert lone.thread == loop_thread
    else:
        assert lone.thread != loop_thread
    # several writes at once always commit on the writer thread, off the loop
    assert {c.thread for c in together} != {loop_thread}
    assert len({c.thread for c in together}) == 1
    assert records(engine) == ["lone", "t0", "t1", "t2", "t3"]


def test_stop_finishes_what_was_queued_and_ends_the_writer_thread(engine: Engine) -> None:
    published: list[dict[str, Any]] = []
    before = {t.ident for t in threading.enumerate()}

    async def scenario() -> list[asyncio.Future[Any]]:
        w = writer(engine, published)
        w.start()
        futures = [w.enqueue(Record(f"q{n}")) for n in range(5)]
        await w.stop()
        return futures

    futures = asyncio.run(scenario())
    assert [f.result() for f in futures] == [f"q{n}" for n in range(5)]
    assert records(engine) == [f"q{n}" for n in range(5)]
    assert not [
        t for t in threading.enumerate() if t.name == "group-commit" and t.ident not in before
    ]
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(AUDIT_LOG)).scalar() == 5


class EnsureAccount:
    """A write that ensures an account's row (then fails, when told to)."""

    def __init__(self, address: str, fail: bool = False) -> None:
        self.address = address
        self.fail = fail

    def __call__(self, connection: Connection, now: datetime) -> CommandResult[str]:
        repo.ensure_accounts(connection, [self.address], now)
        if self.fail:
            raise ValueError(f"{self.address} refused")
        return CommandResult(self.address, [], [{"type": "test.ensured"}])


def account_rows(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return sorted(connection.execute(select(repo.ACCOUNTS.c.address)).scalars())


def test_an_account_is_remembered_only_once_its_row_committed(engine: Engine) -> None:
    """The writer skips accounts that a committed transaction ensured, and ensures again an
    account whose savepoint or whole transaction rolled back."""
    published: list[dict[str, Any]] = []
    sink_fails = {"on": False}

    def sink(connection: Connection, events: list[dict[str, Any]], now: datetime) -> None:
        if sink_fails["on"]:
            raise RuntimeError("the outbox refused")

    async def scenario() -> list[Any]:
        w = writer(engine, published, event_sink=sink)
        w.start()
        try:
            outcomes: list[Any] = []
            for command in (EnsureAccount("0xa", fail=True), EnsureAccount("0xa")):
                outcomes.append(await asyncio.gather(w.execute(command), return_exceptions=True))
            outcomes.append(account_rows(engine))
            with engine.begin() as connection:  # behind the writer's back: it must not look
                connection.execute(delete(repo.ACCOUNTS).where(repo.ACCOUNTS.c.address == "0xa"))
            outcomes.append(await w.execute(EnsureAccount("0xa")))
            sink_fails["on"] = True
            failed = w.execute(EnsureAccount("0xb"))
            outcomes.append(await asyncio.gather(failed, return_exceptions=True))
            sink_fails["on"] = False
            outcomes.append(await w.execute(EnsureAccount("0xc")))  # commits: 0xb stays unproved
            outcomes.append(await w.execute(EnsureAccount("0xb")))
            return outcomes
        finally:
            await w.stop()

    (failed_savepoint, after_savepoint, rows, remembered, failed_commit, *after) = asyncio.run(
        scenario()
    )
    assert [type(o) for o in failed_savepoint] == [ValueError]
    assert after_savepoint == ["0xa"]
    assert rows == ["0xa"]  # ensured again after its savepoint rolled back
    assert [type(o) for o in failed_commit] == [RuntimeError]
    assert (remembered, after) == ("0xa", ["0xc", "0xb"])
    # 0xb was ensured again after its transaction rolled back (a later commit did not prove
    # it); the third ensure of 0xa trusted the commit that proved it, so the row stays deleted
    assert account_rows(engine) == ["0xb", "0xc"]
