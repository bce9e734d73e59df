"""The isthmus command: audit verification and the order commands against a live app."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import update
from typer.testing import CliRunner

from gateway import cli
from gateway.api.app import create_app
from gateway.cli import app
from gateway.config import Settings
from gateway.devnet import demo
from gateway.devnet.scenario import ScenarioOrders, ScenarioReport, WalletCheck
from gateway.store import audit_log
from gateway.store.audit_log import AUDIT_LOG, AuditEntry
from gateway.store.database import create_database_engine, migrate
from tests.operator_access import OPERATOR_TOKEN

runner = CliRunner()


def test_verify_log_passes_then_catches_tampering(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = create_database_engine(url)
    migrate(engine)
    from datetime import UTC, datetime

    with engine.begin() as connection:
        audit_log.append(
            connection,
            [AuditEntry("order.accepted", f"o{i}", {"i": i}) for i in range(4)],
            datetime.now(UTC),
        )
    ok = runner.invoke(app, ["audit", "verify-log", "--db", url])
    assert ok.exit_code == 0, ok.output
    assert "4 records" in ok.output
    with engine.begin() as connection:
        connection.execute(update(AUDIT_LOG).where(AUDIT_LOG.c.seq == 2).values(payload='{"i":99}'))
    engine.dispose()
    broken = runner.invoke(app, ["audit", "verify-log", "--db", url, "--json"])
    assert broken.exit_code == 1
    assert '"ok": false' in broken.output
    assert "record 2" in broken.output


def test_empty_database_verifies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    engine = create_database_engine(url)
    migrate(engine)
    engine.dispose()
    result = runner.invoke(app, ["audit", "verify-log", "--db", url])
    assert result.exit_code == 0 and "0 records" in result.output


# -- output that is not a terminal: whole values, and the same data as JSON ---------------

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
CONDOR = [
    {"instrument": "WETH-20270326-2800-P", "side": "buy", "ratio": 1},
    {"instrument": "WETH-20270326-3000-P", "side": "sell", "ratio": 1},
    {"instrument": "WETH-20270326-3200-C", "side": "sell", "ratio": 1},
    {"instrument": "WETH-20270326-3500-C", "side": "buy", "ratio": 1},
]
CONDOR_TEXT = " + ".join(f"{leg['side']} 1x {leg['instrument']}" for leg in CONDOR)
TX = "0x" + "5e" * 31 + "42"
WALLET = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"


class _Borrowed:
    """The app's test client in place of the command's own HTTP client (left open)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def __enter__(self) -> TestClient:
        return self.client

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The commands talk to an app in this process (CliRunner's stdout is no terminal)."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'api.db'}", operator_token=OPERATOR_TOKEN
    )
    monkeypatch.setenv("ISTHMUS_OPERATOR_TOKEN", OPERATOR_TOKEN)
    monkeypatch.delenv("ISTHMUS_API_KEY_ID", raising=False)
    with TestClient(create_app(settings)) as client:
        monkeypatch.setattr(cli, "_client", lambda: _Borrowed(client))
        yield client


def line_with(output: str, *values: str) -> str:
    """The one line that has every value: whole, and in one row of the table."""
    lines = [line for line in output.splitlines() if all(v in line for v in values)]
    assert len(lines) == 1, output
    return lines[0]


def test_order_tables_print_whole_values_and_json_when_not_a_terminal(
    gateway: TestClient,
) -> None:
    condor = runner.invoke(app, ["orders", "list"])  # an empty table first
    assert condor.exit_code == 0, condor.output
    strategy = gateway.post(
        "/v1/strategies",
        json={
            "account": ALICE,
            "client_order_id": "condor-with-a-long-client-order-id",
            "legs": CONDOR,
            "quantity": "12.34",
            "price": "-45.5",
        },
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
    ).json()
    submitted = runner.invoke(
        app, ["orders", "submit", ALICE, "WETH/USDC", "buy", "1.2345", "--price", "2999.99"]
    )
    assert submitted.exit_code == 0, submitted.output
    single = next(word for word in submitted.output.split() if word.startswith("ord_"))

    listed = runner.invoke(app, ["orders", "list"])
    assert listed.exit_code == 0, listed.output
    assert "…" not in listed.output
    line_with(listed.output, strategy["id"], ALICE, CONDOR_TEXT, "12.34", "-45.5")
    line_with(listed.output, single, ALICE, "WETH/USDC", "1.2345", "2999.99")
    page = json.loads(runner.invoke(app, ["orders", "list", "--json"]).output)
    assert [o["id"] for o in page["items"]] == [strategy["id"], single]

    shown = runner.invoke(app, ["orders", "show", strategy["id"]])
    assert shown.exit_code == 0 and "…" not in shown.output
    line_with(shown.output, strategy["id"], ALICE, CONDOR_TEXT)
    as_json = runner.invoke(app, ["orders", "show", strategy["id"], "--json"])
    assert json.loads(as_json.output)["legs"] == CONDOR

    amended = runner.invoke(app, ["orders", "amend", single, "--price", "2999.5", "--json"])
    assert amended.exit_code == 0, amended.output
    assert json.loads(amended.output)["price"] == "2999.5"
    cancelled = runner.invoke(app, ["orders", "cancel", single])
    assert cancelled.exit_code == 0 and "…" not in cancelled.output
    line_with(cancelled.output, single, ALICE, "cancelled")
    again = runner.invoke(app, ["orders", "cancel", strategy["id"], "--json"])
    assert json.loads(again.output)["status"] == "cancelled"

    kill = runner.invoke(app, ["risk", "kill", ALICE, "--json", "--reason", "test"])
    assert kill.exit_code == 0, kill.output
    assert json.loads(kill.output)["engaged"] is True


