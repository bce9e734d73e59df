"""The stream events replicas follow: committed events in commit order, and the PostgreSQL
NOTIFY that wakes the followers (delivered only when the transaction commits)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, text

from gateway.store.tables import StreamEventRow

CHANNEL = "isthmus_events"


def append(connection: Connection, events: list[dict[str, Any]], now: datetime) -> None:
    connection.execute(
        insert(StreamEventRow),
        [{"at": now, "payload": json.dumps(e, default=str, separators=(",", ":"))} for e in events],
    )
    connection.execute(text(f"NOTIFY {CHANNEL}"))


def last_seq(connection: Connection) -> int:
    return int(
        connection.execute(text("SELECT coalesce(max(seq), 0) FROM stream_events")).scalar_one()
    )


def after(
    connection: Connection, seq: int, limit: int
) -> tuple[int | None, list[tuple[int, dict[str, Any]]]]:
    """The oldest seq still kept, and up to `limit` events after `seq`, in order."""
    oldest = connection.execute(text("SELECT min(seq) FROM stream_events")).scalar()
    rows = connection.execute(
        text("SELECT seq, payload FROM stream_events WHERE seq > :seq ORDER BY seq LIMIT :n"),
        {"seq": seq, "n": limit},
    ).all()
    return (None if oldest is None else int(oldest)), [(int(r[0]), json.loads(r[1])) for r in rows]


def prune(connection: Connection, now: datetime, keep: timedelta) -> int:
    result = connection.execute(
        text("DELETE FROM stream_events WHERE at < :cut"), {"cut": now - keep}
    )
    return int(result.rowcount or 0)
