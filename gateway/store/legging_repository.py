"""Persisted legging runs (`legged_strategies`): the state document as JSON text."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from gateway.routing.legging import LeggingState
from gateway.store.tables import LeggedStrategyRow

LEGGED = LeggedStrategyRow.__table__  # type: ignore[attr-defined]


def _active(state: LeggingState) -> bool:
    return not (state.is_terminal and not state.in_flight)


def insert_run(connection: Connection, state: LeggingState, now: datetime) -> None:
    connection.execute(
        insert(LEGGED).values(
            order_id=state.spec.parent_id,
            account=state.spec.account,
            status=state.status.value,
            active=_active(state),
            state=json.dumps(state.to_json(), sort_keys=True),
            created_at=now,
            updated_at=now,
        )
    )


def update_run(connection: Connection, state: LeggingState, now: datetime) -> None:
    connection.execute(
        update(LEGGED)
        .where(LEGGED.c.order_id == state.spec.parent_id)
        .values(
            status=state.status.value,
            active=_active(state),
            state=json.dumps(state.to_json(), sort_keys=True),
            updated_at=now,
        )
    )


def get_run(connection: Connection, order_id: str) -> LeggingState | None:
    row = connection.execute(select(LEGGED.c.state).where(LEGGED.c.order_id == order_id)).first()
    return None if row is None else LeggingState.from_json(json.loads(row.state))


def active_runs(connection: Connection) -> list[LeggingState]:
    rows = connection.execute(
        select(LEGGED.c.state).where(LEGGED.c.active.is_(True)).order_by(LEGGED.c.created_at)
    )
    return [LeggingState.from_json(json.loads(r.state)) for r in rows]
