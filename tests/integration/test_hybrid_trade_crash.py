"""kill -9 the real gateway process at a random point of each of 50 runs of the hybrid trade
(signed condors, a spot bid, a protocol's smart sell split between the book and the Uniswap
pool, settled on anvil in the background). After each kill the gateway restarts and the run
is repeated as a client would retry it (the same signed orders); in the end:

- nothing is lost: every run's condors are filled and every fill settles;
- nothing is doubled: the auditor matches every on-chain fill to exactly one stored fill
  (and every stored fill to the chain), with valid owner signatures and an intact audit log;
- balances conserve: each wallet moved exactly what its fills say, to the token unit, and
  what the wallets and the pool gained and lost together sums to zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from web3 import Web3

from gateway.chain import tokens
from gateway.chain.anvil import Anvil, AnvilConfig
from gateway.chain.deploy import DeployConfig, create_wallet, deploy_all, register_option
from gateway.chain.transactions import Sender, connect
from gateway.chain.uniswap import get_reserves
from gateway.devnet.catalogue import OPTION_EXPIRY, OPTION_STRIKES, devnet_catalogue
from gateway.devnet.scenario import (
    CONDOR_LEGS,
    Participants,
    Scenario,
    ScenarioFailed,
    Trader,
    expected_changes,
)
from gateway.settlement.auditor import verify
from gateway.store.database import create_database_engine
from tests.integration.gateway_process import GatewayProcess
from tests.operator_access import OPERATOR_TOKEN, operator_headers

pytestmark = [pytest.mark.slow, pytest.mark.chain]
WETH, USDC = 10**18, 10**6
RUNS = int(os.environ.get("ISTHMUS_TEST_RUNS", "50"))  # fewer only for a quick local look
SPOT_SELL = ("1.2", "2750")  # 1 against A's bid, 0.2 to the pool; room for 50 runs of drift


@pytest.mark.timeout(900)  # 50 gateway restarts: ~4 min alone, more beside other suites
def test_kill_minus_nine_at_random_points_of_fifty_hybrid_trades(tmp_path: Path) -> None:
    node = Anvil(AnvilConfig()).start()
    try:
        w3 = connect(node.rpc_url)
        accounts = node.dev_accounts()
        deployer, settler, market_maker = Sender(w3, accounts[0]), accounts[9], accounts[8]
        d = deploy_all(deployer, DeployConfig(operators=(settler.address,)))
        for strike in OPTION_STRIKES:
            for is_call in (True, False):
                register_option(
                    deployer, d, int(strike * USDC), int(OPTION_EXPIRY.timestamp()), is_call
                )
        people = []
        for name, account, usdc, weth in (
            ("alice", accounts[1], 300_000, 0),
            ("bob", accounts[2], 20_000, 0),
            ("carol", accounts[3], 0, 100),
        ):
            wallet = create_wallet(deployer, d, account.address)
            if usdc:
                tokens.mint(deployer, d.usdc, wallet, usdc * USDC)
            if weth:
                tokens.mint(deployer, d.weth, wallet, weth * WETH)
            people.append(Trader(name, account.address, Web3.to_hex(account.key), wallet))
        a, b, c = people
        token_addresses = {"WETH": d.weth, "USDC": d.usdc}

        def holdings() -> dict[str, dict[str, int]]:
            held = {
                t.wallet: {
                    s: tokens.balance_of(w3, addr, t.wallet) for s, addr in token_addresses.items()
                }
                for t in people
            }
            reserves = get_reserves(w3, d.weth_usdc_pair)
            held["pool"] = {"WETH": reserves.of(d.weth), "USDC": reserves.of(d.usdc)}
            return held

        before = holdings()
        assert d.uniswap_router is not None
        config = (
            f'[chain]\nrpc_url = "{node.rpc_url}"\nsettlement = "{d.settlement}"\n'
            'operator_key_env = "ISTHMUS_TEST_SETTLER_KEY"\n'
            f'tokens = {{ WETH = "{d.weth}", USDC = "{d.usdc}" }}\n'
            '[[venues]]\nkind = "internal"\n'
            f'[[venues]]\nkind = "uniswap_v2"\nname = "uniswap"\nrouter = "{d.uniswap_router}"\n'
            "poll_interval = 0.05\n"
            f'[[venues.pools]]\ninstrument = "WETH/USDC"\npair = "{d.weth_usdc_pair}"\n'
            f'base = "{d.weth}"\nquote = "{d.usdc}"\nbase_decimals = 18\nquote_decimals = 6\n'
        )
        database_url = f"sqlite:///{tmp_path / 'hybrid.db'}"
        gateway = GatewayProcess(
            database_url,
            env={
                "ISTHMUS_TEST_SETTLER_KEY": Web3.to_hex(settler.key),
                "ISTHMUS_RISK_ORDERS_PER_SECOND": "10000",
                "ISTHMUS_RISK_ORDER_BURST": "10000",
                "ISTHMUS_RATE_LIMIT_PER_SECOND": "10000",
                "ISTHMUS_RATE_LIMIT_BURST": "10000",
            },
            config=config,
        )
        catalogue = devnet_catalogue()
        deadline = int(w3.eth.get_block("latest")["timestamp"]) + 86_400
        rng = random.Random(20261125)
        runs: list[Scenario] = []

        async def play(n: int, *, first: bool) -> Scenario:
            """Run `n` of the scenario (again, after a kill: the same signed orders)."""
            async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
                scenario = Scenario(
                    http,
                    operator_token=OPERATOR_TOKEN,
                    participants=Participants(a, b, c),
                    catalogue=catalogue,
                    tokens=token_addresses,
                    chain_id=int(w3.eth.chain_id),
                    run=f"r{n}",
                    deadline=deadline,
                    nonce_base=10 * n,
                    spot_sell=SPOT_SELL,
                )
                if first:
                    await scenario.quote_legs(market_maker.address)
                await scenario.sign_in_traders()
                await scenario.submit_condors()
                await scenario.submit_spot_bid()
                await scenario.issue_protocol_key()
                await scenario.submit_spot_sell()
                await scenario.refresh()
                return scenario

        gateway.start()
        for n in range(RUNS):
            # somewhere in the run or in the settlement behind it: a request half-handled,
            # a match half-written, a batch built, broadcast, mined or being recorded
            killer = threading.Timer(rng.uniform(0, 1.0), gateway.kill)
            killer.start()  # fault injection, not synchronisation
            with contextlib.suppress(httpx.HTTPError, ScenarioFailed, OSError):
                asyncio.run(play(n, first=n == 0))  # killed under a request, or not yet
            killer.join()
            gateway.start()  # the client retries the whole run
            # run 0's retry quotes the legs again: the kill may land before all of them were
            # in (submits are idempotent on client_order_id, so the ones that were stay one)
            runs.append(asyncio.run(play(n, first=n == 0)))
        try:  # the last restart settles what is left
            order_ids = [oid for run in runs for oid in run.orders.ids().values()]
            fills = asyncio.run(asyncio.wait_for(all_settled(gateway.url, people, order_ids), 300))
        finally:
            gateway.stop()

        for run in runs:  # nothing lost: every condor pair traded, whatever the kill hit
            assert run.orders.condor_a["status"] == "filled", run.run
            assert run.orders.condor_b["status"] == "filled", run.run
        pool_fills = [f for f in fills if f["venue"] == "uniswap"]
        assert pool_fills and len(fills) > 8 * RUNS
        assert {f["settlement"] for f in fills} == {"settled"}
        keys = {(f["tx_hash"], f["log_index"], f["instrument"]) for f in fills}
        assert len(keys) == len(fills)  # no on-chain fill claimed twice

        engine = create_database_engine(database_url, for_writes=False)
        try:
            report = verify(w3, d.settlement, engine=engine, tokens=token_addresses)
        finally:
            engine.dispose()
        assert report.ok, "\n".join(
            [*report.problems, *(p for f in report.fills if not f.ok for p in f.problems)]
        )
        assert len(report.fills) == len(fills)  # the chain holds exactly the stored fills

        after = holdings()
        expected = expected_changes(fills, catalogue)
        for trader in people:
            moved = {
                s: after[trader.wallet][s] - before[trader.wallet][s] for s in ("WETH", "USDC")
            }
            said = expected[Web3.to_checksum_address(trader.wallet)]
            assert moved == {s: said.get(s, 0) for s in ("WETH", "USDC")}, trader.name
        for symbol in ("WETH", "USDC"):  # what the wallets and the pool moved sums to zero
            assert sum(after[k][symbol] - before[k][symbol] for k in after) == 0, symbol
        assert {leg for leg, _ in CONDOR_LEGS} <= {f["instrument"] for f in fills}
    finally:
        node.stop()


async def all_settled(url: str, people: list[Trader], order_ids: list[str]) -> list[dict[str, Any]]:
    """Listen for settlements first, then read where every fill stands; wait on the stream
    for the ones still pending (no polling)."""
    async with (
        websockets.connect(
            url.replace("http", "ws") + "/v1/stream", additional_headers=operator_headers()
        ) as socket,
        httpx.AsyncClient(base_url=url, timeout=30, headers=operator_headers()) as http,
    ):
        assert json.loads(await socket.recv())["type"] == "subscribed"
        await socket.send(
            json.dumps({"op": "subscribe", "accounts": [t.wallet.lower() for t in people]})
        )
        while json.loads(await socket.recv())["type"] != "subscribed":
            pass  # events sent before our subscription took effect

        async def read() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            for order_id in order_ids:
                response = await http.get(f"/v1/orders/{order_id}/fills")
                assert response.status_code == 200, response.text
                found += response.json()
            return found

        fills = await read()
        waiting = {f["id"] for f in fills if f["settlement"] != "settled"}
        while waiting:
            event = json.loads(await socket.recv())
            if event["type"] == "fill.settled":
                waiting.discard(event["fill"]["id"])
        return await read()
