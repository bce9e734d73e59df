"""Order entry, persistence on, against a bare Starlette route doing the same parse and
serialize, measured in the same run (rounds interleaved).

* ``gateway`` / ``starlette_baseline``: ``POST /v1/orders`` at 32 connections (throughput,
  p50, p99) and ``ratio_vs_starlette``; ``one_connection``: the same at 1 connection (the
  acknowledgement latency of an order that rests).
* ``batch``: ``POST /v1/orders/batch`` with 50 orders a request, counted in orders per
  second, and its ratio to the single-submit orders/s of the same round.
* ``websocket``: ``{"op": "place"}`` on ``/v1/stream`` at 1 connection, one request at a
  time: acknowledgement p50 and its ratio to the REST p50 at 1 connection.
* ``trader``: the same one-connection ``POST /v1/orders`` as a trader would send it: signed
  in with Ethereum (a session token), its own address as the account. The operator's token
  above costs nothing to check; a session is a credential the gateway must look up.
* ``durable_baseline``: ``bench/durable_baseline.py``, the bare route plus a durable
  group-committed write and nothing else (single, one connection, batch), with its ratio
  to the bare route: how much of the bare route's speed any durable acknowledgement keeps
  here, and the gateway's ratio to it.
* ``disk_commit_floor``: the p50 of a one-row SQLite commit (WAL, synchronous=FULL: an
  fsync) in the same directory, measured in the same run: the floor under any durable
  acknowledgement on this machine; back to back, and (``one_per_ms``) one a millisecond.
* ``memory``: resident memory per resting order of the matching engine holding 1,000,000
  resting orders over 100 instruments, with the idempotency filter's entry per order, in
  a process of its own (``--memory-orders`` to change the count).

Prints JSON. Each server runs as its own uvicorn process (one worker, the same settings);
the load generators run in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from isthmus_client import Signer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.http_load import LoadResult, run_load  # noqa: E402
from gateway.access.control import DEVNET_CHAIN_ID  # noqa: E402
from gateway.config import Settings  # noqa: E402

# Both servers get the header; only the gateway checks it (a cost it must pay in production).
OPERATOR_TOKEN = "bench-operator-token"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
from tests.postgres_cluster import free_port  # noqa: E402

ACCOUNTS = [f"0x{n:040x}" for n in range(1, 33)]
BATCH = 50


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
    # WebSocket compression as `isthmus up` has it by default (ISTHMUS_WS_COMPRESSION)
    deflate = Settings.model_fields["ws_compression"].default
    command += ["--ws-per-message-deflate", str(deflate)]
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


def warm(port: int, connections: int, label: str) -> None:
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


def singles(port: int, total: int, connections: int, label: str) -> LoadResult:
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


TRADER_KEY = "0x" + "42" * 32  # a throwaway key: the bench's trader signs in with it


def trader_session(port: int) -> tuple[str, dict[str, str]]:
    """Sign in with Ethereum as the bench's trader, with the client's own message and
    signature: its address and its bearer header."""
    signer = Signer.from_key(TRADER_KEY)
    base = f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(f"{base}/v1/auth/siwe/nonce") as answer:
        nonce = json.load(answer)["nonce"]
    # the bench's gateway has no chain: its SIWE chain id is the devnet's
    message = signer.sign_in_message(
        domain=f"127.0.0.1:{port}", uri=base, chain_id=DEVNET_CHAIN_ID, nonce=nonce
    )
    body = {"message": message, "signature": signer.sign_text(message)}
    request = urllib.request.Request(
        f"{base}/v1/auth/siwe",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as answer:
        token = json.load(answer)["token"]
    return signer.address, {"Authorization": f"Bearer {token}"}


def trader_singles(port: int, total: int, label: str) -> LoadResult:
    """One connection, a trader's own orders under its session token."""
    address, headers = trader_session(port)
    one = body_for(label)

    def make(n: int) -> bytes:
        return json.dumps({**json.loads(one(n)), "account": address}).encode()

    return asyncio.run(
        run_load("127.0.0.1", port, "/v1/orders", make, total=total, connections=1, headers=headers)
    )


def batches(port: int, total_orders: int, connections: int, label: str) -> LoadResult:
    """`total_orders` in requests of BATCH orders; the result counts orders."""
    one = body_for(label)

    def make(n: int) -> bytes:
        orders = [json.loads(one(n * BATCH + i)) for i in range(BATCH)]
        return json.dumps({"orders": orders}).encode()

    result = asyncio.run(
        run_load(
            "127.0.0.1",
            port,
            "/v1/orders/batch",
            make,
            total=total_orders // BATCH,
            connections=connections,
            headers=OPERATOR,
        )
    )
    return LoadResult(result.requests * BATCH, result.seconds, result.latencies, result.statuses)


