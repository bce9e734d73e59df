"""The append-only audit log: each record carries the hash of the one before it.

`hash = sha256(prev_hash | seq | kind | entity_id | created_at | payload)`, with the genesis
`prev_hash` all zeros; `audit_head` holds the newest seq and hash, so removing the tail is
detected as well as editing, inserting, deleting or reordering any row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from gateway.domain.json_text import canonical_json
from gateway.store.driver_statements import DriverStatement
from gateway.store.tables import AuditHeadRow, AuditRecordRow

GENESIS_HASH = "0" * 64
AUDIT_LOG = AuditRecordRow.__table__  # type: ignore[attr-defined]
AUDIT_HEAD = AuditHeadRow.__table__  # type: ignore[attr-defined]

# Built once: constructing statements per call costs more than running them.
# every commit appends here: run on the driver's cursor (see driver_statements)
_READ_HEAD_FOR_UPDATE = DriverStatement(
    select(AUDIT_HEAD.c.seq, AUDIT_HEAD.c.hash).where(AUDIT_HEAD.c.id == 1).with_for_update()
)
_INSERT_RECORDS = DriverStatement(insert(AUDIT_LOG))
_INSERT_HEAD = DriverStatement(insert(AUDIT_HEAD))
_MOVE_HEAD = DriverStatement(
    update(AUDIT_HEAD)
    .where(AUDIT_HEAD.c.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What happened: a kind such as `order.accepted`, the entity, and its facts."""

    kind: str
    entity_id: str
    payload: dict[str, Any]


def record_hash(
    prev_hash: str, seq: int, kind: str, entity_id: str, created_at: datetime, payload: str
) -> str:
    text = "|".join((prev_hash, str(seq), kind, entity_id, created_at.isoformat(), payload))
    return hashlib.sha256(text.encode()).hexdigest()


def append(connection: Connection, entries: Sequence[AuditEntry], now: datetime) -> None:
    """Append entries in order inside the caller's transaction.

    The head row is read `FOR UPDATE` so concurrent writers (other replicas on PostgreSQL)
    serialize here; SQLite writers already hold the database lock from BEGIN IMMEDIATE.
    """
    if not entries:
        return
    head = _READ_HEAD_FOR_UPDATE.fetch_one(connection)
    seq, prev = (0, GENESIS_HASH) if head is None else (int(head[0]), str(head[1]))
    rows = []
    for entry in entries:
        seq += 1
        payload = canonical_json(entry.payload)
        digest = record_hash(prev, seq, entry.kind, entry.entity_id, now, payload)
        rows.append(
            {
                "seq": seq,
                "kind": entry.kind,
                "entity_id": entry.entity_id,
                "payload": payload,
                "created_at": now,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    _INSERT_RECORDS.executemany(connection, rows)
    if head is None:
        _INSERT_HEAD.execute(connection, {"id": 1, "seq": seq, "hash": prev})
    else:
        _MOVE_HEAD.execute(connection, {"new_seq": seq, "new_hash": prev})


@dataclass(frozen=True, slots=True)
class ChainVerification:
    ok: bool
    records: int
    problems: tuple[str, ...]


def verify(connection: Connection, *, max_problems: int = 20) -> ChainVerification:
    """Recompute the whole chain; report every broken link (up to `max_problems`)."""
    problems: list[str] = []
    rows: Iterable[Any] = connection.execute(select(AUDIT_LOG).order_by(AUDIT_LOG.c.seq))
    expected_seq, prev, count = 1, GENESIS_HASH, 0
    for row in rows:
        count += 1
        if row.seq != expected_seq:
            problems.append(f"record {row.seq}: expected seq {expected_seq} (missing records)")
        if row.prev_hash != prev:
            problems.append(f"record {row.seq}: prev_hash does not match the record before it")
        digest = record_hash(
            row.prev_hash, row.seq, row.kind, row.entity_id, row.created_at, row.payload
        )
        if digest != row.hash:
            problems.append(f"record {row.seq}: content does not match its hash")
        prev, expected_seq = row.hash, row.seq + 1
        if len(problems) >= max_problems:
            break
    head = connection.execute(select(AUDIT_HEAD).where(AUDIT_HEAD.c.id == 1)).first()
    head_seq, head_hash = (0, GENESIS_HASH) if head is None else (head.seq, head.hash)
    if len(problems) < max_problems and (head_seq != expected_seq - 1 or head_hash != prev):
        problems.append(
            f"head says seq {head_seq} but the log ends at {expected_seq - 1} (truncated or forged)"
        )
    return ChainVerification(ok=not problems, records=count, problems=tuple(problems))
