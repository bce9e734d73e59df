"""Persisted dead man's switches: callers' cancel-all countdowns and the stream sessions that
asked for cancel-on-disconnect (`gateway.oms.dead_man_switch`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from gateway.store.tables import CancelOnDisconnectSessionRow, DeadManCountdownRow

COUNTDOWNS = DeadManCountdownRow.__table__  # type: ignore[attr-defined]
SESSIONS = CancelOnDisconnectSessionRow.__table__  # type: ignore[attr-defined]

# Built once: a market maker refreshes its countdown every second or so.
_REFRESH = (
    update(COUNTDOWNS)
    .where(COUNTDOWNS.c.scope == bindparam("for_scope"))
    .values(
        accounts=bindparam("accounts"),
        timeout_seconds=bindparam("timeout_seconds"),
        deadline=bindparam("deadline"),
        refreshed_at=bindparam("refreshed_at"),
    )
)
_INSERT = insert(COUNTDOWNS)
_GET = select(COUNTDOWNS).where(COUNTDOWNS.c.scope == bindparam("for_scope"))


@dataclass(frozen=True, slots=True)
class StoredCountdown:
    """Every resting order of `accounts` is cancelled at `deadline` unless refreshed first."""

    scope: str
    accounts: frozenset[str]
    timeout_seconds: Decimal
    deadline: datetime
    armed_at: datetime  # when this countdown was first armed
    refreshed_at: datetime  # its last refresh (the deadline is this plus the timeout)


@dataclass(frozen=True, slots=True)
class StoredSession:
    session_id: str
    accounts: frozenset[str]
    opened_at: datetime


def _accounts_json(accounts: frozenset[str]) -> str:
    return json.dumps(sorted(accounts))


def _countdown(r: Any) -> StoredCountdown:
    return StoredCountdown(
        r.scope,
        frozenset(json.loads(r.accounts)),
        r.timeout_seconds,
        r.deadline,
        r.armed_at,
        r.refreshed_at,
    )


def refresh_countdown(connection: Connection, countdown: StoredCountdown) -> bool:
    """Move an armed countdown's deadline (and take its new accounts and timeout); False when
    the scope has none armed (nothing was written)."""
    result = connection.execute(
        _REFRESH,
        {
            "for_scope": countdown.scope,
            "accounts": _accounts_json(countdown.accounts),
            "timeout_seconds": countdown.timeout_seconds,
            "deadline": countdown.deadline,
            "refreshed_at": countdown.refreshed_at,
        },
    )
    return bool(result.rowcount)


def insert_countdown(connection: Connection, countdown: StoredCountdown) -> None:
    connection.execute(
        _INSERT,
        {
            "scope": countdown.scope,
            "accounts": _accounts_json(countdown.accounts),
            "timeout_seconds": countdown.timeout_seconds,
            "deadline": countdown.deadline,
            "armed_at": countdown.armed_at,
            "refreshed_at": countdown.refreshed_at,
        },
    )


def get_countdown(connection: Connection, scope: str) -> StoredCountdown | None:
    row = connection.execute(_GET, {"for_scope": scope}).first()
    return None if row is None else _countdown(row)


def delete_countdown(connection: Connection, scope: str) -> StoredCountdown | None:
    """Remove the scope's countdown; returns what was armed (None: nothing was)."""
    stored = get_countdown(connection, scope)
    if stored is not None:
        connection.execute(delete(COUNTDOWNS).where(COUNTDOWNS.c.scope == scope))
    return stored


def countdowns(connection: Connection) -> list[StoredCountdown]:
    """Every armed countdown, earliest deadline first."""
    query = select(COUNTDOWNS).order_by(COUNTDOWNS.c.deadline, COUNTDOWNS.c.scope)
    return [_countdown(r) for r in connection.execute(query)]


def put_session(connection: Connection, session: StoredSession) -> None:
    """Register (or re-register, with new accounts) a session (portable: delete, insert)."""
    connection.execute(delete(SESSIONS).where(SESSIONS.c.session_id == session.session_id))
    connection.execute(
        insert(SESSIONS).values(
            session_id=session.session_id,
            accounts=_accounts_json(session.accounts),
            opened_at=session.opened_at,
        )
    )


def delete_session(connection: Connection, session_id: str) -> StoredSession | None:
    """Forget a session; returns it (None: it was not registered)."""
    row = connection.execute(select(SESSIONS).where(SESSIONS.c.session_id == session_id)).first()
    if row is None:
        return None
    connection.execute(delete(SESSIONS).where(SESSIONS.c.session_id == session_id))
    return StoredSession(row.session_id, frozenset(json.loads(row.accounts)), row.opened_at)


def sessions(connection: Connection) -> list[StoredSession]:
    query = select(SESSIONS).order_by(SESSIONS.c.opened_at, SESSIONS.c.session_id)
    return [
        StoredSession(r.session_id, frozenset(json.loads(r.accounts)), r.opened_at)
        for r in connection.execute(query)
    ]
