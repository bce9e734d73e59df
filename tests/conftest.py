"""Shared fixtures: databases on both backends, a gateway app on a fresh database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from gateway.store.database import create_database_engine, migrate
from tests.client.devnet_gateway import DevnetGateway
from tests.postgres_cluster import PostgresCluster


@pytest.fixture(scope="session")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevnetGateway]:
    """One real `isthmus up` on the devnet per test session and worker, shared by every suite
    that speaks to it as its users do (the client, the CLI, the README, the web app): each
    test makes its own keys, wallets and orders. One, not one per suite: each devnet keeps
    its exchanges and chain running until the session ends."""
    gateway = DevnetGateway(Path(tmp_path_factory.mktemp("devnet")))
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL on each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'isthmus.db'}"
    if os.environ.get("ISTHMUS_TEST_POSTGRES_URL"):
        return os.environ["ISTHMUS_TEST_POSTGRES_URL"]
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.new_database()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated database on each backend in turn (tests/matching means its own engine)."""
    engine = create_database_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


# The files that take longest, longest first (seconds in the fresh-clone `make test` of
# 48decab, 2 cores). `make test` hands whole files to its two workers in collection order, one
# at a time as each worker frees (`--no-loadscope-reorder`); xdist's default order (most tests
# first) put these one-test files last, where one worker ran them alone for ten minutes.
LONGEST_FIRST = (
    "tests/integration/test_hybrid_trade_crash.py",  # 322
    "tests/contracts/test_fuzz_long.py",  # 201
    "tests/replicas/test_replica_failover.py",  # 195
    "tests/risk/test_wallet_margin_mirror.py",  # ~180 over its tests
    "tests/contracts/test_fuzz_keys_long.py",  # 79
    "tests/contracts/test_fuzz.py",  # 61
    "tests/risk/test_margin_mirror.py",  # 47
    "tests/api/test_openapi_fuzz.py",  # 43
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: n for n, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))
