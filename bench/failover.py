"""Replicas: how long trading stops when the replica holding the roles dies, and what three
replicas carry next to one, on this machine.

* ``failover``: three ``isthmus up --replica`` processes on one PostgreSQL (the internal book
  as the venue, default lease settings). The holder is killed (SIGKILL) ``--failovers`` times;
  from the kill, a client sends the same order to the surviving replicas, round robin, until
  one acknowledges it (201): kill-to-acknowledgement p50 and p99 (goal: p99 <= 5 s). The
  killed replica starts again before the next kill.
* ``throughput``: ``POST /v1/orders`` at 32 connections against one replica alone (the
  baseline, measured in the same run) and spread over three (each forwards to the holder):
  orders/s and the ratio of three to one.

Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.api_orders import body_for  # noqa: E402
from bench.http_load import LoadResult, run_load  # noqa: E402
from tests.integration.gateway_process import GatewayProcess  # noqa: E402
from tests.operator_access import OPERATOR_TOKEN  # noqa: E402
from tests.postgres_cluster import PostgresCluster  # noqa: E402
from tests.replicas.lease_holder import wait_for_holder  # noqa: E402

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
ENV = {
    "ISTHMUS_REPLICA": "true",
    # every risk check runs; the order rate of a load generator is not one
    "ISTHMUS_RISK_ORDERS_PER_SECOND": "1000000",
    "ISTHMUS_RISK_ORDER_BURST": "1000000",
}


def start_replicas(database_url: str, count: int) -> dict[str, GatewayProcess]:
    replicas = {}
    for i in range(count):
        name = f"r{i}"
        replicas[name] = GatewayProcess(database_url, env={**ENV, "ISTHMUS_REPLICA_ID": name})
        replicas[name].start(timeout=120)
    wait_for_holder(database_url)
    return replicas


def kill_to_ack(replicas: dict[str, GatewayProcess], database_url: str, n: int) -> float:
    victim = replicas[wait_for_holder(database_url).holder]
    others = [r for r in replicas.values() if r is not victim]
    body = json.loads(body_for(f"failover-{n}")(n))
    killed = time.perf_counter()
    victim.kill()
    with httpx.Client(timeout=10, headers=OPERATOR) as http:
        attempt = 0
        while True:
            target = others[attempt % len(others)]
            attempt += 1
            try:
                answer = http.post(f"{target.url}/v1/orders", json=body)
            except httpx.TransportError:
                continue
            if answer.status_code in (200, 201):
                acknowledged = time.perf_counter() - killed
                break
            if answer.status_code != 503:
                raise RuntimeError(f"unexpected answer {answer.status_code}: {answer.text}")
            time.sleep(0.02)
    victim.start(timeout=120)
    return acknowledged


def load(ports: list[int], total: int, connections: int, label: str) -> LoadResult:
    async def spread() -> list[LoadResult]:
        share = total // len(ports)
        return await asyncio.gather(
            *(
                run_load(
                    "127.0.0.1",
                    port,
                    "/v1/orders",
                    body_for(f"{label}-{port}"),
                    total=share,
                    connections=max(1, connections // len(ports)),
                    headers=OPERATOR,
                )
                for port in ports
            )
        )

    started = time.perf_counter()
    results = asyncio.run(spread())
    seconds = time.perf_counter() - started
    statuses: dict[int, int] = {}
    for result in results:
        for status, count in result.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    return LoadResult(
        sum(r.requests for r in results),
        seconds,
        [x for r in results for x in r.latencies],
        statuses,
    )


def summary(result: LoadResult) -> dict[str, object]:
    return {
        "orders_per_s": round(result.throughput, 1),
        "p50_ms": round(result.percentile(50) * 1000, 2),
        "p99_ms": round(result.percentile(99) * 1000, 2),
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
    }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--failovers", type=int, default=10)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    cluster = PostgresCluster()
    cluster.start()
    replicas: dict[str, GatewayProcess] = {}
    try:
        database_url = cluster.new_database()
        replicas = start_replicas(database_url, 3)
        times = [kill_to_ack(replicas, database_url, n) for n in range(args.failovers)]
        primary = replicas[wait_for_holder(database_url).holder]
        one = load([primary.port], args.requests, args.connections, "one")
        three = load([r.port for r in replicas.values()], args.requests, args.connections, "three")
        print(
            json.dumps(
                {
                    "benchmark": "failover",
                    "replicas": 3,
                    "lease_ttl_seconds": 3.0,
                    "lease_renew_seconds": 0.5,
                    "failovers": len(times),
                    "kill_to_ack_p50_s": round(percentile(times, 50), 3),
                    "kill_to_ack_p99_s": round(percentile(times, 99), 3),
                    "kill_to_ack_max_s": round(max(times), 3),
                    "goal_p99_s": 5.0,
                    "throughput": {
                        "connections": args.connections,
                        "one_replica": summary(one),
                        "three_replicas": summary(three),
                        "ratio_three_vs_one": round(three.throughput / one.throughput, 3),
                    },
                    "notes": "the holder runs the book; the other replicas forward orders to "
                    "it, so three replicas add availability, not order throughput",
                }
            )
        )
    finally:
        for replica in replicas.values():
            replica.stop()
        cluster.stop()


if __name__ == "__main__":
    main()
