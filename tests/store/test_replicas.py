"""Two gateway replicas on one PostgreSQL database: still one order per key, one chain."""

from __future__ import annotations

import asyncio

import pytest

from gateway.config import Settings
from gateway.runtime import Runtime
from tests.conftest import ManualClock
from tests.postgres_cluster import PostgresCluster
from tests.store.test_order_service import ACCOUNTS, audit_trail, count_orders, spec

pytestmark = pytest.mark.postgres


def test_replicas_share_idempotency_and_the_audit_chain(postgres: PostgresCluster) -> None:
    url = postgres.new_database()

    async def main() -> None:
        clock = ManualClock()
        replicas = [
            Runtime.build(Settings(database_url=url, commit_batch_max=32), clock=clock)
            for _ in range(2)
        ]
        for rt in replicas:
            await rt.start(expiry_interval=None)
        try:
            # every key is submitted to both replicas at once
            specs = [spec(n % 120, ACCOUNTS[n % 2]) for n in range(480)]
            results = await asyncio.gather(
                *(replicas[i % 2].orders.submit(s) for i, s in enumerate(specs))
            )
            ids: dict[tuple[str, str], set[str]] = {}
            for s, r in zip(specs, results, strict=True):
                ids.setdefault((s.account, s.client_order_id), set()).add(r.order.id)
            assert len(ids) == 120
            assert all(len(v) == 1 for v in ids.values()), "a key got two orders"
            assert sum(r.created for r in results) == 120
            assert count_orders(replicas[0]) == 120
            # one chain across both replicas: one acceptance and one screening per key, the
            # losing replica's duplicate recorded neither
            trail = audit_trail(replicas[1].read_engine)
            assert trail.order_kinds == ["order.accepted"] * 120
            order_ids = {entity for _, entity in trail.order_records}
            assert order_ids == {next(iter(v)) for v in ids.values()}
            assert trail.screened_once_each() == set(ids)
            assert trail.verification.records == 240
        finally:
            for rt in replicas:
                await rt.stop()

    asyncio.run(main())