async def _websocket_places(port: int, total: int, label: str) -> LoadResult:
    import websockets

    make = body_for(label)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    uri = f"ws://127.0.0.1:{port}/v1/stream?token={OPERATOR_TOKEN}"
    async with websockets.connect(uri, max_size=None) as socket:
        json.loads(await socket.recv())  # subscribed
        # order events are not asked for: every account's events would share the socket
        await socket.send(json.dumps({"op": "subscribe", "accounts": [ACCOUNTS[0]]}))
        while json.loads(await socket.recv())["type"] != "subscribed":
            pass
        begun = time.perf_counter()
        for n in range(total):
            order = json.loads(make(n))
            order["account"] = ACCOUNTS[1 + n % (len(ACCOUNTS) - 1)]
            started = time.perf_counter()
            await socket.send(json.dumps({"op": "place", "id": n, "order": order}))
            while True:
                message = json.loads(await socket.recv())
                if message.get("type") == "response" and message.get("id") == n:
                    break
            latencies.append(time.perf_counter() - started)
            statuses[message["status"]] = statuses.get(message["status"], 0) + 1
        return LoadResult(total, time.perf_counter() - begun, latencies, statuses)


def measure(
    app: str,
    env: dict[str, str],
    total: int,
    connections: int,
    label: str,
    *,
    batch: bool = False,
    websocket: bool = False,
    trader: bool = False,
) -> dict[str, LoadResult]:
    """One server's round: single submits at `connections` and at 1, then batches and
    WebSocket entry where the server has them."""
    port = free_port()
    process = start(app, port, env)
    try:
        warm(port, connections, label)
        results = {
            "single": singles(port, total, connections, label),
            "one": singles(port, total // 5, 1, f"{label}-one"),
        }
        if batch:
            results["batch"] = batches(port, total * 4, 8, f"{label}-batch")
        if websocket:
            results["websocket"] = asyncio.run(_websocket_places(port, total // 5, f"{label}-ws"))
        if trader:
            results["trader"] = trader_singles(port, total // 5, f"{label}-trader")
        return results
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


MEMORY_PROBE = """
import json, resource, sys
sys.path.insert(0, sys.argv[2])
from decimal import Decimal
from gateway.domain.instruments import TradingRules
from gateway.domain.orders import OrderType, Side, TimeInForce
from gateway.matching import MatchingEngine, PlaceOrder
count = int(sys.argv[1])
symbols = [f"I{i}/USDC" for i in range(100)]
rules = TradingRules(Decimal("0.01"), Decimal("0.001"), Decimal("0.001"))
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
engine = MatchingEngine({s: rules for s in symbols})
keys = set()
before = rss()
for n in range(count):
    buy = n % 2 == 0
    price = (290000 - n % 200) if buy else (300000 + n % 200)  # 200 levels a side, no cross
    account = f"0x{n % 1000:040x}"
    order_id = f"ord_{n:026d}"
    engine.execute(PlaceOrder(order_id, account, symbols[n % 100], Side.BUY if buy else Side.SELL,
                              1000, price, OrderType.LIMIT, TimeInForce.GTC))
    keys.add(hash((account, f"c-{n}")))
after = rss()
print(json.dumps({"resting_orders": engine.open_order_count, "rss_bytes": after - before}))
"""


def _commits(connection: sqlite3.Connection, count: int, pause: float) -> list[float]:
    times = []
    for n in range(count):
        started = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO t VALUES (?)", (n,))
        connection.execute("COMMIT")
        times.append(time.perf_counter() - started)
        if pause:
            time.sleep(pause)  # the benchmark paces its own commits; no test waits on this
    times.sort()
    return times


def commit_floor(directory: str) -> dict[str, object]:
    """A one-row durable commit, back to back (what a busy writer pays) and one every
    millisecond (about the pace of one connection's orders). This VM's disk answers a flush
    that follows the last one closely in ~0.1 ms, and one a millisecond or more after it in
    ~1 ms: a slower order path also waits longer for its own commit."""
    connection = sqlite3.connect(f"{directory}/floor.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE t (x INTEGER)")
    busy = _commits(connection, 300, 0)
    paced = _commits(connection, 300, 0.001)
    connection.close()
    return {
        "p50_ms": round(busy[150] * 1000, 3),
        "p90_ms": round(busy[270] * 1000, 3),
        "one_per_ms": {
            "p50_ms": round(paced[150] * 1000, 3),
            "p90_ms": round(paced[270] * 1000, 3),
        },
    }


def memory(count: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(count), str(ROOT)],
        capture_output=True,
        text=True,
        check=True,
    )
    probe = json.loads(out.stdout)
    return {
        "resting_orders": probe["resting_orders"],
        "instruments": 100,
        "rss_bytes_per_resting_order": round(probe["rss_bytes"] / probe["resting_orders"], 1),
        "goal_bytes": 1024,
        "scope": "matching engine (orders, levels, index) + idempotency filter entry",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory-orders", type=int, default=1_000_000)
    args = parser.parse_args()

    baseline: list[dict[str, LoadResult]] = []
    gateway: list[dict[str, LoadResult]] = []
    durable: list[dict[str, LoadResult]] = []
    with tempfile.TemporaryDirectory() as directory:
        for round_ in range(args.rounds):  # interleaved, so drift hits both alike
            requests, connections = args.requests, args.connections
            baseline.append(
                measure("bench.starlette_baseline:app", {}, requests, connections, f"b{round_}")
            )
            env = {
                "ISTHMUS_DATABASE_URL": f"sqlite:///{directory}/bench-{round_}.db",
                "ISTHMUS_LOG_LEVEL": "warning",
                "ISTHMUS_OPERATOR_TOKEN": OPERATOR_TOKEN,
                # every risk check runs; the order rate of a load generator is not one
                "ISTHMUS_RISK_ORDERS_PER_SECOND": "1000000",
                "ISTHMUS_RISK_ORDER_BURST": "1000000",
                # nor a trader's request rate and open orders (one account sends them all)
                "ISTHMUS_RATE_LIMIT_PER_SECOND": "1000000",
                "ISTHMUS_RATE_LIMIT_BURST": "1000000",
                "ISTHMUS_RISK_MAX_OPEN_ORDERS": "1000000",
            }
            gateway.append(
                measure(
                    "gateway.api.app:create_app",
                    env,
                    requests,
                    connections,
                    f"g{round_}",
                    batch=True,
                    websocket=True,
                    trader=True,
                )
            )
            durable_db = {"ISTHMUS_BENCH_DB": f"{directory}/durable-{round_}.db"}
            durable.append(
                measure(
                    "bench.durable_baseline:app",
                    durable_db,
                    requests,
                    connections,
                    f"d{round_}",
                    batch=True,
                )
            )
        floor = commit_floor(directory)
    best = max(range(args.rounds), key=lambda r: gateway[r]["single"].throughput)
    best_base = max(range(args.rounds), key=lambda r: baseline[r]["single"].throughput)
    g, b = gateway[best], baseline[best_base]
    d = durable[max(range(args.rounds), key=lambda r: durable[r]["single"].throughput)]
    ratios = [
        gr["single"].throughput / br["single"].throughput
        for gr, br in zip(gateway, baseline, strict=True)
    ]
    batch_ratios = [gr["batch"].throughput / gr["single"].throughput for gr in gateway]
    ws_ratios = [gr["websocket"].percentile(50) / gr["one"].percentile(50) for gr in gateway]
    print(
        json.dumps(
            {
                "benchmark": "api_orders",
                "connections": args.connections,
                "persistence": "sqlite wal, synchronous=FULL, group commit",
                "gateway": summary(g["single"]),
                "starlette_baseline": summary(b["single"]),
                "ratio_vs_starlette": round(g["single"].throughput / b["single"].throughput, 3),
                "ratio_per_round": [round(r, 3) for r in ratios],
                "goal_ratio": 0.6,
                "one_connection": {
                    "gateway": summary(g["one"]),
                    "starlette_baseline": summary(b["one"]),
                    "goal_p50_ms": 1.0,
                },
                "batch": {
                    "orders_per_request": BATCH,
                    "connections": 8,
                    **summary(g["batch"]),
                    "ratio_vs_single": round(g["batch"].throughput / g["single"].throughput, 2),
                    "ratio_per_round": [round(r, 2) for r in batch_ratios],
                    "goal_ratio": 10,
                },
                "websocket": {
                    **summary(g["websocket"]),
                    "p50_ratio_vs_rest_one_connection": round(
                        g["websocket"].percentile(50) / g["one"].percentile(50), 3
                    ),
                    "ratio_per_round": [round(r, 3) for r in ws_ratios],
                    "goal_ratio": 0.5,
                },
                "trader": {
                    "what": "one connection, signed in with Ethereum (session token), its own "
                    "address as the account",
                    **summary(g["trader"]),
                    "p50_ratio_vs_operator_token": round(
                        g["trader"].percentile(50) / g["one"].percentile(50), 3
                    ),
                },
                "durable_baseline": {
                    "what": "the bare route + a group-committed one-row SQLite write per order "
                    "(raw sqlite3, one writer thread), nothing else: the ceiling of a durable "
                    "acknowledgement in Python on this machine",
                    **summary(d["single"]),
                    "ratio_vs_starlette": round(d["single"].throughput / b["single"].throughput, 3),
                    "gateway_ratio_vs_durable": round(
                        g["single"].throughput / d["single"].throughput, 3
                    ),
                    "one_connection_p50_ms": round(d["one"].percentile(50) * 1000, 3),
                    "batch_orders_per_second": round(d["batch"].throughput, 1),
                    "batch_ratio_vs_single": round(
                        d["batch"].throughput / d["single"].throughput, 2
                    ),
                },
                "disk_commit_floor": floor,
                "memory": memory(args.memory_orders),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
