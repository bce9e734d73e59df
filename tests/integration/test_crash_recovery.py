"""kill -9 the gateway while 1,000 concurrent submissions (with duplicates) are in flight."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.store import order_repository as repo
from gateway.store.database import create_database_engine
from tests.integration.gateway_process import GatewayProcess
from tests.operator_access import operator_headers
from tests.store.test_order_service import AuditTrail, audit_trail

ACCOUNTS = [
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
]
pytestmark = pytest.mark.slow
# a burst of 1,000 orders from three accounts: the order-rate limit is not what is tested
FAST_ACCOUNTS = {"ISTHMUS_RISK_ORDERS_PER_SECOND": "100000", "ISTHMUS_RISK_ORDER_BURST": "100000"}


def bodies(count: int, unique: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    keys = [(ACCOUNTS[n % 3], f"crash-{n}") for n in range(unique)]
    chosen = keys + [rng.choice(keys) for _ in range(count - unique)]
    rng.shuffle(chosen)

    def body(account: str, coid: str) -> dict[str, Any]:
        n = int(coid.split("-")[1])
        return {
            "account": account,
            "client_order_id": coid,
            "instrument": "WETH/USDC",
            "side": "buy" if n % 2 else "sell",
            "quantity": "0.25",
            # buys below sells: no order crosses its own account's (self-trade prevention)
            "price": f"{(2900 if n % 2 else 3000) + n % 50}.5",
        }

    return [body(account, coid) for account, coid in chosen]


async def submit_all(
    url: str, requests: list[dict[str, Any]], *, kill_after: int | None, on_kill: Any
) -> dict[tuple[str, str], str]:
    """Send everything with 64 in flight; return what was acknowledged (key -> order id)."""
    acknowledged: dict[tuple[str, str], str] = {}
    conflicts: list[str] = []
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in requests:
        queue.put_nowait(body)
    killed = asyncio.Event()

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            try:
                response = await client.post("/v1/orders", json=body)
            except httpx.TransportError:
                continue  # the server died under us: not acknowledged
            if response.status_code in (200, 201):
                key = (body["account"], body["client_order_id"])
                order_id = response.json()["id"]
                if acknowledged.setdefault(key, order_id) != order_id:
                    conflicts.append(f"{key}: {acknowledged[key]} and {order_id}")
                if (
                    kill_after is not None
                    and len(acknowledged) >= kill_after
                    and not killed.is_set()
                ):
                    killed.set()
                    on_kill()
            else:
                assert response.status_code < 500, response.text

    async with httpx.AsyncClient(
        base_url=url,
        timeout=30,
        limits=httpx.Limits(max_connections=64),
        headers=operator_headers(),
    ) as client:
        await asyncio.gather(*(worker(client) for _ in range(64)))
    assert not conflicts, conflicts
    return acknowledged


def stored_orders(database_url: str) -> dict[tuple[str, str], list[str]]:
    engine = create_database_engine(database_url, for_writes=False)
    found: dict[tuple[str, str], list[str]] = {}
    with engine.connect() as connection:
        for row in connection.execute(
            select(repo.ORDERS.c.account, repo.ORDERS.c.client_order_id, repo.ORDERS.c.id)
        ):
            found.setdefault((row.account, row.client_order_id), []).append(row.id)
    engine.dispose()
    return found


def read_trail(database_url: str) -> AuditTrail:
    engine = create_database_engine(database_url, for_writes=False)
    try:
        return audit_trail(engine)
    finally:
        engine.dispose()


def verify_log(database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "audit",
            "verify-log",
            "--db",
            database_url,
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_kill_minus_nine_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'crash.db'}"
    requests = bodies(1000, unique=700, seed=7)
    gateway = GatewayProcess(database_url, env=FAST_ACCOUNTS)
    gateway.start()
    try:
        acknowledged = asyncio.run(
            submit_all(gateway.url, requests, kill_after=300, on_kill=gateway.kill)
        )
    finally:
        gateway.stop()
    assert gateway.process is not None and gateway.process.returncode == -9
    assert 300 <= len(acknowledged) < 700  # killed mid-stream

    stored = stored_orders(database_url)
    for key, order_id in acknowledged.items():
        assert stored.get(key) == [order_id], f"acknowledged {key} is not stored exactly once"
    assert all(len(ids) == 1 for ids in stored.values())
    assert verify_log(database_url).returncode == 0

    # Restart and let the clients retry everything: acknowledged orders keep their ids,
    # the rest are created once.
    restarted = GatewayProcess(database_url, port=gateway.port, env=FAST_ACCOUNTS)
    restarted.start()
    try:
        retried = asyncio.run(submit_all(restarted.url, requests, kill_after=None, on_kill=None))
    finally:
        restarted.stop()
    assert len(retried) == 700
    for key, order_id in acknowledged.items():
        assert retried[key] == order_id
    final = stored_orders(database_url)
    assert len(final) == 700 and all(len(ids) == 1 for ids in final.values())
    result = verify_log(database_url)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    # per order one "order.accepted" and one "compliance.screened" (written in the same
    # transaction), no more: neither the crash nor the retries duplicated or lost either
    trail = read_trail(database_url)
    assert trail.order_kinds == ["order.accepted"] * 700
    assert sorted(entity for _, entity in trail.order_records) == sorted(
        ids[0] for ids in final.values()
    )
    assert trail.screened_once_each() == set(final)
    assert report["records"] == trail.verification.records == 1400