def test_the_audit_table_prints_whole_hashes_when_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = {
        "fills": [
            {
                "tx_hash": TX,
                "log_index": 7,
                "wallet": WALLET,
                "side": "buy",
                "amount": "123456789012345678901",
                "quote": "987654321098765432109",
                "gateway_fills": ["fil_01M956XYFT5F11900RP102EDXG"],
                "ok": True,
            }
        ]
    }
    for table in cli._audit_report_tables(report):
        cli.console.print(table)
    out = capsys.readouterr().out
    assert "…" not in out
    line_with(out, TX, WALLET, "123456789012345678901", "987654321098765432109")


def fake_report() -> ScenarioReport:
    fill = {
        "order_id": "ord_01M956XYFT5F11900RP102EDXG",
        "account": WALLET,
        "instrument": "WETH-20270326-3200-C",
        "side": "sell",
        "quantity": "1.25",
        "price": "123.456789",
        "venue": "internal",
        "tx_hash": TX,
        "log_index": 3,
        "settlement": "settled",
    }
    return ScenarioReport(
        orders=ScenarioOrders(condor_a={"id": "ord_01M956XYFT5F11900RP102EDXG"}),
        fills=[fill],
        tx_hashes={TX},
        wallets=[WalletCheck("carol", WALLET, {"WETH": 10**21}, {"WETH": 10**21})],
        audit={"ok": True, "counts": {"fills": 1, "fills_ok": 1}, "problems": []},
    )


def test_demo_prints_whole_values_and_json_when_not_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def play(console: Console, state_dir: Path) -> ScenarioReport:
        console.print("a step of the scenario")
        return fake_report()

    monkeypatch.setattr(demo, "play", play)
    shown = runner.invoke(app, ["demo"])
    assert shown.exit_code == 0, shown.output
    assert "…" not in shown.output
    line_with(shown.output, "condor_a", WALLET, "WETH-20270326-3200-C", "123.456789", TX)
    line_with(shown.output, "carol", "WETH", str(10**21))
    assert "demo ok" in shown.output

    as_json = runner.invoke(app, ["demo", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert "a step of the scenario" in as_json.stderr  # the steps stay off stdout
    report = json.loads(as_json.stdout)
    assert report["ok"] is True and report["transactions"] == [TX]
    assert report["fills"][0]["account"] == WALLET
    assert report["wallets"] == [
        {
            "trader": "carol",
            "wallet": WALLET,
            "asset": "WETH",
            "gateway": str(10**21),
            "chain": str(10**21),
            "ok": True,
        }
    ]


def test_a_new_devnet_chain_starts_with_a_new_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import _start_devnet_database

    database = tmp_path / "isthmus.db"
    database.write_bytes(b"previous chain's orders")
    Path(f"{database}-wal").write_bytes(b"its journal")
    Path(tmp_path / "isthmus.previous-devnet.db-shm").write_bytes(b"an older run's")
    _start_devnet_database(f"sqlite:///{database}")
    kept = tmp_path / "isthmus.previous-devnet.db"
    assert not database.exists() and not Path(f"{database}-wal").exists()
    assert kept.read_bytes() == b"previous chain's orders"
    assert Path(f"{kept}-wal").read_bytes() == b"its journal"
    assert not Path(f"{kept}-shm").exists()  # no stale journal beside the moved file
    assert "kept as" in capsys.readouterr().out
    _start_devnet_database(f"sqlite:///{database}")  # nothing there: nothing moves
    assert kept.read_bytes() == b"previous chain's orders"
