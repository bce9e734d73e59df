"""A trader at a terminal with nothing but the `isthmus` command and a fresh key: keystores,
the devnet faucet, the `isthmus wallet` commands and signed orders, each run as a real process
against the session's devnet gateway (`isthmus up`: anvil, the contracts, the gateway), and
each result checked on the chain itself and at the gateway.

The commands run in a directory of their own without the operator token, so signed orders are
authenticated by a Sign-In with Ethereum session of the keystore's key, as a trader's would be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer.main
from eth_account import Account
from isthmus_client.contracts import erc20, margin_wallet, web3_for
from isthmus_client.signing import digest
from web3 import Web3

from gateway.cli import app
from tests.client.devnet_gateway import ROOT, DevnetGateway

pytestmark = pytest.mark.chain

PASSWORD = "correct horse battery staple"
# not a key anyone uses here: what a trader must never type on the command line
RAW_KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
# credentials a developer's shell may hold: the commands must not find them here
SCRUBBED = (
    "ISTHMUS_OPERATOR_TOKEN",
    "ISTHMUS_API_KEY_ID",
    "ISTHMUS_API_KEY_SECRET",
    "ISTHMUS_KEYSTORE",
    "ISTHMUS_KEYSTORE_PASSWORD",
)


@dataclass
class Terminal:
    """Runs `isthmus ...` as a trader's shell would: its own directory (no devnet token
    file there), its own nonce store, the gateway's URL and the keystore password set."""

    devnet: DevnetGateway
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        env.update(
            ISTHMUS_API_URL=self.devnet.url,
            ISTHMUS_KEYSTORE_PASSWORD=PASSWORD,
            ISTHMUS_CLIENT_HOME=str(self.home / "client"),
            PYTHONPATH=str(ROOT),
            COLUMNS="250",
        )
        env.update(extra)
        return env

    def run(
        self, *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args],
            cwd=self.home,
            env=dict(env) if env is not None else self.env(),
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        done = self.run(*args, stdin=stdin)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def new_key(self, name: str) -> tuple[Path, str]:
        """A fresh key in a keystore of its own: (its file, its address)."""
        path = self.home / f"{name}.json"
        made = self.json("keystore", "new", "--out", str(path))
        assert made["keystore"] == str(path)
        return path, made["address"]

    def faucet(self, address: str, *amounts: str) -> Any:
        deployment = str(self.devnet.state / "deployment.json")
        return self.json("devnet", "faucet", address, "--deployment", deployment, *amounts)


@dataclass
class Owner:
    keystore: Path
    address: str
    wallet: str


@pytest.fixture
def terminal(devnet: DevnetGateway, tmp_path: Path) -> Terminal:
    return Terminal(devnet, tmp_path)


@pytest.fixture
def owner(terminal: Terminal) -> Owner:
    """A funded key of its own with a wallet holding 1,000 USDC and 2 WETH."""
    keystore, address = terminal.new_key("owner")
    terminal.faucet(address)
    wallet = terminal.json("wallet", "create", "--keystore", str(keystore))["wallet"]
    for symbol, amount in (("USDC", "1000"), ("WETH", "2")):
        terminal.ok("wallet", "deposit", symbol, amount, "--keystore", str(keystore))
    return Owner(keystore, address, wallet)


def rpc(devnet: DevnetGateway) -> Web3:
    return web3_for(devnet.chain()["rpc_url"])


def balance(devnet: DevnetGateway, symbol: str, holder: str) -> int:
    token = devnet.chain()["tokens"][symbol]["address"]
    return int(erc20(rpc(devnet), token).functions.balanceOf(holder).call())


