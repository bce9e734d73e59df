"""Role leases on PostgreSQL: one holder at a time, takeovers bump the fencing token, and a
write under a lease that was taken is refused by the store."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import text

from gateway.config import Settings
from gateway.oms.role_lease import RoleLease
from gateway.runtime import ReplicaRefused, Runtime
from gateway.store import leases
from gateway.store.database import create_database_engine, migrate
from gateway.store.leases import StaleLease
from tests.postgres_cluster import PostgresCluster

pytestmark = pytest.mark.postgres


def _engine(postgres: PostgresCluster) -> Any:
    engine = create_database_engine(postgres.new_database())
    migrate(engine)
    return engine


def test_one_holder_until_the_lease_lapses_then_the_token_grows(postgres: PostgresCluster) -> None:
    engine = _engine(postgres)
    with engine.begin() as c:
        first = leases.try_acquire(c, "primary", "a", "http://a", ttl=30)
        assert first == 1
        assert leases.try_acquire(c, "primary", "b", "http://b", ttl=30) is None
        assert leases.renew(c, "primary", "a", 1, ttl=30)
        held = leases.holder(c, "primary")
        assert held is not None and (held.holder, held.address, held.token) == ("a", "http://a", 1)
        # a's lease lapses (as if it stopped renewing): b takes it with a new token
        c.execute(text("UPDATE leases SET expires_at = clock_timestamp() - interval '1 s'"))
        assert leases.holder(c, "primary") is None
        assert leases.try_acquire(c, "primary", "b", "http://b", ttl=30) == 2
        assert not leases.renew(c, "primary", "a", 1, ttl=30)  # a finds it lost
        [lease] = leases.leases(c)
        assert (lease.holder, lease.token, lease.takeovers, lease.live) == ("b", 2, 1, True)


def test_a_write_under_a_taken_lease_is_refused(postgres: PostgresCluster) -> None:
    engine = _engine(postgres)
    with engine.begin() as c:
        assert leases.try_acquire(c, "primary", "a", "http://a", ttl=30) == 1
    with engine.begin() as c:
        leases.check_fence(c, "primary", "a", 1)  # still a's
        c.execute(text("UPDATE leases SET expires_at = clock_timestamp() - interval '1 s'"))
        assert leases.try_acquire(c, "primary", "b", "http://b", ttl=30) == 2
    with pytest.raises(StaleLease), engine.begin() as c:
        leases.check_fence(c, "primary", "a", 1)
    with engine.begin() as c:
        leases.check_fence(c, "primary", "b", 2)


def test_a_takeover_waits_for_a_fenced_commit_in_progress(postgres: PostgresCluster) -> None:
    """The fence holds the lease row (shared) until the guarded transaction ends, so the
    takeover cannot slip between the check and the commit."""
    engine = _engine(postgres)
    with engine.begin() as c:
        assert leases.try_acquire(c, "primary", "a", "http://a", ttl=0.001) == 1
    guarded = engine.connect()
    transaction = guarded.begin()
    leases.check_fence(guarded, "primary", "a", 1)
    other = engine.connect()
    other.execute(text("SET lock_timeout = '300ms'"))
    with pytest.raises(Exception, match="lock timeout"):
        leases.try_acquire(other, "primary", "b", "http://b", ttl=30)
    other.rollback()
    transaction.commit()
    guarded.close()
    assert leases.try_acquire(other, "primary", "b", "http://b", ttl=30) == 2
    other.commit()
    other.close()


def test_the_lease_keeper_takes_renews_and_reports_a_loss(postgres: PostgresCluster) -> None:
    engine = _engine(postgres)
    acquired: list[int] = []
    lost: list[str] = []

    async def on_acquired(token: int) -> None:
        acquired.append(token)

    async def main() -> None:
        a = RoleLease(
            engine,
            "primary",
            "a",
            "http://a",
            ttl=30,
            renew_every=1,
            on_acquired=on_acquired,
            on_lost=lambda: lost.append("a"),
        )
        b = RoleLease(
            engine,
            "primary",
            "b",
            "http://b",
            ttl=30,
            renew_every=1,
            on_acquired=on_acquired,
            on_lost=lambda: lost.append("b"),
        )
        await a.tick()
        await asyncio.wait_for(a.active.wait(), 10)
        await b.tick()
        assert a.holding and not b.holding and b.holder_address() == "http://a"
        with engine.begin() as c:  # a is paused past its lease: b takes it
            c.execute(text("UPDATE leases SET expires_at = clock_timestamp() - interval '1 s'"))
        await b.tick()
        await asyncio.wait_for(b.active.wait(), 10)
        with pytest.raises(StaleLease), engine.begin() as c:
            a.fence(c)  # a's writer is refused before a even knows
        await a.tick()  # a wakes up and finds the lease gone
        assert lost == ["a"] and not a.holding and b.holding
        assert acquired == [1, 2]
        await b.release()
        with engine.begin() as c:
            assert leases.holder(c, "primary") is None  # free at once for the next

    asyncio.run(main())


def test_sqlite_refuses_to_run_as_a_replica(tmp_path: Any) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'one.db'}", replica=True)
    with pytest.raises(ReplicaRefused, match="PostgreSQL"):
        Runtime.build(settings)


def test_replicas_starting_together_migrate_an_empty_database_once(
    postgres: PostgresCluster,
) -> None:
    url = postgres.new_database()
    engines = [create_database_engine(url) for _ in range(3)]
    errors: list[BaseException] = []

    def start(engine: Any) -> None:
        try:
            migrate(engine)
        except BaseException as error:  # collected: the assertion below names it
            errors.append(error)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    with engines[0].connect() as c:
        assert c.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    for engine in engines:
        engine.dispose()


def test_a_holder_paused_past_its_term_acts_on_nothing(postgres: PostgresCluster) -> None:
    """`ensure_fresh` guards what the store cannot refuse (an exchange order, a transaction):
    it holds while the lease was renewed within most of its term, by the process's own
    monotonic clock, which a pause does not stop."""
    engine = _engine(postgres)
    now = [100.0]

    async def on_acquired(token: int) -> None:
        pass

    async def main() -> None:
        a = RoleLease(
            engine,
            "primary",
            "a",
            "http://a",
            ttl=3,
            renew_every=0.5,
            on_acquired=on_acquired,
            on_lost=lambda: None,
            monotonic=lambda: now[0],
        )
        with pytest.raises(StaleLease):
            a.ensure_fresh()  # not the holder
        await a.tick()
        now[0] += 2.0
        a.ensure_fresh()  # renewed 2 s ago: within 80 % of its 3 s term
        now[0] += 0.5  # stopped (SIGSTOP) past 80 % of its term without renewing
        with pytest.raises(StaleLease, match="may have lapsed"):
            a.ensure_fresh()
        await a.tick()  # renewed (nobody took it meanwhile): fresh again
        a.ensure_fresh()

    asyncio.run(main())
