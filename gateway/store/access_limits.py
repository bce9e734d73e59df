"""Replay memory and request-rate buckets shared by replicas (PostgreSQL)."""

from __future__ import annotations

import math

from sqlalchemy import Connection, text


def first_sight(connection: Connection, signature: str, now_ms: int, forget_at_ms: int) -> bool:
    """Records `signature`; False when any replica recorded it within its window."""
    connection.execute(
        text("DELETE FROM replay_signatures WHERE signature = :s AND forget_at_ms <= :now"),
        {"s": signature, "now": now_ms},
    )
    row = connection.execute(
        text(
            "INSERT INTO replay_signatures (signature, forget_at_ms) VALUES (:s, :forget) "
            "ON CONFLICT (signature) DO NOTHING RETURNING signature"
        ),
        {"s": signature, "forget": forget_at_ms},
    ).first()
    return row is not None


def forget_before(connection: Connection, now_ms: int) -> int:
    result = connection.execute(
        text("DELETE FROM replay_signatures WHERE forget_at_ms <= :now"), {"now": now_ms}
    )
    return int(result.rowcount or 0)


def take(connection: Connection, subject: str, per_second: float, burst: int) -> int | None:
    """One request from `subject`'s token bucket, on the database's clock: None when it
    fits, else the whole seconds to wait."""
    row = connection.execute(
        text(
            "SELECT tokens, extract(epoch from clock_timestamp() - updated_at) "
            "FROM rate_buckets WHERE subject = :s FOR UPDATE"
        ),
        {"s": subject},
    ).first()
    tokens = float(burst) if row is None else float(row[0])
    elapsed = 0.0 if row is None else max(float(row[1]), 0.0)
    tokens = min(float(burst), tokens + elapsed * per_second)
    wait: int | None = None
    if tokens >= 1.0:
        tokens -= 1.0
    else:
        wait = max(1, math.ceil((1.0 - tokens) / per_second))
    connection.execute(
        text(
            "INSERT INTO rate_buckets (subject, tokens, updated_at) "
            "VALUES (:s, :t, clock_timestamp()) ON CONFLICT (subject) DO UPDATE SET "
            "tokens = excluded.tokens, updated_at = excluded.updated_at"
        ),
        {"s": subject, "t": tokens},
    )
    return wait
