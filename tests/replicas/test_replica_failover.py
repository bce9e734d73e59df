"""Three `isthmus up --replica` processes on one throwaway PostgreSQL, with anvil, the Uniswap
pool and the simulated Binance. A client plays the hybrid trade (signed condors, a spot bid, a
protocol's smart sell across the book, Binance and the pool, settled on chain) against a random
replica each run while the replica holding the roles is killed (`kill -9`) at a random moment,
or paused (SIGSTOP) past its lease and resumed. At the end nothing is lost or doubled, every
fill settled exactly once and the auditor matches chain and store one to one (the same checks
as the one-process crash test), a resumed replica found its lease taken and stopped, and the
final settlement is watched through a replica that never held the roles (its stream events come
through the database)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import threading
import time

import httpx
import pytest
from sqlalchemy import Engine

from gateway.chain.anvil import Anvil, AnvilConfig
from gateway.devnet.scenario import Scenario, ScenarioFailed
from gateway.store import leases
from gateway.store.database import create_database_engine
from tests.integration.exchange_leg import all_settled
from tests.integration.gateway_process import GatewayProcess
from tests.integration.hybrid_world import HybridWorld, build_hybrid_world
from tests.postgres_cluster import PostgresCluster

pytestmark = [pytest.mark.slow, pytest.mark.chain, pytest.mark.postgres]
FAULTS = int(os.environ.get("ISTHMUS_TEST_FAULTS", "20"))
REPLICAS = 3
LEASE_TTL = 3.0  # the default


def holder(engine: Engine, timeout: float = 60) -> str:
    """The replica holding the roles, once one does (a poll for a state, with a deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            held = leases.holder(connection, "primary")
        if held is not None:
            return held.holder
        time.sleep(0.1)
    raise TimeoutError("no replica took the roles")


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

        def live() -> list[GatewayProcess]:
            return [r for r in replicas.values() if r.process and r.process.poll() is None]

        def restart_the_stopped() -> None:
            for replica in replicas.values():
                if replica.process is None or replica.process.poll() is not None:
                    replica.start(timeout=120)

        for n in range(FAULTS):
            target = replicas[holder(engine)]
            url = rng.choice(live()).url
            world.books_ready(url)
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
            url = rng.choice(live()).url
            world.books_ready(url)  # through whichever replica: the new holder is serving
            runs.append(asyncio.run(world.play(url, n, first=n == 0)))

        # a paused holder that wakes up finds its lease taken and stops (exit 75); its
        # writes meanwhile were refused by the store (tests/replicas/test_leases.py)
        assert resumed_exits and set(resumed_exits) == {75}, resumed_exits
        primary = holder(engine)
        follower = next(r for name, r in replicas.items() if name != primary)
        wallets = [*(t.wallet for t in world.people), world.inventory]
        fills = asyncio.run(asyncio.wait_for(all_settled(follower.url, wallets), 300))
        world.check(runs, fills, database_url)
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
