"""Three `isthmus up --replica` processes on one throwaway PostgreSQL, with anvil, the Uniswap
pool and the simulated Binance. A client plays the hybrid trade (signed condors, a spot bid, a
protocol's smart sell across the book, Binance and the pool, settled on chain) against a random
replica each run while the replica holding the roles is killed (`kill -9`) at a random moment,
or paused (SIGSTOP) past its lease and resumed. At the end nothing is lost or doubled, every
fill settled exactly once and the auditor matches chain and store one to one (the same checks
as the one-process crash test), a resumed replica found its lease taken and stopped, and the
final settlement is watched through a replica that does not hold the roles (its stream events
come through the database), and clients on the streams throughout saw every fill of their
accounts committed while they were connected (a replica's death closes their socket)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest
import websockets
from sqlalchemy import text

from gateway.chain.anvil import Anvil, AnvilConfig
from gateway.devnet.scenario import Scenario, ScenarioFailed
from gateway.store import leases
from gateway.store.database import create_database_engine
from tests.integration.exchange_leg import all_settled
from tests.integration.gateway_process import GatewayProcess
from tests.integration.hybrid_world import HybridWorld, build_hybrid_world
from tests.operator_access import operator_headers
from tests.postgres_cluster import PostgresCluster
from tests.replicas.lease_holder import wait_for_holder

pytestmark = [pytest.mark.slow, pytest.mark.chain, pytest.mark.postgres]
FAULTS = int(os.environ.get("ISTHMUS_TEST_FAULTS", "20"))
REPLICAS = 3
LEASE_TTL = 3.0  # the default
T = TypeVar("T")


class StreamWatcher:
    """A client on one replica's stream, watching the traders' and the inventory's fills. When
    its replica dies the socket closes (it is told), and it connects to another one. It keeps
    the fills it saw and the periods it was connected, each with whether it ended by being
    told (the socket closed, or a gap was announced) or by the test stopping it."""

    def __init__(self, urls: Callable[[], list[str]], accounts: list[str], seed: int) -> None:
        self._urls = urls
        self._accounts = [a.lower() for a in accounts]
        self._rng = random.Random(seed)
        self.seen: set[str] = set()
        self.periods: list[tuple[float, float, bool]] = []  # (start, end, told)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._watch()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    async def _watch(self) -> None:
        while not self._stop.is_set():
            url = self._rng.choice(self._urls())
            started: float | None = None
            told = True
            try:
                async with websockets.connect(
                    url.replace("http", "ws") + "/v1/stream",
                    additional_headers=operator_headers(),
                    open_timeout=5,
                ) as socket:
                    assert json.loads(await socket.recv())["type"] == "subscribed"
                    await socket.send(json.dumps({"op": "subscribe", "accounts": self._accounts}))
                    while json.loads(await socket.recv())["type"] != "subscribed":
                        pass
                    started = time.time()
                    told = False
                    while not self._stop.is_set():
                        with contextlib.suppress(TimeoutError):
                            event = json.loads(await asyncio.wait_for(socket.recv(), 0.5))
                            if event.get("type") == "fill.recorded":
                                self.seen.add(event["fill"]["id"])
                            elif event.get("type") == "error":
                                told = True  # a gap: events were lost before it
                                break
            except (OSError, websockets.WebSocketException, TimeoutError):
                told = True  # its replica died or is not up yet: told, and it moves on
            if started is not None:
                self.periods.append((started, time.time(), told))


def rows_of(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_database_engine(database_url, for_writes=False)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql)).all()]
    finally:
        engine.dispose()


def unsettled(database_url: str) -> list[tuple[Any, ...]]:
    """The fills not settled, with their batch and its state (what a timeout leaves)."""
    return rows_of(
        database_url,
        "SELECT f.id, f.order_id, f.venue, f.settlement, f.batch_id, b.status "
        "FROM fills f LEFT JOIN settlement_batches b ON b.id = f.batch_id "
        "WHERE f.settlement <> 'settled'",
    )


def recorded_at(database_url: str, accounts: list[str]) -> dict[str, float]:
    """When each fill of `accounts` was committed (its audit record), as a unix time."""
    wanted = {a.lower() for a in accounts}
    rows = rows_of(
        database_url,
        "SELECT entity_id, created_at, payload FROM audit_log WHERE kind = 'fill.recorded'",
    )
    return {
        fill_id: at.timestamp()
        for fill_id, at, payload in rows
        if str(json.loads(payload).get("account", "")).lower() in wanted
    }


@pytest.mark.timeout(1500)
def test_replicas_fail_over_under_kills_and_pauses(postgres: PostgresCluster) -> None:
    node = Anvil(AnvilConfig()).start()
    world: HybridWorld | None = None
    replicas: dict[str, GatewayProcess] = {}
    database_url = postgres.new_database()
    engine = create_database_engine(database_url, for_writes=False)
    try:
        world = build_hybrid_world(node)
        for i in range(REPLICAS):
            name = f"r{i}"
            replicas[name] = GatewayProcess(
                database_url,
                env={**world.env(), "ISTHMUS_REPLICA": "true", "ISTHMUS_REPLICA_ID": name},
                config=world.config,
            )
            replicas[name].start(timeout=120)
        rng = random.Random(20261206)
        runs: list[Scenario] = []
        resumed_exits: list[int | None] = []

        restarting: dict[str, threading.Thread] = {}

        def live() -> list[GatewayProcess]:
            return [r for r in replicas.values() if r.process and r.process.poll() is None]

        def serving() -> list[GatewayProcess]:
            up = live()
            return [r for name, r in replicas.items() if name not in restarting and r in up]

        wallets = [*(t.wallet for t in world.people), world.inventory]
        watchers = [StreamWatcher(lambda: [r.url for r in live()], wallets, i) for i in range(2)]
        for watcher in watchers:
            watcher.start()

        def restart_the_stopped() -> None:
            """In the background: the run goes on through the replicas still serving."""
            for name, replica in replicas.items():
                if replica.process is None or replica.process.poll() is not None:
                    restarting[name] = threading.Thread(target=replica.start, args=(120,))
                    restarting[name].start()

        def restarted() -> None:
            for thread in restarting.values():
                thread.join(timeout=180)
            restarting.clear()

        def through_a_serving_replica(action: Callable[[str], T]) -> T:
            """What a client of replicas does: `action` through a replica that serves; if that
            replica stops meanwhile (one whose loop stalled past its lease on a loaded machine
            stops itself, as it must), again through another. A replica that fails and stays
            up is a failure."""
            for _ in range(REPLICAS + 1):
                if not serving():
                    restarted()
                replica = rng.choice(serving())
                try:
                    return action(replica.url)
                except (httpx.HTTPError, ScenarioFailed, OSError) as error:
                    assert replica.process is not None
                    try:
                        replica.process.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        raise error from None
                    restart_the_stopped()
            raise AssertionError("no replica served")

        def ready(url: str) -> str:
            world.books_ready(url)
            return url

        def retried_run(n: int) -> Callable[[str], Scenario]:
            def run(url: str) -> Scenario:
                world.books_ready(url)
                return asyncio.run(world.play(url, n, first=n == 0))

            return run

        for n in range(FAULTS):
            # three replicas again before the next fault (one that lost its lease while its
            # loop stalled stopped itself too, as it must: its supervisor starts it again)
            restart_the_stopped()
            restarted()
            target = replicas[wait_for_holder(database_url).holder]
            url = through_a_serving_replica(ready)
            pause = n % 2 == 1

            def fault(target: GatewayProcess = target, pause: bool = pause) -> None:
                assert target.process is not None
                if not pause:
                    target.kill()
                    return
                target.process.send_signal(signal.SIGSTOP)
                # past its lease, so another replica takes the roles while it sleeps
                time.sleep(LEASE_TTL * 2)  # fault injection, not synchronisation
                target.process.send_signal(signal.SIGCONT)
                resumed_exits.append(target.process.wait(timeout=60))

            injector = threading.Timer(rng.uniform(0, 1.0), fault)
            injector.start()  # fault injection, not synchronisation
            with contextlib.suppress(httpx.HTTPError, ScenarioFailed, OSError):
                asyncio.run(world.play(url, n, first=n == 0))
            injector.join()
            restart_the_stopped()
            # through whichever replica serves: the new holder is serving
            runs.append(through_a_serving_replica(retried_run(n)))

        # a paused holder that wakes up finds its lease taken and stops (exit 75); its
        # writes meanwhile were refused by the store (tests/replicas/test_leases.py)
        assert resumed_exits and set(resumed_exits) == {75}, resumed_exits
        restart_the_stopped()
        restarted()
        primary = wait_for_holder(database_url).holder
        follower = next(r for name, r in replicas.items() if name != primary)
        try:
            fills = asyncio.run(asyncio.wait_for(all_settled(follower.url, wallets), 300))
        except TimeoutError:
            raise AssertionError(f"not settled: {unsettled(database_url)}") from None
        for watcher in watchers:
            watcher.stop()
        world.check(runs, fills, database_url)
        # every client saw every fill of its accounts committed while it was connected (a
        # second's margin for delivery at each end), or was told: its socket closed (a
        # replica paused, then stopped, says nothing meanwhile and closes it on waking up)
        committed = recorded_at(database_url, wallets)
        for watcher in watchers:
            assert watcher.seen and watcher.periods
            missed = [
                fill_id
                for fill_id, at in committed.items()
                if fill_id not in watcher.seen
                and any(
                    start + 1 < at < end - 1 for start, end, told in watcher.periods if not told
                )
            ]
            assert not missed, missed
        with engine.connect() as connection:
            [lease] = leases.leases(connection)
        assert lease.takeovers >= FAULTS  # every fault moved the roles
    finally:
        for replica in replicas.values():
            if replica.process is not None and replica.process.poll() is None:
                with contextlib.suppress(Exception):
                    replica.process.send_signal(signal.SIGCONT)
            replica.stop()
        if world is not None:
            world.exchange.stop()
        engine.dispose()
        node.stop()