def operator_get(devnet: DevnetGateway, path: str) -> Any:
    answer = httpx.get(
        f"{devnet.url}{path}",
        headers={"Authorization": f"Bearer {devnet.operator_token}"},
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json()


def buy_price(devnet: DevnetGateway) -> str:
    """A bid well inside the price band and below the book: it rests, nothing fills it."""
    mid = Decimal(operator_get(devnet, "/v1/book/WETH/USDC")["mid"])
    return str((mid * Decimal("0.95")).quantize(Decimal(1)))


# --------------------------------------------------------------------------- custody


def test_a_fresh_key_creates_funds_shows_and_withdraws(terminal: Terminal) -> None:
    gateway = terminal.devnet
    keystore, address = terminal.new_key("trader")
    stored = json.loads(keystore.read_text())
    assert "crypto" in stored and stored["address"].lower() == address[2:].lower()
    assert (keystore.stat().st_mode & 0o777) == 0o600

    funded = terminal.faucet(address)
    assert funded["address"] == address and funded["usdc"] == "100000"
    assert balance(gateway, "USDC", address) == 100_000 * 10**6

    created = terminal.run("wallet", "create", "--keystore", str(keystore))
    assert created.returncode == 0, created.stdout + created.stderr
    assert "confirmed in block" in created.stdout  # the receipt's progress
    wallet = next(w for w in created.stdout.split() if w.startswith("0x") and len(w) == 42)
    assert margin_wallet(rpc(gateway), wallet).functions.owner().call() == address
    again = terminal.json("wallet", "create", "--keystore", str(keystore))
    assert again == {"wallet": wallet, "owner": address, "created": False}

    seeded = {s: balance(gateway, s, wallet) for s in ("USDC", "WETH")}  # the factory's seed
    deposited = terminal.json("wallet", "deposit", "USDC", "1000", "--keystore", str(keystore))
    assert deposited["wallet"] == wallet and deposited["tx_hash"].startswith("0x")
    terminal.ok("wallet", "deposit", "WETH", "2.5", "--keystore", str(keystore))
    assert balance(gateway, "USDC", wallet) == seeded["USDC"] + 1_000 * 10**6
    assert balance(gateway, "WETH", wallet) == seeded["WETH"] + 25 * 10**17

    shown = terminal.json("wallet", "show", "--keystore", str(keystore))
    usdc = Decimal(seeded["USDC"] + 1_000 * 10**6).scaleb(-6)
    assert shown["wallet"] == wallet and shown["owner"] == address
    assert Decimal(shown["balances"]["USDC"]) == usdc
    assert Decimal(shown["withdrawable"]["USDC"]) == usdc  # no options: all of it is free
    assert shown["margin"]["ok"] is True and shown["positions"] == []
    assert shown["min_nonce"] == 0
    table = terminal.ok("wallet", "show", "--keystore", str(keystore))
    assert wallet in table and "free to withdraw" in table and "min nonce: 0" in table

    owner_usdc = balance(gateway, "USDC", address)
    withdrawn = terminal.json("wallet", "withdraw", "USDC", "400", "--keystore", str(keystore))
    assert Decimal(withdrawn["balance"]) == usdc - 400
    assert balance(gateway, "USDC", address) == owner_usdc + 400 * 10**6

    before = (balance(gateway, "USDC", wallet), balance(gateway, "USDC", address))
    too_much = terminal.run("wallet", "withdraw", "USDC", "5000", "--keystore", str(keystore))
    assert too_much.returncode == 1
    assert "cannot withdraw 5000 USDC" in too_much.stdout
    assert f"at most {usdc - 400} USDC is free" in too_much.stdout
    assert (balance(gateway, "USDC", wallet), balance(gateway, "USDC", address)) == before

    unknown = terminal.run("wallet", "deposit", "DOGE", "1", "--keystore", str(keystore))
    assert unknown.returncode == 1 and "no token 'DOGE'" in unknown.stdout


# --------------------------------------------------------------------------- limits and keys


def test_limits_change_and_show(terminal: Terminal, owner: Owner) -> None:
    keystore = str(owner.keystore)
    initial = terminal.json("wallet", "limits", "--keystore", keystore)
    assert initial["max_notional"] is None and initial["restrict_instruments"] is False
    assert initial["paused"] is False and initial["transactions"] == []

    changed = terminal.json(
        "wallet",
        "limits",
        "--keystore",
        keystore,
        "--max-notional",
        "5000",
        "--restrict",
        "--allow",
        "WETH/USDC",
        "--allow",
        "WETH-20270326-3000-P",
        "--pause",
    )
    assert len(changed["transactions"]) == 5
    assert changed["max_notional"] == "5000" and changed["restrict_instruments"] is True
    assert changed["paused"] is True
    assert sorted(changed["allowed_instruments"]) == ["WETH-20270326-3000-P", "WETH/USDC"]
    on_chain = margin_wallet(rpc(terminal.devnet), owner.wallet).functions
    assert on_chain.paused().call() is True
    assert on_chain.max_notional().call() == 5_000 * 10**6

    shown = terminal.ok("wallet", "limits", "--keystore", keystore)
    assert "paused" in shown and "5000 USDC" in shown and "allow-list: on" in shown

    undone = terminal.json(
        "wallet",
        "limits",
        "--keystore",
        keystore,
        "--max-notional",
        "none",
        "--no-restrict",
        "--disallow",
        "WETH/USDC",
        "--unpause",
    )
    assert undone["max_notional"] is None and undone["restrict_instruments"] is False
    assert undone["paused"] is False
    assert undone["allowed_instruments"] == ["WETH-20270326-3000-P"]
    assert terminal.json("wallet", "show", "--keystore", keystore)["limits"] == {
        "paused": False,
        "max_notional": None,
        "restrict_instruments": False,
    }

    perpetual = terminal.run("wallet", "limits", "--keystore", keystore, "--allow", "WETH-PERP")
    assert perpetual.returncode == 1 and "does not trade on chain" in perpetual.stdout


def test_a_trading_key_signs_orders_within_its_scope_until_revoked(
    terminal: Terminal, owner: Owner
) -> None:
    gateway = terminal.devnet
    key_file, key = terminal.new_key("trading-key")
    added = terminal.json(
        "wallet",
        "key",
        "add",
        key,
        "--keystore",
        str(owner.keystore),
        "--expires",
        "7d",
        "--max-notional",
        "1000",
        "--instrument",
        "WETH/USDC",
    )
    assert added["active"] is True and added["all_instruments"] is False
    assert added["max_notional"] == "1000" and added["instruments"] == ["WETH/USDC"]
    shown = terminal.ok("wallet", "key", "show", key, "--keystore", str(owner.keystore))
    assert "active" in shown and "1000 USDC" in shown

    price = buy_price(gateway)
    signed = terminal.json(
        "orders",
        "submit",
        owner.wallet,
        "WETH/USDC",
        "buy",
        "0.1",
        "--price",
        price,
        "--sign",
        "--keystore",
        str(key_file),
        "--wallet",
        owner.wallet,
    )
    assert signed["status"] == "accepted" and signed["signed"] is not None
    assert operator_get(gateway, f"/v1/orders/{signed['id']}")["signed"] == signed["signed"]

    over = terminal.run(
        "orders",
        "submit",
        owner.wallet,
        "WETH/USDC",
        "buy",
        "1",
        "--price",
        price,
        "--sign",
        "--keystore",
        str(key_file),
    )
    assert over.returncode == 1 and "key_max_notional" in over.stdout

    revoked = terminal.json("wallet", "key", "revoke", key, "--keystore", str(owner.keystore))
    assert revoked["active"] is False and revoked["expires_at"] is None
    after = terminal.run(
        "orders",
        "submit",
        owner.wallet,
        "WETH/USDC",
        "buy",
        "0.1",
        "--price",
        price,
        "--sign",
        "--keystore",
        str(key_file),
    )
    assert after.returncode == 1  # the gateway no longer lets the key act for the wallet


# --------------------------------------------------------------------------- signed orders


def submit_signed(terminal: Terminal, owner: Owner, price: str) -> dict[str, Any]:
    order: dict[str, Any] = terminal.json(
        "orders",
        "submit",
        owner.wallet,
        "WETH/USDC",
        "buy",
        "0.1",
        "--price",
        price,
        "--sign",
        "--keystore",
        str(owner.keystore),
    )
    return order


def test_signed_orders_are_cancelled_on_chain_by_id_and_below_a_nonce(
    terminal: Terminal, owner: Owner
) -> None:
    gateway = terminal.devnet
    wallet = margin_wallet(rpc(gateway), owner.wallet).functions
    price = buy_price(gateway)

    first = submit_signed(terminal, owner, price)
    assert first["status"] == "accepted" and first["account"] == owner.wallet
    assert first["signed"]["signature"].startswith("0x") and int(first["signed"]["nonce"]) >= 1

    # by its id: the digest rebuilt from the order and its signed nonce and deadline
    cancelled = terminal.json("wallet", "cancel", first["id"], "--keystore", str(owner.keystore))
    typed = httpx.post(
        f"{gateway.url}/v1/orders/typed-data",
        json={
            "order": {
                k: first[k]
                for k in ("account", "client_order_id", "instrument", "side", "quantity", "price")
            },
            "nonce": first["signed"]["nonce"],
            "deadline": first["signed"]["deadline"],
        },
        headers={"Authorization": f"Bearer {gateway.operator_token}"},
        timeout=30,
    ).json()
    assert cancelled["digest"] == "0x" + digest(typed).hex()
    assert wallet.is_cancelled(bytes.fromhex(cancelled["digest"][2:])).call() is True
    assert cancelled["cancelled_at_gateway"] == [first["id"]]
    assert operator_get(gateway, f"/v1/orders/{first['id']}")["status"] == "cancelled"

    # everything below a nonce
    second, third = submit_signed(terminal, owner, price), submit_signed(terminal, owner, price)
    nonces = [int(o["signed"]["nonce"]) for o in (first, second, third)]
    assert nonces == sorted(set(nonces))  # handed out in order, never twice
    below = nonces[-1] + 1
    done = terminal.run(
        "wallet", "cancel", "--below", str(below), "--keystore", str(owner.keystore)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"cancelled every order below nonce {below} on chain" in done.stdout
    assert wallet.min_nonce().call() == below
    for order in (second, third):
        assert operator_get(gateway, f"/v1/orders/{order['id']}")["status"] == "cancelled"
    assert terminal.json("wallet", "show", "--keystore", str(owner.keystore))["min_nonce"] == below

    fourth = submit_signed(terminal, owner, price)  # never a nonce the wallet cancelled
    assert int(fourth["signed"]["nonce"]) >= below and fourth["status"] == "accepted"

    nothing_named = terminal.run("wallet", "cancel", "--keystore", str(owner.keystore))
    assert nothing_named.returncode == 2  # one of ORDER_ID, --digest, --below


def test_unsigned_submission_is_unchanged_and_sign_needs_a_limit_price(
    terminal: Terminal, owner: Owner
) -> None:
    operator = terminal.env(ISTHMUS_OPERATOR_TOKEN=terminal.devnet.operator_token)
    price = buy_price(terminal.devnet)
    plain = terminal.run(
        "orders", "submit", owner.wallet, "WETH/USDC", "buy", "0.1", "--price", price, "--json"
    )
    assert plain.returncode == 1 and "credentials are required" in plain.stdout  # no token
    plain = terminal.run(
        "orders",
        "submit",
        owner.wallet,
        "WETH/USDC",
        "buy",
        "0.1",
        "--price",
        price,
        "--json",
        env=operator,
    )
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert json.loads(plain.stdout)["signed"] is None

    market = terminal.run(
        "orders",
        "submit",
        owner.wallet,
        "WETH/USDC",
        "buy",
        "0.1",
        "--type",
        "market",
        "--sign",
        "--keystore",
        str(owner.keystore),
    )
    assert market.returncode == 2 and "a signed order is a limit order" in market.stdout


# --------------------------------------------------------------------------- the escape hatch


def test_exit_withdraws_everything_free_without_the_operator(
    terminal: Terminal, owner: Owner
) -> None:
    gateway = terminal.devnet
    early = terminal.run(
        "wallet",
        "exit",
        "--keystore",
        str(owner.keystore),
        "--underlying",
        "WETH",
        "--expiry",
        "2027-03-26",
    )
    assert early.returncode == 1
    assert "expiring 2027-03-26T08:00:00Z cannot settle before it expires" in early.stdout

    held = {s: balance(gateway, s, owner.wallet) for s in ("USDC", "WETH")}
    owned = {s: balance(gateway, s, owner.address) for s in ("USDC", "WETH")}
    left = terminal.json("wallet", "exit", "--keystore", str(owner.keystore))
    assert left["settled"] == [] and left["open_positions"] == 0
    assert left["remaining"] == {"USDC": "0", "WETH": "0"}
    for symbol, decimals in (("USDC", 6), ("WETH", 18)):
        assert Decimal(left["withdrawn"][symbol]) == Decimal(held[symbol]).scaleb(-decimals)
        assert balance(gateway, symbol, owner.wallet) == 0
        assert balance(gateway, symbol, owner.address) == owned[symbol] + held[symbol]


# --------------------------------------------------------------------------- keys stay secret


def test_keystore_import_reads_the_key_from_stdin_never_from_arguments(
    terminal: Terminal,
) -> None:
    target = terminal.home / "imported.json"
    refused = terminal.run("keystore", "import", "--out", str(target), RAW_KEY)
    assert refused.returncode == 2 and not target.exists()

    imported = terminal.run("keystore", "import", "--out", str(target), "--json", stdin=RAW_KEY)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    expected = Account.from_key(RAW_KEY).address
    assert json.loads(imported.stdout)["address"] == expected
    assert RAW_KEY[2:] not in target.read_text() and RAW_KEY[2:] not in imported.stdout
    assert Account.decrypt(json.loads(target.read_text()), PASSWORD).hex() in RAW_KEY

    again = terminal.run("keystore", "import", "--out", str(target), stdin=RAW_KEY)
    assert again.returncode == 2 and "exists already" in again.stdout
    garbage = terminal.run("keystore", "import", "--out", str(terminal.home / "x.json"), stdin="x")
    assert garbage.returncode == 1 and not (terminal.home / "x.json").exists()


def test_no_command_takes_a_raw_key_and_passwords_come_from_env_or_a_terminal(
    terminal: Terminal,
) -> None:
    def walk(command: Any, path: str) -> list[tuple[str, str]]:
        found = [(path, p.name or "") for p in command.params]
        for name, sub in getattr(command, "commands", {}).items():
            found += walk(sub, f"{path} {name}")
        return found

    params = walk(typer.main.get_command(app), "isthmus")
    assert any(path == "isthmus wallet key add" for path, _ in params)
    for path, name in params:
        assert not any(word in name for word in ("private", "secret", "mnemonic", "password"))
        assert name != "key" or path.startswith("isthmus wallet key")  # an address, checked

    keystore, _ = terminal.new_key("quiet")
    as_address = terminal.run(
        "wallet", "key", "add", RAW_KEY, "--expires", "1d", "--keystore", str(keystore)
    )
    assert as_address.returncode == 2 and "is not an address" in as_address.stdout + (
        as_address.stderr
    )

    no_password = {k: v for k, v in terminal.env().items() if k != "ISTHMUS_KEYSTORE_PASSWORD"}
    asked = terminal.run("wallet", "show", "--keystore", str(keystore), env=no_password)
    assert asked.returncode == 2 and "ISTHMUS_KEYSTORE_PASSWORD" in asked.stdout
    wrong = terminal.env(ISTHMUS_KEYSTORE_PASSWORD="not it")
    refused = terminal.run("wallet", "show", "--keystore", str(keystore), env=wrong)
    assert refused.returncode == 1 and "wrong password" in refused.stdout
    no_wallet = terminal.run("wallet", "show", "--keystore", str(keystore))
    assert no_wallet.returncode == 1 and "isthmus wallet create" in no_wallet.stdout
