"""`isthmus up` with no config: start the devnet world and say what runs where."""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from gateway.devnet.world import DeployedWorld, DevnetWorld, start_chain, start_exchanges


def start_devnet(state_dir: Path, console: Console, chain_port: int = 8545) -> DevnetWorld:
    console.print("starting the devnet: anvil, contracts, Uniswap v2 pool, demo wallets…")
    world = start_chain(state_dir, port=chain_port)
    try:
        console.print("starting the simulated exchanges: Binance spot, Deribit…")
        start_exchanges(world)
        console.print(world_table(world.deployed, world.anvil.rpc_url, world.services))
        console.print(
            "deployment written to .isthmus/devnet/deployment.json; Ctrl-C stops everything"
        )
    except BaseException:
        world.stop()
        raise
    return world


def devnet_operator_token(path: Path) -> str:
    """The devnet operator's token: made once, readable by its owner alone (0600), then
    reused by every later start, so clients keep working across restarts."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(token + "\n")
    return token


def world_table(deployed: DeployedWorld, rpc_url: str, services: Sequence[Any] = ()) -> Table:
    """Where everything is: the chain, the contracts, the services, and the demo traders
    with their keys and wallets (enough to sign orders as them)."""
    d = deployed.deployment
    table = Table(title="Isthmus devnet", show_header=True)
    table.add_column("what")
    table.add_column("where")
    table.add_row(f"anvil (chain id {d.chain_id})", rpc_url)
    for label, address in (
        ("Settlement", d.settlement),
        ("WalletFactory", d.wallet_factory),
        ("PriceOracle", d.oracle),
        ("USDC (6 decimals)", d.usdc),
        ("WETH (18 decimals)", d.weth),
        ("Uniswap v2 WETH/USDC pair", d.weth_usdc_pair),
        ("Uniswap v2 router", d.uniswap_router or "-"),
        ("Safe 1.4.1 proxy factory", d.safe_proxy_factory or "-"),
        ("Safe 1.4.1 singleton", d.safe_singleton or "-"),
        ("Safe 1.4.1 fallback handler", d.safe_fallback_handler or "-"),
    ):
        table.add_row(label, address)
    for service in services:
        table.add_row(
            getattr(service, "label", type(service).__name__), getattr(service, "url", "?")
        )
    for trader in deployed.traders:
        table.add_row(
            f"trader {trader.name}",
            f"owner {trader.owner}\nwallet {trader.wallet}\n"
            f"key {trader.private_key} (anvil dev key)",
        )
    table.add_row(
        "operator inventory",
        f"owner {deployed.inventory_owner.address}\nwallet {deployed.inventory_wallet}\n"
        "takes the other side of signed orders' exchange fills on chain",
    )
    return table
