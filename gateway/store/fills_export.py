"""Fills for performance attribution: every fill with its order's identifiers and where it
settled, read in pages (keyset on execution time and id) and written as CSV or Parquet.

Decimals stay exact: CSV cells are the plain decimal strings, Parquet columns are strings
(a fixed decimal128 scale would round quantities finer than it); block and log index are
integers and times UTC timestamps (ISO 8601 in CSV).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Engine, and_, func, or_, select

from gateway.store.tables import FillRow, OrderRow

FILLS = FillRow.__table__  # type: ignore[attr-defined]
ORDERS = OrderRow.__table__  # type: ignore[attr-defined]
ExportFormat = Literal["csv", "parquet"]
PAGE: Final = 2_000

COLUMNS: Final = (
    "fill_id",
    "order_id",
    "client_order_id",
    "account",
    "instrument",
    "side",
    "quantity",
    "price",
    "fee",
    "fee_asset",
    "venue",
    "liquidity",
    "trade_id",
    "settlement",
    "batch_id",
    "tx_hash",
    "block_number",
    "log_index",
    "executed_at",
    "order_created_at",
)
_INTEGERS: Final = frozenset({"block_number", "log_index"})
_TIMES: Final = frozenset({"executed_at", "order_created_at"})
SCHEMA: Final = pa.schema(
    [
        pa.field(
            name,
            pa.int64()
            if name in _INTEGERS
            else pa.timestamp("us", tz="UTC")
            if name in _TIMES
            else pa.string(),
            nullable=name not in ("fill_id", "order_id", "account", "instrument", "side"),
        )
        for name in COLUMNS
    ]
)


@dataclass(frozen=True, slots=True)
class FillsFilter:
    """Which fills: executed in [start, end), of `account`, within `accounts` (None: all)."""

    start: datetime | None = None
    end: datetime | None = None
    account: str | None = None
    accounts: frozenset[str] | None = None


def _plain(value: Decimal | None) -> str | None:
    # format "f" never switches to exponent notation, and keeps every digit
    return None if value is None else format(value, "f")


def read_pages(
    engine: Engine,
    where: FillsFilter,
    fee_asset: Callable[[str], str | None],
    page: int = PAGE,
) -> Iterator[list[dict[str, Any]]]:
    """The fills, oldest first, in pages of at most `page` rows (one short read each)."""
    conditions = []
    if where.start is not None:
        conditions.append(FILLS.c.executed_at >= where.start)
    if where.end is not None:
        conditions.append(FILLS.c.executed_at < where.end)
    if where.account is not None:
        conditions.append(func.lower(FILLS.c.account) == where.account.lower())
    if where.accounts is not None:
        conditions.append(
            func.lower(FILLS.c.account).in_(sorted(a.lower() for a in where.accounts))
        )
    after: tuple[datetime, str] | None = None
    while True:
        statement = (
            select(FILLS, ORDERS.c.client_order_id, ORDERS.c.created_at.label("order_created_at"))
            .select_from(FILLS.join(ORDERS, FILLS.c.order_id == ORDERS.c.id))
            .where(*conditions)
            .order_by(FILLS.c.executed_at, FILLS.c.id)
            .limit(page)
        )
        if after is not None:
            statement = statement.where(
                or_(
                    FILLS.c.executed_at > after[0],
                    and_(FILLS.c.executed_at == after[0], FILLS.c.id > after[1]),
                )
            )
        with engine.connect() as connection:
            rows = connection.execute(statement).all()
        if not rows:
            return
        yield [
            {
                "fill_id": r.id,
                "order_id": r.order_id,
                "client_order_id": r.client_order_id,
                "account": r.account,
                "instrument": r.instrument,
                "side": r.side,
                "quantity": _plain(r.quantity),
                "price": _plain(r.price),
                "fee": _plain(r.fee),
                "fee_asset": fee_asset(r.instrument),
                "venue": r.venue,
                "liquidity": None,  # the store does not record maker/taker per fill
                "trade_id": r.trade_id,
                "settlement": r.settlement,
                "batch_id": r.batch_id,
                "tx_hash": r.tx_hash,
                "block_number": r.block_number,
                "log_index": r.log_index,
                "executed_at": r.executed_at,
                "order_created_at": r.order_created_at,
            }
            for r in rows
        ]
        if len(rows) < page:
            return
        after = (rows[-1].executed_at, rows[-1].id)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def csv_chunks(pages: Iterator[list[dict[str, Any]]]) -> Iterator[bytes]:
    """A header, then one chunk per page."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    yield buffer.getvalue().encode()
    for rows in pages:
        buffer.seek(0)
        buffer.truncate()
        for row in rows:
            writer.writerow([_cell(row[c]) for c in COLUMNS])
        yield buffer.getvalue().encode()


class _Sink:
    """A write-only stream for pyarrow that hands out what was written so far; `tell` counts
    every byte ever written, so the footer's offsets stay right."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def parquet_chunks(pages: Iterator[list[dict[str, Any]]]) -> Iterator[bytes]:
    """One row group per page; the bytes leave as each group is written."""
    sink = _Sink()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), SCHEMA)
    try:
        for rows in pages:
            writer.write_table(pa.Table.from_pylist(rows, schema=SCHEMA))
            yield sink.take()
    finally:
        writer.close()
    yield sink.take()


def export_chunks(fmt: ExportFormat, pages: Iterator[list[dict[str, Any]]]) -> Iterator[bytes]:
    return csv_chunks(pages) if fmt == "csv" else parquet_chunks(pages)
