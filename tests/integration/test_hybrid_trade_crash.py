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
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
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
    inventory_moves,
)
from gateway.settlement.auditor import verify
from gateway.store.database import create_database_engine
from tests.integration.exchange_leg import (
    Exchange,
    all_settled,
    binance_toml,
    chain_toml,
    gateway_env,
    pool_toml,
    start_binance,
    stored_children,
    wait_for_book,
)
from tests.integration.gateway_process import GatewayProcess
from tests.operator_access import OPERATOR_TOKEN

pytestmark = [pytest.mark.slow, pytest.mark.chain]
WETH, USDC = 10**18, 10**6
RUNS = int(os.environ.get("ISTHMUS_TEST_RUNS", "50"))  # fewer only for a quick local look
# 1 against A's bid, 0.1 to Binance's one bid (better than the pool's after fees, quoted again
# before each run), 0.2 to the pool; room for 50 runs of the pool's drift. A bid left by a
# run whose sell the kill cancelled takes a later sell's rest instead.
SPOT_SELL = ("1.3", "2750")
# nothing rests on the internal book's ask side: 0.1 to Binance's one ask, 0.2 to the pool
SMART_BUY = ("0.3", "3250")
ON_BINANCE = Decimal("0.1")  # Binance quotes one level of this size on each side


