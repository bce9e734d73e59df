"""Persisted execution algorithms (`algo_orders`): insert, update, load (SQLAlchemy Core).

The row holds the spec and the full `AlgoState` document as JSON text (decimals as strings,
never floats); `status` and `active` are copies for querying. Portable SQL only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from gateway.routing.algos import AlgoState
from gateway.store.tables import AlgoOrderRow

ALGOS = AlgoOrderRow.__table__  # type: ignore[attr-defined]


class AlgoWriteConflict(Exception):
    """The row to update does not exist."""


@dataclass(frozen=True, slots=True)
class StoredAlgo:
    state: AlgoState
    created_at: datetime
    updated_at: datetime

    @property
    def algo_id(self) -> str:
        return self.state.spec.algo_id


def _dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def _stored(r: Any) -> StoredAlgo:
    return StoredAlgo(AlgoState.from_json(json.loads(r.state)), r.created_at, r.updated_at)


def insert(connection: Connection, state: AlgoState, now: datetime) -> None:
    spec = state.spec
    connection.execute(
        ALGOS.insert().values(
            id=spec.algo_id,
            account=spec.account,
            instrument=spec.instrument,
            kind=spec.kind.value,
            status=state.status.value,
            active=not state.is_done,
            spec=_dumps(spec.to_json()),
            state=_dumps(state.to_json()),
            created_at=now,
            updated_at=now,
        )
    )


def update(connection: Connection, state: AlgoState, now: datetime) -> None:
    result = connection.execute(
        ALGOS.update()
        .where(ALGOS.c.id == state.spec.algo_id)
        .values(
            status=state.status.value,
            active=not state.is_done,
            state=_dumps(state.to_json()),
            updated_at=now,
        )
    )
    if result.rowcount != 1:
        raise AlgoWriteConflict(f"no algo {state.spec.algo_id!r} to update")


def get(connection: Connection, algo_id: str) -> StoredAlgo | None:
    row = connection.execute(select(ALGOS).where(ALGOS.c.id == algo_id)).first()
    return None if row is None else _stored(row)


def load_active(connection: Connection) -> list[StoredAlgo]:
    """Every algo that can still change (not terminal, or a child still open), oldest first."""
    rows = connection.execute(
        select(ALGOS).where(ALGOS.c.active.is_(True)).order_by(ALGOS.c.created_at, ALGOS.c.id)
    )
    return [_stored(r) for r in rows]
