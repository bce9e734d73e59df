"""A person at a terminal: the `isthmus orders` commands against a running gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.gateway_process import GatewayProcess
from tests.operator_access import OPERATOR_TOKEN

ACCOUNT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(f"sqlite:///{tmp_path / 'cli.db'}")
    process.start()
    yield process
    process.stop()


def isthmus(gateway: GatewayProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ISTHMUS_API_URL": gateway.url,
        "ISTHMUS_OPERATOR_TOKEN": OPERATOR_TOKEN,
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_submit_list_amend_cancel_from_the_terminal(gateway: GatewayProcess) -> None:
    submitted = isthmus(
        gateway,
        "orders",
        "submit",
        ACCOUNT,
        "WETH/USDC",
        "buy",
        "1.5",
        "--price",
        "3000",
        "--client-order-id",
        "t1",
    )
    assert submitted.returncode == 0, submitted.stderr
    assert "accepted" in submitted.stdout
    order_id = next(word for word in submitted.stdout.split() if word.startswith("ord_"))

    listed = isthmus(gateway, "orders", "list", "--account", ACCOUNT)
    assert order_id in listed.stdout and "3000" in listed.stdout

    amended = isthmus(gateway, "orders", "amend", order_id, "--price", "2999.5")
    assert amended.returncode == 0 and "2999.5" in amended.stdout

    cancelled = isthmus(gateway, "orders", "cancel", order_id)
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout

    again = isthmus(gateway, "orders", "cancel", order_id)
    assert again.returncode == 1
    assert "illegal_transition" in again.stdout

    bad = isthmus(
        gateway, "orders", "submit", ACCOUNT, "WETH/USDC", "buy", "1.5", "--price", "3000.001"
    )
    assert bad.returncode == 1 and "invalid_price_tick" in bad.stdout


def test_risk_commands_from_the_terminal(gateway: GatewayProcess) -> None:
    submitted = isthmus(
        gateway, "orders", "submit", ACCOUNT, "WETH/USDC", "buy", "1", "--price", "3000"
    )
    assert submitted.returncode == 0, submitted.stderr

    shown = isthmus(gateway, "risk", "show", ACCOUNT)
    assert shown.returncode == 0, shown.stderr
    assert "VaR and expected shortfall" in shown.stdout  # no positions yet: empty tables

    killed = isthmus(gateway, "risk", "kill", ACCOUNT, "--reason", "desk closed")
    assert killed.returncode == 0, killed.stderr
    assert "engaged" in killed.stdout and "1 working orders cancelled" in killed.stdout
    refused = isthmus(
        gateway, "orders", "submit", ACCOUNT, "WETH/USDC", "buy", "1", "--price", "3000"
    )
    assert refused.returncode == 1 and "kill_switch_engaged" in refused.stdout
    released = isthmus(gateway, "risk", "kill", ACCOUNT, "--release")
    assert released.returncode == 0 and "released" in released.stdout

    book = isthmus(gateway, "risk", "book", "--json")
    assert book.returncode == 0 and '"greeks"' in book.stdout
