"""FIX 4.4 order entry against REST order entry, on one gateway, measured in the same run.

One gateway (its own uvicorn process, as bench/api_orders.py starts it, with the FIX acceptor
attached: SQLite in a temporary directory, the internal book only, no chain). The same order
both ways: a resting limit buy of 0.5 WETH/USDC, prices stepping down from 2000 (no market,
nothing crosses), a FIX account and a REST account of their own.

* ``fix``: a QuickFIX initiator (tests/fix/initiator.py: QuickFIX's own engine on the client
  side, its file store and log included) logged on with an API key of the ``unsigned`` scope.
  ``p50_ms``/``p99_ms``: NewOrderSingle sent -> its ExecutionReport New (150=0) received,
  one order in flight, timed on arrival in the engine's callback. ``orders_per_s``: a window
  of orders sent as fast as the engine takes them, until the last New arrives.
* ``rest``: ``POST /v1/orders`` (operator token, as bench/api_orders.py) on a keep-alive
  connection: p50/p99 at one connection, one request at a time; ``orders_per_s`` at
  ``--rest-connections`` connections (HTTP/1.1 has no window on one connection).
* ``ratio``: FIX over REST, of the pooled p50s and of the median orders/s (per round too).
* ``breakdown``: read from the gateway process between phases: group commits (writer
  batches) per order, and on the FIX side how long a report's send waits for its record in
  the store (``record_sent``) and how long the session's worker spends on a NewOrderSingle.
* ``disk_commit_floor``: one-row SQLite commits (fsync) in the same directory.

Rounds interleave the protocols (the first alternates), so drift hits both alike. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import quickfix as fix  # noqa: E402

from bench.api_orders import OPERATOR, OPERATOR_TOKEN, commit_floor, start  # noqa: E402
from bench.http_load import LoadResult, run_load  # noqa: E402
from gateway.fix.dictionary import build_dictionary  # noqa: E402
from tests.fix.initiator import (  # noqa: E402
    FixInitiator,
    _Application,
    limit_order,
    maybe_field,
    msg_type,
)
from tests.postgres_cluster import free_port  # noqa: E402

SENDER = "BENCH"
FIX_ACCOUNT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
REST_ACCOUNT = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
QUANTITY = "0.5"
STATS = "/bench/fix-stats"
WAIT = 30.0  # seconds for a report before the run is called broken


def price(n: int) -> str:
    """Buys from 2000 down in 0.25 steps (to 1000, then again): they rest, never cross."""
    return f"{2000 - (n % 4000) * 0.25:.2f}"


# --- in the gateway's process (uvicorn --factory) -----------------------------------------


class _Probe:
    """Counters the bench reads between phases: the writer's group commits, and timings of
    the acceptor's store record before a send and of the session worker's order handling."""

    def __init__(self, runtime: Any, acceptor: Any) -> None:
        self.runtime = runtime
        self.record_sent: list[float] = []
        self.handle: list[float] = []
        record_sent, handle = acceptor.record_sent, acceptor.orders.handle

        def timed_record_sent(*args: Any) -> None:
            started = time.perf_counter()
            try:
                record_sent(*args)
            finally:
                self.record_sent.append(time.perf_counter() - started)

        async def timed_handle(*args: Any) -> None:
            started = time.perf_counter()
            try:
                await handle(*args)
            finally:
                self.handle.append(time.perf_counter() - started)

        acceptor.record_sent = timed_record_sent
        acceptor.orders.handle = timed_handle

    async def stats(self) -> dict[str, Any]:
        writer = self.runtime.writer
        return {
            "batches": writer.batches,
            "commands": writer.commands,
            "record_sent": list(self.record_sent),
            "handle": list(self.handle),
        }


def create_app() -> Any:
    """The gateway with its FIX acceptor, as `isthmus up` attaches it, from the environment
    (ISTHMUS_*, and BENCH_FIX_DIR for the acceptor's files), with the bench's probe. Named
    create_app: bench.api_orders.start passes uvicorn --factory for that name."""
    from gateway.api.app import create_app as gateway_app
    from gateway.config import Settings
    from gateway.fix.acceptor import FixAcceptor
    from gateway.runtime import Runtime

    settings = Settings()
    runtime = Runtime.build(settings)
    acceptor = FixAcceptor(runtime, settings, Path(os.environ["BENCH_FIX_DIR"]))
    runtime.attach(acceptor)
    probe = _Probe(runtime, acceptor)
    app = gateway_app(settings, runtime=runtime)
    app.add_api_route(STATS, probe.stats, methods=["GET"], include_in_schema=False)
    return app


# --- in this process ----------------------------------------------------------------------


class _TimedApplication(_Application):
    """The initiator's callbacks, timing each ExecutionReport on arrival (on the engine's
    thread) instead of queueing it for the 10 s waits of `next_app`."""

    def __init__(self, owner: FixInitiator) -> None:
        super().__init__(owner)
        self.arrived = threading.Condition()
        self.new: dict[str, float] = {}  # ClOrdID -> perf_counter at its New
        self.other: list[str] = []  # any other application message: the run is broken

    def fromApp(self, message: fix.Message, session_id: fix.SessionID) -> None:
        now = time.perf_counter()
        try:
            ok = msg_type(message) == "8" and maybe_field(message, 150) == "0"
            with self.arrived:
                if ok:
                    self.new[maybe_field(message, 11) or ""] = now
                else:
                    self.other.append(str(message.toString()).replace("\x01", "|"))
                self.arrived.notify_all()
        except Exception as error:
            self.owner.errors.append(error)

    def wait(self, cl_ord_ids: list[str]) -> float:
        """Until every one of `cl_ord_ids` is New; the last arrival's time."""
        with self.arrived:
            if not self.arrived.wait_for(
                lambda: self.other or all(c in self.new for c in cl_ord_ids), WAIT
            ):
                raise TimeoutError(f"{len([c for c in cl_ord_ids if c not in self.new])} not New")
            if self.other:
                raise RuntimeError(f"not a New: {self.other[0]}")
            return max(self.new[c] for c in cl_ord_ids)


