"""The hybrid trade's world on a fresh anvil, for the tests that kill gateways under it: the
contracts, three traders' wallets, the operator's inventory wallet, the simulated Binance,
the gateway's configuration, one run of the scenario as a client plays it, and the checks
that nothing was lost, doubled or moved wrongly (on chain, in the store, on the exchange)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from web3 import Web3

from gateway.chain import tokens
from gateway.chain.anvil import Anvil
from gateway.chain.deploy import (
    DeployConfig,
    Deployment,
    create_wallet,
    deploy_all,
    register_option,
)
from gateway.chain.transactions import Sender, connect
from gateway.chain.uniswap import get_reserves
from gateway.devnet.catalogue import OPTION_EXPIRY, OPTION_STRIKES, devnet_catalogue
from gateway.devnet.scenario import (
    CONDOR_LEGS,
    Participants,
    Scenario,
    Trader,
    expected_changes,
    inventory_moves,
)
from gateway.domain.instruments import InstrumentCatalogue
from tests.integration.exchange_leg import (
    Exchange,
    audited,
    binance_toml,
    chain_toml,
    gateway_env,
    pool_toml,
    start_binance,
    stored_children,
    wait_for_book,
)
from tests.operator_access import OPERATOR_TOKEN

WETH, USDC = 10**18, 10**6
# 1 against A's bid, 0.1 to Binance's one bid (better than the pool's after fees, quoted again
# before each run), 0.2 to the pool; room for 50 runs of the pool's drift. A bid left by a
# run whose sell the kill cancelled takes a later sell's rest instead.
SPOT_SELL = ("1.3", "2750")
# nothing rests on the internal book's ask side: 0.1 to Binance's one ask, 0.2 to the pool
SMART_BUY = ("0.3", "3250")
ON_BINANCE = Decimal("0.1")  # Binance quotes one level of this size on each side


@dataclass
class HybridWorld:
    w3: Web3
    d: Deployment
    people: list[Trader]
    inventory: str
    market_maker: Any
    settler: Any
    inventory_owner: Any
    exchange: Exchange
    token_addresses: dict[str, Any]
    holdings: Callable[[], dict[str, dict[str, int]]]
    before: dict[str, dict[str, int]]
    hedge_before: dict[str, Decimal]
    config: str
    catalogue: InstrumentCatalogue
    deadline: int

    def env(self) -> dict[str, str]:
        return gateway_env(Web3.to_hex(self.settler.key), Web3.to_hex(self.inventory_owner.key))

    async def play(self, url: str, n: int, *, first: bool) -> Scenario:
        """Run `n` of the scenario (again, after a kill: the same signed orders)."""
        async with Scenario(
            url,
            operator_token=OPERATOR_TOKEN,
            participants=Participants(*self.people),
            catalogue=self.catalogue,
            tokens=self.token_addresses,
            run=f"r{n}",
            deadline=self.deadline,
            nonce_base=10 * n,
            spot_sell=SPOT_SELL,
            smart_buy=SMART_BUY,
        ) as scenario:
            if first:
                await scenario.quote_legs(self.market_maker.address)
            await scenario.sign_in_traders()
            await scenario.submit_condors()
            await scenario.submit_spot_bid()
            await scenario.issue_protocol_key()
            await scenario.submit_spot_sell()
            await scenario.submit_smart_buy()
            await scenario.refresh()
            return scenario

    def books_ready(self, url: str) -> None:
        """Binance quotes its bid again (the last run took it); the gateway sees it and
        the pool (it may have just restarted)."""
        self.exchange.sim.requote()

        async def wait() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                await wait_for_book(http, {"uniswap", "binance"}, on_binance=ON_BINANCE)

        asyncio.run(wait())

    def check(self, runs: list[Scenario], fills: list[dict[str, Any]], database_url: str) -> None:
        """Nothing lost, nothing doubled, balances conserved, the exchange part hedged once."""
        runs_count = len(runs)
        w3, d, token_addresses = self.w3, self.d, self.token_addresses
        people, inventory, catalogue, exchange = (
            self.people,
            self.inventory,
            self.catalogue,
            self.exchange,
        )
        before, hedge_before = self.before, self.hedge_before
        wallets = [*(t.wallet for t in people), inventory]
        for run in runs:  # nothing lost: every condor pair traded, whatever the kill hit
            assert run.orders.condor_a["status"] == "filled", run.run
            assert run.orders.condor_b["status"] == "filled", run.run
        pool_fills = [f for f in fills if f["venue"] == "uniswap"]
        assert pool_fills and len(fills) > 8 * runs_count
        assert {f["settlement"] for f in fills} == {"settled"}
        # an on-chain fill is its log and its wallet (a paired trade's Traded log is both sides')
        keys = {(f["tx_hash"], f["log_index"], f["instrument"], f["account"]) for f in fills}
        assert len(keys) == len(fills)  # no on-chain fill claimed twice

        audited(w3, d.settlement, database_url, token_addresses, len(fills))

        after = self.holdings()
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
                assert on_binance == executed == recorded, (
                    run_name,
                    order_id,
                    on_binance,
                    executed,
                    recorded,
                )
            hedged_runs += any(f["order_id"] in order_ids for f in binance_fills)
        assert hedged_runs >= runs_count // 2, hedged_runs  # most runs reached Binance
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


def build_hybrid_world(node: Anvil) -> HybridWorld:
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
    inventory = create_wallet(deployer, d, inventory_owner.address)
    tokens.mint(deployer, d.usdc, inventory, 1_000_000 * USDC)
    tokens.mint(deployer, d.weth, inventory, 300 * WETH)
    token_addresses = {"WETH": d.weth, "USDC": d.usdc}

    def holdings() -> dict[str, dict[str, int]]:
        held = {
            wallet: {s: tokens.balance_of(w3, addr, wallet) for s, addr in token_addresses.items()}
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
    return HybridWorld(
        w3,
        d,
        people,
        inventory,
        market_maker,
        settler,
        inventory_owner,
        exchange,
        token_addresses,
        holdings,
        before,
        hedge_before,
        config,
        devnet_catalogue(),
        int(w3.eth.get_block("latest")["timestamp"]) + 86_400,
    )
