"""`isthmus deploy`: the devnet world on a chain that already runs, and the gateway config
that points at it.

docker-compose runs anvil as a service of its own with anvil's default mnemonic, so its dev
accounts and keys are the ones `gateway.chain.anvil.dev_accounts()` derives without starting
anything. A one-shot `deploy` service runs this against it: the contracts, the options, the
Uniswap pool and the funded demo wallets (`gateway.devnet.world.deploy_world`, the same
function the devnet's `start_chain` runs), then the TOML that `isthmus up --config` reads
(chain, settlement, tokens, inventory wallet; venues: the internal book and the pool), into a
volume the replicas share. Keys never go into the file: it names the environment variables
that hold them (`DeployedWorld.secrets()`), and compose passes anvil's public dev keys there.

Run again (`docker compose restart`, or `up` once more) it finds the file and the Settlement
contract it names on the chain, and leaves both alone.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.error
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from rich.console import Console
from web3 import Web3

from gateway.chain.anvil import AnvilError, dev_accounts, rpc_call
from gateway.chain.deploy import Deployment, factory_contract
from gateway.chain.transactions import connect
from gateway.devnet.runner import world_table
from gateway.devnet.world import (
    DEMO_TRADER_ACCOUNTS,
    INVENTORY_ACCOUNT,
    SETTLER_ACCOUNT,
    DemoTrader,
    DeployedWorld,
    deploy_world,
)
from gateway.venues.config import GatewayConfig, load_config

DEPLOYMENT_FILE = "deployment.json"


class DeployRefused(RuntimeError):
    """The chain cannot take the deployment (no node answers, or the dev accounts have no
    ether: not an anvil with its default mnemonic)."""


@dataclass(frozen=True, slots=True)
class DeployOutcome:
    out: Path
    config: GatewayConfig
    world: DeployedWorld | None  # None: found deployed without its deployment.json
    created: bool  # False: the file and its contracts were there, left alone


def deploy_onto(
    rpc_url: str,
    out: Path,
    *,
    state_dir: Path | None = None,
    public_rpc_url: str | None = None,
    wait_seconds: float = 120.0,
) -> DeployOutcome:
    """Deploy the devnet world onto the node at `rpc_url` and write the gateway config to
    `out` (`deployment.json` into `state_dir`, by default beside `out`); if `out` exists and
    the Settlement contract it names has code there, do nothing."""
    state_dir = state_dir if state_dir is not None else out.parent
    wait_for_node(rpc_url, wait_seconds)
    accounts = dev_accounts()
    found = _already_deployed(rpc_url, out, state_dir, accounts)
    if found is not None:
        return found
    w3 = connect(rpc_url)
    if w3.eth.get_balance(accounts[0].address) == 0:
        raise DeployRefused(
            f"anvil's first dev account {accounts[0].address} has no ether at {rpc_url}: "
            "`isthmus deploy` deploys with anvil's default-mnemonic dev accounts"
        )
    world = deploy_world(rpc_url, state_dir, accounts)
    config = world.gateway_config(rpc_url, public_rpc_url=public_rpc_url)
    _write_atomic(out, config_toml(config))
    return DeployOutcome(out, config, world, created=True)


def wait_for_node(rpc_url: str, timeout: float) -> None:
    """Until the node answers `eth_chainId` (compose starts it with this step; npm installs
    anvil first), for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            rpc_call(rpc_url, "eth_chainId", timeout=2.0)
            return
        except (urllib.error.URLError, OSError, ValueError, AnvilError) as error:
            if time.monotonic() > deadline:
                raise DeployRefused(
                    f"no JSON-RPC node answered at {rpc_url} within {timeout:g} s: {error}"
                ) from None
        time.sleep(0.5)


def _already_deployed(
    rpc_url: str, out: Path, state_dir: Path, accounts: list[LocalAccount]
) -> DeployOutcome | None:
    if not out.is_file():
        return None
    config = load_config(out)
    if config.chain is None or config.chain.settlement is None:
        return None
    w3 = connect(rpc_url)
    if not w3.eth.get_code(Web3.to_checksum_address(config.chain.settlement)):
        return None  # a new chain (anvil forgets everything when it stops): deploy again
    deployment_file = state_dir / DEPLOYMENT_FILE
    world = None
    if deployment_file.is_file():
        world = _world_on_chain(w3, Deployment.load(deployment_file), accounts)
    return DeployOutcome(out, config, world, created=False)


def _world_on_chain(w3: Web3, d: Deployment, accounts: list[LocalAccount]) -> DeployedWorld:
    """The deployed world as the chain holds it: each demo trader's wallet from the factory."""
    factory = factory_contract(w3, d)

    def wallet_of(account: LocalAccount) -> str:
        return Web3.to_checksum_address(factory.functions.wallet_of(account.address).call())

    traders = [
        DemoTrader(name, accounts[i].address, Web3.to_hex(accounts[i].key), wallet_of(accounts[i]))
        for name, i in DEMO_TRADER_ACCOUNTS
    ]
    inventory_owner = accounts[INVENTORY_ACCOUNT]
    return DeployedWorld(
        d,
        accounts[0],
        traders,
        accounts[SETTLER_ACCOUNT],
        inventory_owner,
        wallet_of(inventory_owner),
    )


def print_outcome(console: Console, outcome: DeployOutcome) -> None:
    """What was deployed where, the demo traders (to sign orders as them) and the
    environment variables the config names."""
    chain = outcome.config.chain
    assert chain is not None
    if outcome.created:
        console.print(f"deployed onto {chain.rpc_url}; gateway config written to {outcome.out}")
    else:
        console.print(
            f"already deployed: {outcome.out} names Settlement {chain.settlement}, which has "
            f"code at {chain.rpc_url}; nothing to do"
        )
    if outcome.world is None:
        return
    console.print(world_table(outcome.world, chain.rpc_url))
    console.print(
        f"`isthmus up --config {outcome.out}` reads these keys (anvil's public dev keys) from "
        "the environment:"
    )
    for name, value in outcome.world.secrets().items():
        console.print(f"  {name}={value}")


# ---------------------------------------------------------------------------
# The config as TOML
# ---------------------------------------------------------------------------


def config_toml(config: GatewayConfig) -> str:
    """`config` as the TOML `load_config` reads back to an equal config (settings left at
    their defaults are left out)."""
    data = config.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    lines: list[str] = []
    _table(lines, (), data, array=False)
    return "\n".join(lines).strip() + "\n"


def _table(lines: list[str], path: tuple[str, ...], table: Mapping[str, Any], array: bool) -> None:
    """Top-level mappings become [tables], lists of mappings [[arrays of tables]], anything
    else `key = value` (nested mappings as inline tables)."""
    if path:
        header = ".".join(_key(p) for p in path)
        lines += ["", f"[[{header}]]" if array else f"[{header}]"]
    for key, value in table.items():
        if not _sub_table(path, value) and not _table_array(value):
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in table.items():
        if _table_array(value):
            for item in value:
                _table(lines, (*path, key), item, array=True)
        elif _sub_table(path, value):
            _table(lines, (*path, key), value, array=False)


def _sub_table(path: tuple[str, ...], value: Any) -> bool:
    return not path and isinstance(value, Mapping)


def _table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # a TOML basic string: JSON's escapes are TOML's, and TOML escapes DEL too
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def _write_atomic(path: Path, text: str) -> None:
    """Whole or not at all: a replica starting meanwhile never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    os.chmod(temporary, 0o644)  # no secret in it; the replicas may run as another user
    os.replace(temporary, path)
