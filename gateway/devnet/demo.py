"""`isthmus demo`: the hybrid trade on a fresh devnet, step by step, for a person to watch.

It starts its own anvil (any free port) with the contracts, the Uniswap pool and the demo
traders' wallets, runs a gateway in this process on a fresh database, and plays every party
through the gateway's API with `isthmus_client`, as each would (see
`gateway.devnet.scenario`). The settlement cycle runs once, when every order is in, so that
the person sees the one transaction that settles it all.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import tempfile
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from gateway.api.app import create_app
from gateway.chain.transactions import connect
from gateway.cli_output import abbreviated
from gateway.config import Settings
from gateway.devnet.catalogue import devnet_catalogue
from gateway.devnet.scenario import (
    Participants,
    Scenario,
    ScenarioReport,
    Trader,
    run_hybrid_trade,
)
from gateway.devnet.world import DevnetWorld, start_chain
from gateway.oms.service import SystemClock
from gateway.oms.settlement_service import SettlementService
from gateway.runtime import runtime_from_config
from gateway.settlement.auditor import verify

MARKET_MAKER_ACCOUNT = 4  # anvil dev account quoting the option legs (unsigned quotes)


def run_demo(console: Console, state_dir: Path, *, as_json: bool = False) -> bool:
    """Run the scenario once and print what happened (the steps on `console`; the report as
    tables there, or as JSON on stdout); True if everything checked out."""
    report = play(console, state_dir)
    if as_json:
        print(json.dumps(report_json(report), indent=2))
    else:
        print_report(console, report)
    return report.ok


def play(console: Console, state_dir: Path) -> ScenarioReport:
    """The scenario on its own devnet, each step told on `console`."""
    console.print("starting a devnet for the demo: anvil, contracts, Uniswap pool, wallets…")
    world = start_chain(state_dir, port=None)
    try:
        with tempfile.TemporaryDirectory(prefix="isthmus-demo-") as scratch:
            return asyncio.run(_run(world, console, Path(scratch)))
    finally:
        world.stop()


async def _run(world: DevnetWorld, console: Console, scratch: Path) -> ScenarioReport:
    token = secrets.token_urlsafe(32)
    settings = Settings(
        database_url=f"sqlite:///{scratch / 'demo.db'}", operator_token=SecretStr(token)
    )
    catalogue, clock = devnet_catalogue(), SystemClock()
    rt = runtime_from_config(settings, world.gateway_config(), catalogue, clock)
    await rt.start(expiry_interval=None, monitor=False, algos=False, settle_interval=None)
    app = create_app(settings, runtime=rt)
    app.state.runtime = rt
    try:
        await _until_pool_quoted(rt)
        d = world.deployment
        w3 = connect(world.anvil.rpc_url)
        tokens = {"WETH": d.weth, "USDC": d.usdc}
        a, b, c = (Trader(t.name, t.owner, t.private_key, t.wallet) for t in world.traders[:3])
        settlement = rt.settlement
        assert isinstance(settlement, SettlementService)

        async def settle() -> None:
            outcome = await settlement.run_once()
            console.print(
                f"    settlement cycle: {outcome.batches} batch, {outcome.settled} fills "
                f"settled, {outcome.refused} refused"
            )

        async def audit() -> dict[str, Any]:
            report = await asyncio.to_thread(
                verify, w3, d.settlement, engine=rt.read_engine, tokens=tokens
            )
            return report.to_json()

        # every party is an isthmus_client, speaking HTTP to the gateway in this process
        async with Scenario(
            "http://isthmus.demo",
            transport=httpx.ASGITransport(app=app),
            operator_token=token,
            participants=Participants(a, b, c),
            catalogue=catalogue,
            tokens=tokens,
            deadline=int(w3.eth.get_block("latest")["timestamp"]) + 3600,
        ) as scenario:
            market_maker = world.anvil.dev_accounts()[MARKET_MAKER_ACCOUNT].address
            return await run_hybrid_trade(
                scenario,
                w3=w3,
                market_maker=market_maker,
                settle=settle,
                audit=audit,
                step=lambda text: console.print(f"[bold cyan]→[/] {text}"),
            )
    finally:
        await rt.stop()


async def _until_pool_quoted(rt: Any) -> None:
    hub = rt.market_data
    feed = hub.subscribe(frozenset({"WETH/USDC"}))
    try:
        while "uniswap" not in hub.book("WETH/USDC").live_venues:
            await asyncio.wait_for(feed.next(), 30)
    finally:
        hub.unsubscribe(feed)


def report_json(report: ScenarioReport) -> dict[str, Any]:
    """What `print_report` shows, as JSON: the orders by role, the fills as the gateway
    reported them, the settlement transactions, each wallet's token units (as strings: wei
    do not fit a JSON number's safe range) and the auditor's report."""
    return {
        "ok": report.ok,
        "orders": report.orders.ids(),
        "fills": report.fills,
        "transactions": sorted(report.tx_hashes),
        "wallets": [
            {
                "trader": check.name,
                "wallet": check.wallet,
                "asset": asset,
                "gateway": str(check.expected.get(asset, 0)),
                "chain": str(check.actual.get(asset, 0)),
                "ok": check.expected.get(asset, 0) == check.actual.get(asset, 0),
            }
            for check in report.wallets
            for asset in sorted(set(check.expected) | set(check.actual))
        ],
        "audit": report.audit,
    }


def print_report(console: Console, report: ScenarioReport) -> None:
    fills = Table(title="fills (every one settled by the same transaction)")
    for column in ("order", "account", "instrument", "side", "qty", "price", "venue", "tx", "log"):
        fills.add_column(column)
    names = {v: k for k, v in report.orders.ids().items()}
    for fill in sorted(report.fills, key=lambda f: f.get("log_index") or 0):
        fills.add_row(
            names.get(fill["order_id"], fill["order_id"]),
            abbreviated(console, fill["account"], 10),
            fill["instrument"],
            fill["side"],
            fill["quantity"],
            fill["price"],
            fill["venue"],
            abbreviated(console, fill.get("tx_hash") or "-", 12),
            str(fill.get("log_index")),
        )
    console.print(fills)
    wallets = Table(title="wallets: moved on chain vs the gateway's fills (token units)")
    for column in ("trader", "asset", "gateway", "chain", ""):
        wallets.add_column(column)
    for check in report.wallets:
        for asset in sorted(set(check.expected) | set(check.actual)):
            expected, actual = check.expected.get(asset, 0), check.actual.get(asset, 0)
            mark = "[green]=[/]" if expected == actual else "[red]≠[/]"
            wallets.add_row(check.name, asset, str(expected), str(actual), mark)
    console.print(wallets)
    counts = report.audit.get("counts", {})
    console.print(
        f"transactions: {len(report.tx_hashes)} ({', '.join(sorted(report.tx_hashes))})\n"
        f"auditor: {'[green]ok[/]' if report.audit.get('ok') else '[red]problems[/]'} "
        f"({counts.get('fills_ok', 0)} of {counts.get('fills', 0)} on-chain fills proven)"
    )
    for problem in report.audit.get("problems", []):
        console.print(f"  [red]- {problem}[/]")
    console.print("[bold green]demo ok[/]" if report.ok else "[bold red]demo failed[/]")
