"""Order-submit throughput and latency of POST /v1/orders, persistence on, against a bare
Starlette route doing the same parse and serialize, measured in the same run.

Prints JSON. Each server runs as its own uvicorn process (one worker, the same settings);
the load generator runs in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.http_load import LoadResult, run_load  # noqa: E402

# Both servers get the header; only the gateway checks it (a cost it must pay in production).
OPERATOR_TOKEN = "bench-operator-token"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
from tests.postgres_cluster import free_port  # noqa: E402

ACCOUNTS = [f"0x{n:040x}" for n in range(1, 33)]


def body_for(run: str):  # type: ignore[no-untyped-def]
    def make(n: int) -> bytes:
        return json.dumps(
            {
                "account": ACCOUNTS[n % len(ACCOUNTS)],
                "client_order_id": f"{run}-{n}",
                "instrument": "WETH/USDC",
                "side": "buy" if n % 2 else "sell",
                "quantity": "0.5",
                # buys below sells, so the pre-trade check (included) never refuses one
                "price": f"{(2800 if n % 2 else 3000) + n % 100}.25",
            }
        ).encode()

    return make


def start(app: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    if app.endswith("create_app"):
        command.append("--factory")
    process = subprocess.Popen(command, env={**os.environ, **env}, cwd=ROOT)
    deadline = time.monotonic() + 60
    while True:  # readiness: the benchmark, not a test, may poll
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=1)
            return process
        except urllib.error.HTTPError:
            return process  # answered (the baseline has no /v1/health)
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)


def measure(app: str, env: dict[str, str], total: int, connections: int, label: str) -> LoadResult:
    port = free_port()
    process = start(app, port, env)
    try:
        asyncio.run(
            run_load(
                "127.0.0.1",
                port,
                "/v1/orders",
                body_for(f"warm-{label}"),
                total=500,
                connections=connections,
                headers=OPERATOR,
            )
        )
        return asyncio.run(
            run_load(
                "127.0.0.1",
                port,
                "/v1/orders",
                body_for(label),
                total=total,
                connections=connections,
                headers=OPERATOR,
            )
        )
    finally:
        process.terminate()
        process.wait()


def summary(result: LoadResult) -> dict[str, object]:
    return {
        "requests": result.requests,
        "orders_per_second": round(result.throughput, 1),
        "p50_ms": round(result.percentile(50) * 1000, 3),
        "p99_ms": round(result.percentile(99) * 1000, 3),
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    baseline: list[LoadResult] = []
    gateway: list[LoadResult] = []
    with tempfile.TemporaryDirectory() as directory:
        for round_ in range(args.rounds):  # interleaved, so drift hits both alike
            baseline.append(
                measure(
                    "bench.starlette_baseline:app",
                    {},
                    args.requests,
                    args.connections,
                    f"b{round_}",
                )
            )
            env = {
                "ISTHMUS_DATABASE_URL": f"sqlite:///{directory}/bench-{round_}.db",
                "ISTHMUS_LOG_LEVEL": "warning",
                "ISTHMUS_OPERATOR_TOKEN": OPERATOR_TOKEN,
                # every risk check runs; the order rate of a load generator is not one
                "ISTHMUS_RISK_ORDERS_PER_SECOND": "1000000",
                "ISTHMUS_RISK_ORDER_BURST": "1000000",
            }
            gateway.append(
                measure(
                    "gateway.api.app:create_app", env, args.requests, args.connections, f"g{round_}"
                )
            )
    best_baseline = max(baseline, key=lambda r: r.throughput)
    best_gateway = max(gateway, key=lambda r: r.throughput)
    ratios = [g.throughput / b.throughput for g, b in zip(gateway, baseline, strict=True)]
    print(
        json.dumps(
            {
                "benchmark": "api_orders",
                "connections": args.connections,
                "persistence": "sqlite wal, synchronous=FULL, group commit",
                "gateway": summary(best_gateway),
                "starlette_baseline": summary(best_baseline),
                "ratio_vs_starlette": round(best_gateway.throughput / best_baseline.throughput, 3),
                "ratio_per_round": [round(r, 3) for r in ratios],
                "goal_ratio": 0.6,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
