"""Persisted access: API keys, Sign-In with Ethereum nonces and trader sessions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Row, select

from gateway.store.tables import AccessSessionRow, ApiKeyRow, SiweNonceRow

API_KEYS = ApiKeyRow.__table__  # type: ignore[attr-defined]
SESSIONS = AccessSessionRow.__table__  # type: ignore[attr-defined]
NONCES = SiweNonceRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class StoredApiKey:
    key_id: str
    role: str
    scopes: frozenset[str]
    accounts: tuple[str, ...]  # checksum addresses; empty: any account
    label: str | None
    salt: str
    secret_hash: str
    created_at: datetime
    revoked_at: datetime | None = None


def _api_key(r: Row[tuple[object, ...]]) -> StoredApiKey:
    m = r._mapping
    return StoredApiKey(
        key_id=m["key_id"],
        role=m["role"],
        scopes=frozenset(s for s in m["scopes"].split(",") if s),
        accounts=tuple(json.loads(m["accounts"])),
        label=m["label"],
        salt=m["salt"],
        secret_hash=m["secret_hash"],
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
    )


def insert_api_key(connection: Connection, key: StoredApiKey) -> None:
    connection.execute(
        API_KEYS.insert().values(
            key_id=key.key_id,
            role=key.role,
            scopes=",".join(sorted(key.scopes)),
            accounts=json.dumps(list(key.accounts)),
            label=key.label,
            salt=key.salt,
            secret_hash=key.secret_hash,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
        )
    )


def get_api_key(connection: Connection, key_id: str) -> StoredApiKey | None:
    row = connection.execute(select(API_KEYS).where(API_KEYS.c.key_id == key_id)).first()
    return None if row is None else _api_key(row)


def list_api_keys(connection: Connection) -> list[StoredApiKey]:
    rows = connection.execute(select(API_KEYS).order_by(API_KEYS.c.created_at, API_KEYS.c.key_id))
    return [_api_key(r) for r in rows]


def revoke_api_key(connection: Connection, key_id: str, now: datetime) -> bool:
    """True when a live key was revoked now (False: unknown or revoked before)."""
    result = connection.execute(
        API_KEYS.update()
        .where(API_KEYS.c.key_id == key_id, API_KEYS.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)


def insert_nonce(connection: Connection, nonce: str, now: datetime, expires_at: datetime) -> None:
    # expired nonces and sessions are swept here: nonces are asked for before every sign-in
    connection.execute(NONCES.delete().where(NONCES.c.expires_at <= now))
    connection.execute(SESSIONS.delete().where(SESSIONS.c.expires_at <= now))
    connection.execute(
        NONCES.insert().values(nonce=nonce, created_at=now, expires_at=expires_at, used_at=None)
    )


def spend_nonce(connection: Connection, nonce: str, now: datetime) -> bool:
    """Mark a live, unused nonce used; False when it is unknown, used or expired."""
    result = connection.execute(
        NONCES.update()
        .where(NONCES.c.nonce == nonce, NONCES.c.used_at.is_(None), NONCES.c.expires_at > now)
        .values(used_at=now)
    )
    return bool(result.rowcount)


def insert_session(
    connection: Connection, token_hash: str, address: str, now: datetime, expires_at: datetime
) -> None:
    connection.execute(
        SESSIONS.insert().values(
            token_hash=token_hash, address=address, created_at=now, expires_at=expires_at
        )
    )


def live_session(
    connection: Connection, token_hash: str, now: datetime
) -> tuple[str, datetime] | None:
    """The trader a live session belongs to, and when the session ends."""
    row = connection.execute(
        select(SESSIONS.c.address, SESSIONS.c.expires_at).where(
            SESSIONS.c.token_hash == token_hash, SESSIONS.c.expires_at > now
        )
    ).first()
    return None if row is None else (str(row[0]), row[1])


def delete_session(connection: Connection, token_hash: str) -> bool:
    result = connection.execute(SESSIONS.delete().where(SESSIONS.c.token_hash == token_hash))
    return bool(result.rowcount)