class TimedDesk(FixInitiator):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.timing = _TimedApplication(self)
        self._application = self.timing  # before start(): the engine gets this one


def fix_order(cl_ord_id: str, n: int) -> fix.Message:
    """The REST body's order as a NewOrderSingle: a GTC limit buy."""
    return limit_order(cl_ord_id, FIX_ACCOUNT, QUANTITY, price(n))


def fix_one_at_a_time(desk: TimedDesk, total: int, label: str) -> LoadResult:
    latencies = []
    begun = time.perf_counter()
    for n in range(total):
        cl_ord_id = f"{label}-{n}"
        message = fix_order(cl_ord_id, n)
        sent = time.perf_counter()
        desk.send(message)
        latencies.append(desk.timing.wait([cl_ord_id]) - sent)
    return LoadResult(total, time.perf_counter() - begun, latencies, {})


def fix_window(desk: TimedDesk, total: int, label: str) -> LoadResult:
    names = [f"{label}-{n}" for n in range(total)]
    messages = [fix_order(name, n) for n, name in enumerate(names)]
    begun = time.perf_counter()
    for message in messages:
        desk.send(message)
    last = desk.timing.wait(names)
    return LoadResult(total, last - begun, [desk.timing.new[c] - begun for c in names], {})


def rest_body(label: str):  # type: ignore[no-untyped-def]
    def make(n: int) -> bytes:
        return json.dumps(
            {
                "account": REST_ACCOUNT,
                "client_order_id": f"{label}-{n}",
                "instrument": "WETH/USDC",
                "side": "buy",
                "quantity": QUANTITY,
                "price": price(n),
                "type": "limit",
                "time_in_force": "gtc",
            }
        ).encode()

    return make


def rest(port: int, total: int, connections: int, label: str) -> LoadResult:
    result = asyncio.run(
        run_load(
            "127.0.0.1",
            port,
            "/v1/orders",
            rest_body(label),
            total=total,
            connections=connections,
            headers=OPERATOR,
        )
    )
    if set(result.statuses) - {200, 201}:
        raise RuntimeError(f"REST {label}: statuses {result.statuses}")
    return result


