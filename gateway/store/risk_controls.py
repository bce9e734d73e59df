"""Persisted risk switches: the global kill switch, per-account kill switches and limits."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from gateway.store.tables import RiskControlRow

CONTROLS = RiskControlRow.__table__  # type: ignore[attr-defined]
GLOBAL_SCOPE = "global"


@dataclass(frozen=True, slots=True)
class StoredControl:
    scope: str
    kill_switch: bool
    reason: str | None
    limits: dict[str, Any] | None
    updated_at: datetime
    hedge: dict[str, Any] | None = None


def _control(r: Any) -> StoredControl:
    return StoredControl(
        r.scope,
        bool(r.kill_switch),
        r.reason,
        None if r.limits is None else json.loads(r.limits),
        r.updated_at,
        None if r.hedge is None else json.loads(r.hedge),
    )


def load_all(connection: Connection) -> list[StoredControl]:
    return [_control(r) for r in connection.execute(select(CONTROLS).order_by(CONTROLS.c.scope))]


def get(connection: Connection, scope: str) -> StoredControl | None:
    row = connection.execute(select(CONTROLS).where(CONTROLS.c.scope == scope)).first()
    return None if row is None else _control(row)


def put(connection: Connection, control: StoredControl) -> None:
    """Insert or replace one scope's row (portable: delete then insert, in the caller's tx)."""
    connection.execute(CONTROLS.delete().where(CONTROLS.c.scope == control.scope))
    connection.execute(
        CONTROLS.insert().values(
            scope=control.scope,
            kill_switch=control.kill_switch,
            reason=control.reason,
            limits=None if control.limits is None else json.dumps(control.limits, sort_keys=True),
            updated_at=control.updated_at,
            hedge=None if control.hedge is None else json.dumps(control.hedge, sort_keys=True),
        )
    )
