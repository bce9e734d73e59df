"""`isthmus audit verify` on a chain with real settled fills (spot and a strategy): it proves
the chain side alone, matches the store, and names what was tampered with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from gateway.cli import app
from tests.audit.conftest import SettledWorld

pytestmark = pytest.mark.chain
FILLS = 8  # 2 + 2 spot fills, 4 strategy legs


def run_verify(world: SettledWorld, *extra: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(
        app,
        [
            "audit",
            "verify",
            "--rpc",
            world.rpc_url,
            "--settlement",
            world.d.settlement,
            "--json",
            *extra,
        ],
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)


def tamper(url: str, statement: str, **params: Any) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        changed = connection.execute(text(statement), params).rowcount
    engine.dispose()
    assert changed == 1


def fill_ids(url: str, order_id: str) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as connection:
        ids = [
            r.id
            for r in connection.execute(
                text("SELECT id FROM fills WHERE order_id = :o ORDER BY id"), {"o": order_id}
            )
        ]
    engine.dispose()
    return ids


def problems_of(report: dict[str, Any]) -> list[str]:
    return [p for f in report["fills"] for p in f["problems"]] + report["problems"]


def test_every_settled_fill_is_proven_from_the_chain_and_matches_the_store(
    settled_world: SettledWorld, tmp_path: Path
) -> None:
    url = settled_world.copy_database(tmp_path)
    code, report = run_verify(settled_world, "--db", url)
    assert code == 0, problems_of(report)
    assert report["ok"] and report["problems"] == []
    assert report["counts"]["batches"] == 3 and report["counts"]["fills"] == FILLS
    assert report["store"]["settled_fills"] == FILLS and report["store"]["matched"] == FILLS
    assert report["store"]["audit_log"]["ok"] and report["store"]["audit_log"]["records"] > 0
    # each on-chain fill is exactly one stored fill
    claimed = [f["gateway_fills"] for f in report["fills"]]
    assert all(len(c) == 1 for c in claimed)
    assert len({c[0] for c in claimed}) == FILLS
    kinds = sorted(f["kind"] for f in report["fills"])
    assert kinds == ["order"] * 4 + ["strategy_leg"] * 4
    # the resting ask filled across two batches (1 then 0.5 WETH) under one digest
    ask = [
        f
        for f in report["fills"]
        if f["wallet"] == settled_world.seller_wallet and f["kind"] == "order"
    ]
    assert len({f["digest"] for f in ask}) == 1 and len({f["batch_id"] for f in ask}) == 2
    assert sorted(int(f["amount"]) for f in ask) == [5 * 10**17, 10**18]


def test_without_a_database_the_chain_side_alone_is_proven(settled_world: SettledWorld) -> None:
    code, report = run_verify(settled_world)
    assert code == 0 and report["ok"] and report["store"] is None
    assert report["counts"]["fills"] == FILLS
    assert all(f["gateway_fills"] == [] and f["ok"] for f in report["fills"])
    # from the block of the last batch on: the strategy's legs only, on both sides
    last = max(f["block_number"] for f in report["fills"])
    code, report = run_verify(settled_world, "--from-block", str(last))
    assert code == 0 and {f["kind"] for f in report["fills"]} == {"strategy_leg"}
    assert report["counts"] == {**report["counts"], "batches": 1, "fills": 4}


def test_the_store_is_checked_over_the_same_blocks(
    settled_world: SettledWorld, tmp_path: Path
) -> None:
    url = settled_world.copy_database(tmp_path)
    _, everything = run_verify(settled_world, "--db", url)
    last = max(f["block_number"] for f in everything["fills"])
    code, report = run_verify(settled_world, "--db", url, "--from-block", str(last))
    assert code == 0, problems_of(report)
    assert report["store"]["settled_fills"] == 4 == report["store"]["matched"]


def test_an_edited_audit_record_is_named(settled_world: SettledWorld, tmp_path: Path) -> None:
    url = settled_world.copy_database(tmp_path)
    tamper(url, "UPDATE audit_log SET payload = payload || ' ' WHERE seq = 3")
    code, report = run_verify(settled_world, "--db", url)
    assert code == 1 and not report["ok"]
    assert not report["store"]["audit_log"]["ok"]
    assert any(p.startswith("audit log: record 3:") for p in report["problems"])
    assert all(f["ok"] for f in report["fills"])  # the fills themselves still agree


@pytest.mark.parametrize(
    ("column", "value", "says"),
    [("price", "3100", "price 3100"), ("quantity", "0.9", "quantity 0.9")],
)
def test_a_fill_altered_in_the_database_is_named(
    settled_world: SettledWorld, tmp_path: Path, column: str, value: str, says: str
) -> None:
    url = settled_world.copy_database(tmp_path)
    [fill_id] = fill_ids(url, settled_world.orders["bid"].id)
    tamper(url, f"UPDATE fills SET {column} = :v WHERE id = :id", v=value, id=fill_id)
    code, report = run_verify(settled_world, "--db", url)
    assert code == 1 and not report["ok"]
    [bad] = [f for f in report["fills"] if not f["ok"]]
    assert bad["gateway_fills"] == [fill_id]
    [problem] = bad["problems"]
    assert problem.startswith(f"fill {fill_id} (") and says in problem
    assert report["store"]["matched"] == FILLS - 1


def test_a_strategy_leg_altered_in_the_database_is_named(
    settled_world: SettledWorld, tmp_path: Path
) -> None:
    url = settled_world.copy_database(tmp_path)
    leg = fill_ids(url, settled_world.orders["offer"].id)[0]
    tamper(url, "UPDATE fills SET price = price + 1 WHERE id = :id", id=leg)
    code, report = run_verify(settled_world, "--db", url)
    assert code == 1
    [bad] = [f for f in report["fills"] if not f["ok"]]
    assert bad["kind"] == "strategy_leg" and bad["gateway_fills"] == [leg]


def test_a_fill_deleted_from_the_database_leaves_an_unknown_on_chain_fill(
    settled_world: SettledWorld, tmp_path: Path
) -> None:
    url = settled_world.copy_database(tmp_path)
    [fill_id] = fill_ids(url, settled_world.orders["bid2"].id)
    tamper(url, "DELETE FROM fills WHERE id = :id", id=fill_id)
    code, report = run_verify(settled_world, "--db", url)
    assert code == 1
    [bad] = [f for f in report["fills"] if not f["ok"]]
    assert bad["problems"] == ["not known to the gateway's store"]
    assert bad["wallet"] == settled_world.buyer_wallet and bad["amount"] == str(5 * 10**17)


def test_a_fill_marked_settled_in_a_made_up_transaction_is_detected(
    settled_world: SettledWorld, tmp_path: Path
) -> None:
    url = settled_world.copy_database(tmp_path)
    [fill_id] = fill_ids(url, settled_world.orders["bid"].id)
    made_up = "0x" + "ab" * 32
    tamper(url, "UPDATE fills SET tx_hash = :tx WHERE id = :id", tx=made_up, id=fill_id)
    code, report = run_verify(settled_world, "--db", url)
    assert code == 1
    assert [p for p in report["problems"] if p.startswith(f"fill {fill_id} ({made_up}")]
    # and the real on-chain fill it stood for is now unknown
    [bad] = [f for f in report["fills"] if not f["ok"]]
    assert bad["problems"] == ["not known to the gateway's store"]


def test_the_readable_report_names_the_mismatch(
    settled_world: SettledWorld, tmp_path: Path
) -> None:
    url = settled_world.copy_database(tmp_path)
    [fill_id] = fill_ids(url, settled_world.orders["bid"].id)
    tamper(url, "UPDATE fills SET price = '2999' WHERE id = :id", id=fill_id)
    result = CliRunner().invoke(
        app,
        [
            "audit",
            "verify",
            "--rpc",
            settled_world.rpc_url,
            "--settlement",
            settled_world.d.settlement,
            "--db",
            url,
        ],
    )
    assert result.exit_code == 1
    assert fill_id in result.stdout and "mismatch" in result.stdout


def test_an_unreachable_chain_or_a_bad_address_is_a_usage_error(
    settled_world: SettledWorld,
) -> None:
    runner = CliRunner()
    down = runner.invoke(
        app,
        [
            "audit",
            "verify",
            "--rpc",
            "http://127.0.0.1:9",
            "--settlement",
            settled_world.d.settlement,
        ],
    )
    assert down.exit_code == 2 and "cannot reach the chain" in down.stdout
    bad = runner.invoke(
        app, ["audit", "verify", "--rpc", settled_world.rpc_url, "--settlement", "0x1234"]
    )
    assert bad.exit_code == 2 and "not an address" in bad.stdout