@pytest.mark.timeout(900)  # 50 gateway restarts: ~4 min alone, more beside other suites
def test_kill_minus_nine_at_random_points_of_fifty_hybrid_trades(tmp_path: Path) -> None:
    node = Anvil(AnvilConfig()).start()
    exchange: Exchange | None = None
    gateway: GatewayProcess | None = None
    try:
        w3 = connect(node.rpc_url)
        accounts = node.dev_accounts()
        deployer, settler, market_maker = Sender(w3, accounts[0]), accounts[9], accounts[8]
        inventory_owner = accounts[5]
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
            ("carol", accounts[3], 10_000, 100),
        ):
            wallet = create_wallet(deployer, d, account.address)
            if usdc:
                tokens.mint(deployer, d.usdc, wallet, usdc * USDC)
            if weth:
                tokens.mint(deployer, d.weth, wallet, weth * WETH)
            people.append(Trader(name, account.address, Web3.to_hex(account.key), wallet))
        a, b, c = people
        inventory = create_wallet(deployer, d, inventory_owner.address)
        tokens.mint(deployer, d.usdc, inventory, 1_000_000 * USDC)
        tokens.mint(deployer, d.weth, inventory, 300 * WETH)
        token_addresses = {"WETH": d.weth, "USDC": d.usdc}

        def holdings() -> dict[str, dict[str, int]]:
            held = {
                wallet: {
                    s: tokens.balance_of(w3, addr, wallet) for s, addr in token_addresses.items()
                }
                for wallet in [*(t.wallet for t in people), inventory]
            }
            reserves = get_reserves(w3, d.weth_usdc_pair)
            held["pool"] = {"WETH": reserves.of(d.weth), "USDC": reserves.of(d.usdc)}
            return held

        # the operator's Binance account: the inventory's hedges; one bid of 0.1 on the book
        exchange = start_binance(
            seed=11, eth=Decimal(100), usdc=Decimal(1_000_000), levels=1, level_size=ON_BINANCE
        )
        before = holdings()
        hedge_before = exchange.balances()
        assert d.uniswap_router is not None
        config = (
            chain_toml(node.rpc_url, d, inventory)
            + '[[venues]]\nkind = "internal"\n'
            + pool_toml(d)
            + binance_toml(exchange.url)
        )
        database_url = f"sqlite:///{tmp_path / 'hybrid.db'}"
        gateway = GatewayProcess(
            database_url,
            env=gateway_env(Web3.to_hex(settler.key), Web3.to_hex(inventory_owner.key)),
            config=config,
        )
        catalogue = devnet_catalogue()
        deadline = int(w3.eth.get_block("latest")["timestamp"]) + 86_400
        rng = random.Random(20261125)
        runs: list[Scenario] = []

        async def play(n: int, *, first: bool) -> Scenario:
            """Run `n` of the scenario (again, after a kill: the same signed orders)."""
            async with Scenario(
                gateway.url,
                operator_token=OPERATOR_TOKEN,
                participants=Participants(a, b, c),
                catalogue=catalogue,
                tokens=token_addresses,
                run=f"r{n}",
                deadline=deadline,
                nonce_base=10 * n,
                spot_sell=SPOT_SELL,
                smart_buy=SMART_BUY,
            ) as scenario:
                if first:
                    await scenario.quote_legs(market_maker.address)
                await scenario.sign_in_traders()
                await scenario.submit_condors()
                await scenario.submit_spot_bid()
                await scenario.issue_protocol_key()
                await scenario.submit_spot_sell()
                await scenario.submit_smart_buy()
                await scenario.refresh()
                return scenario

        def books_ready() -> None:
            """Binance quotes its bid again (the last run took it); the gateway sees it and
            the pool (it may have just restarted)."""
            assert exchange is not None
            exchange.sim.requote()

            async def wait() -> None:
                async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
                    await wait_for_book(http, {"uniswap", "binance"}, on_binance=ON_BINANCE)

            asyncio.run(wait())

        gateway.start()
        for n in range(RUNS):
            books_ready()
            # somewhere in the run or in the settlement behind it: a request half-handled,
            # a match half-written, a batch built, broadcast, mined or being recorded;
            # an exchange child sent and not answered, or answered and not recorded
            killer = threading.Timer(rng.uniform(0, 1.0), gateway.kill)
            killer.start()  # fault injection, not synchronisation
            with contextlib.suppress(httpx.HTTPError, ScenarioFailed, OSError):
                asyncio.run(play(n, first=n == 0))  # killed under a request, or not yet
            killer.join()
            gateway.start()  # the client retries the whole run
            books_ready()
            # run 0's retry quotes the legs again: the kill may land before all of them were
            # in (submits are idempotent on client_order_id, so the ones that were stay one)
            runs.append(asyncio.run(play(n, first=n == 0)))
        try:  # the last restart settles what is left: every order of the traders and the
            # inventory's counter-orders
            wallets = [*(t.wallet for t in people), inventory]
            fills = asyncio.run(asyncio.wait_for(all_settled(gateway.url, wallets), 300))
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
        for held in wallets:
            moved = {s: after[held][s] - before[held][s] for s in ("WETH", "USDC")}
            said = expected[Web3.to_checksum_address(held)]
            assert moved == {s: said.get(s, 0) for s in ("WETH", "USDC")}, held
        for symbol in ("WETH", "USDC"):  # what the wallets and the pool moved sums to zero
            assert sum(after[k][symbol] - before[k][symbol] for k in after) == 0, symbol
        assert {leg for leg, _ in CONDOR_LEGS} <= {f["instrument"] for f in fills}

        # the exchange part, run by run: what the exchange executed for the run's child is
        # the run's Binance fills, one exchange order per child
        traders = {t.wallet.lower() for t in people}
        binance_fills = [
            f for f in fills if f["venue"] == "binance" and f["account"].lower() in traders
        ]
        hedges = exchange.orders()
        assert len({h.client_order_id for h in hedges}) == len(hedges)  # none sent twice
        smart = [(run.run, run.orders.spot_sell["id"], run.orders.smart_buy["id"]) for run in runs]
        children = {
            c.client_order_id: c
            for c in stored_children(database_url, [o for _, *ids in smart for o in ids])
        }
        assert {h.client_order_id for h in hedges} <= set(children)
        hedged_runs = 0
        for run_name, *order_ids in smart:
            for order_id in order_ids:
                on_binance = sum(
                    (Decimal(f["quantity"]) for f in binance_fills if f["order_id"] == order_id),
                    Decimal(0),
                )
                executed = sum(
                    (h.filled for h in hedges if str(h.client_order_id).startswith(f"{order_id}-")),
                    Decimal(0),
                )
                recorded = sum(
                    (
                        c.filled
                        for c in children.values()
                        if c.order_id == order_id and c.venue == "binance"
                    ),
                    Decimal(0),
                )
                assert on_binance == executed == recorded, (run_name, order_id)
            hedged_runs += any(f["order_id"] in order_ids for f in binance_fills)
        assert hedged_runs >= RUNS // 2, hedged_runs  # most runs reached Binance
        # the inventory took the other side of each Binance fill, in the same trade
        counter = [f for f in fills if f["account"].lower() == inventory.lower()]
        assert sorted((f["trade_id"], f["quantity"], f["price"]) for f in counter) == sorted(
            (f["trade_id"], f["quantity"], f["price"]) for f in binance_fills
        )
        mirror = inventory_moves(binance_fills, catalogue, {"binance"})
        assert {s: after[inventory][s] - before[inventory][s] for s in ("WETH", "USDC")} == {
            "WETH": mirror["WETH"],
            "USDC": mirror["USDC"],
        }

        # hedged once: the operator's Binance account moved exactly the exchange parts (the
        # opposite of the inventory's trades), net of the exchange's fees
        def signed(side: str, amount: Decimal) -> Decimal:
            return amount if side == "buy" else -amount

        exchange_part = sum(
            (signed(f["side"], Decimal(f["quantity"])) for f in binance_fills), Decimal(0)
        )
        hedge_after = exchange.balances()
        hedged = {"ETH": Decimal(0), "USDC": Decimal(0)}
        for hedge in hedges:
            hedged["ETH"] += signed(hedge.side.value, hedge.filled)
            hedged["USDC"] -= signed(hedge.side.value, hedge.notional)
            assert hedge.fee_asset is not None
            hedged[hedge.fee_asset] -= hedge.fee
        assert {a: hedge_after[a] - hedge_before[a] for a in hedged} == hedged
        assert sum((signed(h.side.value, h.filled) for h in hedges), Decimal(0)) == exchange_part
        assert sum((h.notional for h in hedges), Decimal(0)) == sum(
            (c.filled_notional for c in children.values() if c.venue == "binance"), Decimal(0)
        )
        assert any(f["side"] == "buy" for f in binance_fills)
    finally:
        if gateway is not None:
            gateway.stop()
        if exchange is not None:
            exchange.stop()
        node.stop()
