"""FIX sessions in the store: sequence numbers, the messages sent (for resends), and the
ClOrdIDs that name each order. Written through the writer, so a replica that takes over
resumes every session where the last holder left it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update
from sqlmodel import col

from gateway.store.tables import FixMessageRow, FixOrderRow, FixSessionRow

RESEND_KEPT = 10_000  # messages kept per session for the counterparty's resend requests


@dataclass(frozen=True, slots=True)
class FixSessionState:
    next_sender: int
    next_target: int
    sent: list[tuple[int, str]]  # the newest messages sent, oldest first


def load(connection: Connection, session_key: str) -> FixSessionState | None:
    row = connection.execute(
        select(col(FixSessionRow.next_sender), col(FixSessionRow.next_target)).where(
            col(FixSessionRow.session_key) == session_key
        )
    ).first()
    if row is None:
        return None
    sent = connection.execute(
        select(col(FixMessageRow.seq), col(FixMessageRow.raw))
        .where(col(FixMessageRow.session_key) == session_key)
        .order_by(col(FixMessageRow.seq).desc())
        .limit(RESEND_KEPT)
    ).all()
    return FixSessionState(int(row[0]), int(row[1]), [(int(s), r) for s, r in reversed(sent)])


def _set(connection: Connection, session_key: str, now: datetime, **values: int) -> None:
    done = connection.execute(
        update(FixSessionRow)
        .where(col(FixSessionRow.session_key) == session_key)
        .values(updated_at=now, **values)
    )
    if done.rowcount == 0:
        row = {"next_sender": 1, "next_target": 1} | values
        connection.execute(
            insert(FixSessionRow).values(session_key=session_key, updated_at=now, **row)
        )


def record_sent(
    connection: Connection, session_key: str, seq: int, raw: str, now: datetime
) -> None:
    """`raw` went out as `seq`: the next one is seq + 1, and `raw` is kept for resends."""
    connection.execute(
        delete(FixMessageRow).where(
            col(FixMessageRow.session_key) == session_key,
            col(FixMessageRow.seq) >= seq,
        )
    )  # numbers reused after a sequence reset
    connection.execute(
        insert(FixMessageRow).values(session_key=session_key, seq=seq, raw=raw, sent_at=now)
    )
    _set(connection, session_key, now, next_sender=seq + 1)
    connection.execute(
        delete(FixMessageRow).where(
            col(FixMessageRow.session_key) == session_key,
            col(FixMessageRow.seq) <= seq - RESEND_KEPT,
        )
    )


def record_received(connection: Connection, session_key: str, seq: int, now: datetime) -> None:
    """Message `seq` from the counterparty was processed: expect seq + 1 next."""
    _set(connection, session_key, now, next_target=seq + 1)


def logged_on(connection: Connection, session_key: str, key_id: str | None, now: datetime) -> None:
    """Who is logged on now (None: nobody), for the operator's view."""
    connection.execute(
        update(FixSessionRow)
        .where(col(FixSessionRow.session_key) == session_key)
        .values(key_id=key_id, logged_on_at=now if key_id else None)
    )


def reset(connection: Connection, session_key: str, now: datetime) -> None:
    """Both sides start again at 1 (a logon with ResetSeqNumFlag, or a reset request)."""
    connection.execute(delete(FixMessageRow).where(col(FixMessageRow.session_key) == session_key))
    _set(connection, session_key, now, next_sender=1, next_target=1)


def bind_order(
    connection: Connection, session_key: str, cl_ord_id: str, order_id: str, now: datetime
) -> None:
    """`cl_ord_id` names `order_id` in this session (a new order, or a replace's new id)."""
    exists = connection.execute(
        select(col(FixOrderRow.order_id)).where(
            col(FixOrderRow.session_key) == session_key,
            col(FixOrderRow.cl_ord_id) == cl_ord_id,
        )
    ).first()
    if exists is None:
        connection.execute(
            insert(FixOrderRow).values(
                session_key=session_key, cl_ord_id=cl_ord_id, order_id=order_id, bound_at=now
            )
        )


def order_of(connection: Connection, session_key: str, cl_ord_id: str) -> str | None:
    return connection.execute(
        select(col(FixOrderRow.order_id)).where(
            col(FixOrderRow.session_key) == session_key,
            col(FixOrderRow.cl_ord_id) == cl_ord_id,
        )
    ).scalar()


def every_order(connection: Connection) -> list[tuple[str, str, list[str]]]:
    """(session, order id, the ClOrdIDs that named it, oldest first) of every order a FIX
    session entered."""
    rows = connection.execute(
        select(
            col(FixOrderRow.session_key), col(FixOrderRow.order_id), col(FixOrderRow.cl_ord_id)
        ).order_by(col(FixOrderRow.bound_at), col(FixOrderRow.cl_ord_id))
    ).all()
    named: dict[tuple[str, str], list[str]] = {}
    for key, order_id, cl_ord_id in rows:
        named.setdefault((key, order_id), []).append(cl_ord_id)
    return [(key, order_id, names) for (key, order_id), names in named.items()]