def call(port: int, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={**OPERATOR, "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


class Phase:
    """Samples of one kind of measurement over the rounds, with the gateway's counters."""

    def __init__(self) -> None:
        self.results: list[LoadResult] = []
        self.orders = 0
        self.batches = 0
        self.commands = 0
        self.record_sent: list[float] = []
        self.handle: list[float] = []

    def run(self, port: int, measure: Any) -> None:
        before = call(port, STATS)
        result = measure()
        after = call(port, STATS)
        self.results.append(result)
        self.orders += result.requests
        self.batches += after["batches"] - before["batches"]
        self.commands += after["commands"] - before["commands"]
        self.record_sent += after["record_sent"][len(before["record_sent"]) :]
        self.handle += after["handle"][len(before["handle"]) :]

    def pooled(self) -> LoadResult:
        latencies = [x for r in self.results for x in r.latencies]
        seconds = sum(r.seconds for r in self.results)
        return LoadResult(self.orders, seconds, latencies, {})

    def throughput(self) -> float:
        return statistics.median(r.throughput for r in self.results)

    def per_order(self) -> dict[str, Any]:
        counts = {
            "commits_per_order": round(self.batches / self.orders, 2),
            "writer_commands_per_order": round(self.commands / self.orders, 2),
        }
        for name, samples in (("record_sent", self.record_sent), ("worker", self.handle)):
            if samples:
                timed = LoadResult(len(samples), 1, samples, {})
                counts[f"{name}_p50_ms"] = ms(timed.percentile(50))
                counts[f"{name}_p99_ms"] = ms(timed.percentile(99))
        return counts


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def measure(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    port, fix_port = free_port(), free_port()
    env = {
        "ISTHMUS_DATABASE_URL": f"sqlite:///{directory}/bench.db",
        "ISTHMUS_LOG_LEVEL": "warning",
        "ISTHMUS_OPERATOR_TOKEN": OPERATOR_TOKEN,
        "ISTHMUS_FIX_PORT": str(fix_port),
        "ISTHMUS_FIX_SESSIONS": json.dumps([SENDER]),
        # every risk check runs; the order rate and resting count of a bench are not limits
        "ISTHMUS_RISK_ORDERS_PER_SECOND": "1000000",
        "ISTHMUS_RISK_ORDER_BURST": "1000000",
        "ISTHMUS_RISK_MAX_OPEN_ORDERS": "1000000",
        "ISTHMUS_RISK_MAX_OPEN_NOTIONAL": "1000000000000",
        "BENCH_FIX_DIR": str(directory / "acceptor"),
    }
    process = start("bench.fix:create_app", port, env)
    phases = {name: Phase() for name in ("fix_one", "fix_window", "rest_one", "rest_many")}
    try:
        key = call(
            port,
            "/v1/api-keys",
            {"role": "protocol", "scopes": ["trade", "unsigned"], "accounts": [FIX_ACCOUNT]},
        )
        desk = TimedDesk(
            port=fix_port,
            sender_comp_id=SENDER,
            key_id=key["key_id"],
            secret=key["secret"],
            store_dir=directory / "desk",
            dictionary=build_dictionary(directory / "FIX44-isthmus.xml"),
        )
        with desk:
            desk.wait_logon()
            fix_one_at_a_time(desk, args.warmup, "warm")
            rest(port, args.warmup, 1, "warm")
            for round_ in range(args.rounds):

                def fix_side(r: int = round_) -> None:
                    phases["fix_one"].run(
                        port, lambda: fix_one_at_a_time(desk, args.orders, f"f{r}")
                    )
                    phases["fix_window"].run(port, lambda: fix_window(desk, args.window, f"w{r}"))

                def rest_side(r: int = round_) -> None:
                    phases["rest_one"].run(port, lambda: rest(port, args.orders, 1, f"r{r}"))
                    phases["rest_many"].run(
                        port, lambda: rest(port, args.window, args.rest_connections, f"m{r}")
                    )

                for side in (fix_side, rest_side) if round_ % 2 == 0 else (rest_side, fix_side):
                    side()
            if desk.errors:
                raise RuntimeError(f"initiator callbacks failed: {desk.errors!r}")
    finally:
        process.terminate()
        process.wait()
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=300, help="one at a time, per round")
    parser.add_argument("--window", type=int, default=500, help="orders in flight, per round")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rest-connections", type=int, default=32)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as name:
        phases = measure(args, Path(name))
        floor = commit_floor(name)
    fix_one, rest_one = phases["fix_one"].pooled(), phases["rest_one"].pooled()
    fix_window, rest_many = phases["fix_window"], phases["rest_many"]
    per_round = [
        f.throughput / r.throughput
        for f, r in zip(fix_window.results, rest_many.results, strict=True)
    ]
    print(
        json.dumps(
            {
                "bench": "fix",
                "orders": args.orders,
                "rounds": args.rounds,
                "window": args.window,
                "rest_connections": args.rest_connections,
                "fix": {
                    "p50_ms": ms(fix_one.percentile(50)),
                    "p99_ms": ms(fix_one.percentile(99)),
                    "orders_per_s": round(fix_window.throughput(), 1),
                },
                "rest": {
                    "p50_ms": ms(rest_one.percentile(50)),
                    "p99_ms": ms(rest_one.percentile(99)),
                    "orders_per_s": round(rest_many.throughput(), 1),
                },
                "ratio": {
                    "p50_fix_over_rest": round(fix_one.percentile(50) / rest_one.percentile(50), 3),
                    "throughput_fix_over_rest": round(
                        fix_window.throughput() / rest_many.throughput(), 3
                    ),
                    "throughput_per_round": [round(r, 3) for r in per_round],
                },
                "breakdown": {name: phase.per_order() for name, phase in phases.items()},
                "disk_commit_floor": floor,
                "notes": (
                    "one gateway process (uvicorn, FIX acceptor attached), SQLite WAL, "
                    "internal book, resting limit buys; latencies pooled over rounds, orders/s "
                    f"the median round; FIX orders/s: {args.window} NewOrderSingles sent at "
                    f"once on one session, REST: {args.window} POSTs over "
                    f"{args.rest_connections} connections; the FIX client is QuickFIX's "
                    "initiator with its file store and log"
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
