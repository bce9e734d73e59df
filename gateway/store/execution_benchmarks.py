"""Arrival prices of parent orders (`execution_benchmarks`), read back for TCA."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert, select

from gateway.domain.benchmarks import ArrivalPrice, ExecutionBenchmark
from gateway.domain.orders import Side
from gateway.store.tables import ExecutionBenchmarkRow

BENCHMARKS = ExecutionBenchmarkRow.__table__  # type: ignore[attr-defined]


def insert_benchmark(connection: Connection, benchmark: ExecutionBenchmark) -> None:
    arrival = benchmark.arrival
    legs = json.dumps([_leg_json(leg) for leg in benchmark.legs]) if benchmark.legs else None
    connection.execute(
        insert(BENCHMARKS).values(
            parent_id=benchmark.parent_id,
            parent_kind=benchmark.parent_kind,
            instrument=benchmark.instrument,
            side=benchmark.side.value,
            bid=arrival.bid,
            ask=arrival.ask,
            mid=arrival.mid,
            legs=legs,
            observed_at=arrival.observed_at,
        )
    )


def get_benchmark(connection: Connection, parent_id: str) -> ExecutionBenchmark | None:
    row = connection.execute(select(BENCHMARKS).where(BENCHMARKS.c.parent_id == parent_id)).first()
    if row is None:
        return None
    legs = tuple(_leg(item) for item in json.loads(row.legs)) if row.legs else ()
    return ExecutionBenchmark(
        row.parent_id,
        row.parent_kind,
        row.instrument,
        Side(row.side),
        ArrivalPrice(row.instrument, row.bid, row.ask, row.observed_at),
        legs,
    )


def _leg_json(leg: ArrivalPrice) -> dict[str, Any]:
    return {
        "instrument": leg.instrument,
        "bid": None if leg.bid is None else str(leg.bid),
        "ask": None if leg.ask is None else str(leg.ask),
        "observed_at": leg.observed_at.isoformat(),
    }


def _leg(item: dict[str, Any]) -> ArrivalPrice:
    return ArrivalPrice(
        item["instrument"],
        None if item["bid"] is None else Decimal(item["bid"]),
        None if item["ask"] is None else Decimal(item["ask"]),
        datetime.fromisoformat(item["observed_at"]),
    )
