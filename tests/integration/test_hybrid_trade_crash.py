"""kill -9 the real gateway process at a random point of each of 50 runs of the hybrid trade
(signed condors, a spot bid, a protocol's smart sell split between the book, the simulated
Binance and the Uniswap pool, settled on anvil in the background). The Binance part trades
with the operator's inventory wallet on chain and is hedged on the operator's Binance account,
which the gateway reaches over HTTP with the real ccxt class. After each kill the gateway
restarts and the run is repeated as a client would retry it (the same signed orders); in the
end:

- nothing is lost: every run's condors are filled and every fill settles;
- nothing is doubled: the auditor matches every on-chain fill to exactly one stored fill
  (and every stored fill to the chain), with valid owner signatures and an intact audit log;
- balances conserve: each wallet moved exactly what its fills say, to the token unit, and
  what the wallets (the inventory's included) and the pool gained and lost together sums to
  zero;
- the exchange part is settled and hedged once: each run's Binance part is what the exchange
  executed for that run's child (one exchange order per child), the inventory wallet moved
  exactly the mirror of the Binance fills (through one counter-order fill per Binance fill,
  same trade), and the operator's Binance account moved exactly the Binance parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
from pathlib import Path

import httpx
import pytest

from gateway.chain.anvil import Anvil, AnvilConfig
from gateway.devnet.scenario import Scenario, ScenarioFailed
from tests.integration.exchange_leg import all_settled
from tests.integration.gateway_process import GatewayProcess
from tests.integration.hybrid_world import HybridWorld, build_hybrid_world

pytestmark = [pytest.mark.slow, pytest.mark.chain]
RUNS = int(os.environ.get("ISTHMUS_TEST_RUNS", "50"))  # fewer only for a quick local look


@pytest.mark.timeout(1500)  # 50 gateway restarts: ~6 min alone, more beside other suites
def test_kill_minus_nine_at_random_points_of_fifty_hybrid_trades(tmp_path: Path) -> None:
    node = Anvil(AnvilConfig()).start()
    world: HybridWorld | None = None
    gateway: GatewayProcess | None = None
    try:
        world = build_hybrid_world(node)
        database_url = f"sqlite:///{tmp_path / 'hybrid.db'}"
        gateway = GatewayProcess(database_url, env=world.env(), config=world.config)
        rng = random.Random(20261125)
        runs: list[Scenario] = []
        gateway.start()
        for n in range(RUNS):
            world.books_ready(gateway.url)
            # somewhere in the run or in the settlement behind it: a request half-handled,
            # a match half-written, a batch built, broadcast, mined or being recorded;
            # an exchange child sent and not answered, or answered and not recorded
            killer = threading.Timer(rng.uniform(0, 1.0), gateway.kill)
            killer.start()  # fault injection, not synchronisation
            with contextlib.suppress(httpx.HTTPError, ScenarioFailed, OSError):
                asyncio.run(world.play(gateway.url, n, first=n == 0))  # killed, or not yet
            killer.join()
            gateway.start()  # the client retries the whole run
            world.books_ready(gateway.url)
            # run 0's retry quotes the legs again: the kill may land before all of them were
            # in (submits are idempotent on client_order_id, so the ones that were stay one)
            runs.append(asyncio.run(world.play(gateway.url, n, first=n == 0)))
        try:  # the last restart settles what is left: every order of the traders and the
            # inventory's counter-orders
            wallets = [*(t.wallet for t in world.people), world.inventory]
            fills = asyncio.run(asyncio.wait_for(all_settled(gateway.url, wallets), 300))
        finally:
            gateway.stop()
        world.check(runs, fills, database_url)
    finally:
        if gateway is not None:
            gateway.stop()
        if world is not None:
            world.exchange.stop()
        node.stop()
