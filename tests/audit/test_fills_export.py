"""The fills export for performance attribution: CSV keeps every decimal exactly, Parquet
reads back with pyarrow as the same rows, filters and the caller's accounts narrow it."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from gateway.api.app import create_app
from gateway.cli import app
from gateway.store.fills_export import COLUMNS, FillsFilter, read_pages
from tests.audit.conftest import OPERATOR_TOKEN, SettledWorld

pytestmark = pytest.mark.chain


def stored_fills(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = {r.id: r for r in connection.execute(text("SELECT * FROM fills"))}
    engine.dispose()
    return rows


def export(url: str, fmt: str, out: Path) -> None:
    result = CliRunner().invoke(
        app, ["fills", "export", "--format", fmt, "--out", str(out), "--db", url]
    )
    assert result.exit_code == 0, result.output


def csv_rows(data: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(data))
    assert tuple(reader.fieldnames or ()) == COLUMNS
    return list(reader)


def test_csv_round_trips_exact_decimals_and_parquet_reads_back_the_same_rows(
    settled_world: SettledWorld, tmp_path: Path
) -> None:
    url = settled_world.copy_database(tmp_path)
    stored = stored_fills(url)
    export(url, "csv", tmp_path / "fills.csv")
    rows = csv_rows((tmp_path / "fills.csv").read_text())
    assert sorted(r["fill_id"] for r in rows) == sorted(stored)
    for row in rows:
        fill = stored[row["fill_id"]]
        for column in ("quantity", "price", "fee"):
            assert Decimal(row[column]) == Decimal(fill._mapping[column])
            assert "E" not in row[column]  # plain notation, every digit
        assert row["account"] == fill.account and row["settlement"] == fill.settlement
        assert row["tx_hash"] == (fill.tx_hash or "")
        assert row["log_index"] == ("" if fill.log_index is None else str(fill.log_index))
    bid = [r for r in rows if r["order_id"] == settled_world.orders["bid"].id]
    assert [(r["quantity"], r["price"], r["client_order_id"]) for r in bid] == [
        ("1", "3000.25", "bid")
    ]
    assert bid[0]["fee_asset"] == "USDC" and bid[0]["settlement"] == "settled"
    # the oldest first
    assert [r["executed_at"] for r in rows] == sorted(r["executed_at"] for r in rows)

    export(url, "parquet", tmp_path / "fills.parquet")
    table = pq.read_table(tmp_path / "fills.parquet")
    assert tuple(table.column_names) == COLUMNS
    back = table.to_pylist()
    assert len(back) == len(rows)
    for row, read in zip(rows, back, strict=True):
        for column in COLUMNS:
            value = read[column]
            if isinstance(value, datetime):
                assert value == datetime.fromisoformat(row[column])
            else:
                assert ("" if value is None else str(value)) == row[column], column


def test_the_api_streams_filtered_exports(settled_world: SettledWorld, tmp_path: Path) -> None:
    url = settled_world.copy_database(tmp_path)
    buyer = settled_world.buyer_wallet

    async def scenario() -> None:
        gateway = create_app(runtime=settled_world.runtime(url, chain=False))
        async with (
            gateway.router.lifespan_context(gateway),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=gateway),
                base_url="http://gw",
                headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
            ) as http,
        ):
            everything = await http.get("/v1/fills/export")
            assert everything.status_code == 200
            assert everything.headers["content-type"].startswith("text/csv")
            rows = csv_rows(everything.text)
            mine = csv_rows((await http.get("/v1/fills/export", params={"account": buyer})).text)
            assert mine and {r["account"] for r in mine} == {buyer}
            assert len(mine) == sum(1 for r in rows if r["account"] == buyer)
            start, end = rows[2]["executed_at"], rows[-1]["executed_at"]
            window = csv_rows(
                (await http.get("/v1/fills/export", params={"from": start, "to": end})).text
            )
            assert window == [r for r in rows if start <= r["executed_at"] < end]
            parquet = await http.get("/v1/fills/export", params={"format": "parquet"})
            assert parquet.status_code == 200
            table = pq.read_table(io.BytesIO(parquet.content))
            assert table.column("fill_id").to_pylist() == [r["fill_id"] for r in rows]
            for bad_params in ({"format": "xlsx"}, {"from": "2026-01-01T00:00:00"}):
                bad = await http.get("/v1/fills/export", params=bad_params)
                assert bad.status_code == 422  # a time needs its zone
                assert bad.json()["error"]["code"] == "validation_error"

    asyncio.run(scenario())


def test_a_caller_limited_to_some_accounts_gets_only_theirs(
    settled_world: SettledWorld, tmp_path: Path
) -> None:
    engine = create_engine(settled_world.copy_database(tmp_path))
    seller = settled_world.seller_wallet
    rows = [
        row
        for page in read_pages(engine, FillsFilter(accounts=frozenset({seller.lower()})), str, 3)
        for row in page
    ]
    engine.dispose()
    assert len(rows) == 4 and {r["account"] for r in rows} == {seller}  # 2 spot + 2 legs
    assert len({r["fill_id"] for r in rows}) == 4  # pages of 3 neither repeat nor skip
