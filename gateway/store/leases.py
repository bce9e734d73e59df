"""Role leases with fencing tokens, and the replicas' heartbeats (PostgreSQL).

A lease is one row per single-writer role. Time is the database's (`clock_timestamp()`), so
replicas whose clocks disagree still agree on who holds a role. Every acquisition bumps the
row's `token`; a holder's writes check, in their own transaction, that the token is still
theirs (`check_fence`, which takes the row `FOR SHARE`, so a takeover and a fenced commit
cannot interleave). A replica paused past its lease therefore finds its writes refused once
another has taken the role, whatever its own clock says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

from gateway.domain.errors import DomainError


class StaleLease(DomainError):
    """503: a write made under a lease another replica has since taken."""

    code = "stale_lease"


@dataclass(frozen=True, slots=True)
class Lease:
    role: str
    holder: str
    address: str
    token: int
    takeovers: int
    expires_at: datetime
    live: bool  # unexpired by the database's clock


_ACQUIRE = text(
    """
    INSERT INTO leases (role, holder, address, token, takeovers, acquired_at, renewed_at,
                        expires_at)
    VALUES (:role, :holder, :address, 1, 0, clock_timestamp(), clock_timestamp(),
            clock_timestamp() + make_interval(secs => :ttl))
    ON CONFLICT (role) DO UPDATE SET
        holder = excluded.holder,
        address = excluded.address,
        token = leases.token + 1,
        takeovers = leases.takeovers + CASE WHEN leases.holder = '' THEN 0 ELSE 1 END,
        acquired_at = excluded.acquired_at,
        renewed_at = excluded.renewed_at,
        expires_at = excluded.expires_at
    WHERE leases.expires_at < clock_timestamp()
    RETURNING token
    """
)


def try_acquire(
    connection: Connection, role: str, holder: str, address: str, ttl: float
) -> int | None:
    """The new fencing token if `role` was free or its lease had lapsed; None if another
    replica holds it."""
    token = connection.execute(
        _ACQUIRE, {"role": role, "holder": holder, "address": address, "ttl": ttl}
    ).scalar()
    return None if token is None else int(token)


def renew(connection: Connection, role: str, holder: str, token: int, ttl: float) -> bool:
    """Extends the lease; False when it is no longer ours (taken after it lapsed)."""
    row = connection.execute(
        text(
            "UPDATE leases SET renewed_at = clock_timestamp(), "
            "expires_at = clock_timestamp() + make_interval(secs => :ttl) "
            "WHERE role = :role AND holder = :holder AND token = :token RETURNING token"
        ),
        {"role": role, "holder": holder, "token": token, "ttl": ttl},
    ).first()
    return row is not None


def release(connection: Connection, role: str, holder: str, token: int) -> None:
    """Gives the role up at once (a clean stop), so another replica need not wait it out."""
    connection.execute(
        text(
            "UPDATE leases SET expires_at = clock_timestamp() - interval '1 second', "
            "holder = '' WHERE role = :role AND holder = :holder AND token = :token"
        ),
        {"role": role, "holder": holder, "token": token},
    )


def check_fence(connection: Connection, role: str, holder: str, token: int) -> None:
    """Raises StaleLease unless `holder` still holds `role` under `token`. Call it inside the
    transaction whose writes it guards: the row stays locked (shared) until it commits."""
    row = connection.execute(
        text("SELECT holder, token FROM leases WHERE role = :role FOR SHARE"), {"role": role}
    ).first()
    if row is None or row[0] != holder or int(row[1]) != token:
        raise StaleLease(
            f"this replica's lease on {role!r} (token {token}) was taken by another replica; "
            "the write was refused"
        )


def leases(connection: Connection) -> list[Lease]:
    rows = connection.execute(
        text(
            "SELECT role, holder, address, token, takeovers, expires_at, "
            "expires_at > clock_timestamp() FROM leases ORDER BY role"
        )
    ).all()
    return [Lease(r[0], r[1], r[2], int(r[3]), int(r[4]), r[5], bool(r[6])) for r in rows]


def holder(connection: Connection, role: str) -> Lease | None:
    """The role's live holder, if any."""
    for lease in leases(connection):
        if lease.role == role and lease.live and lease.holder:
            return lease
    return None


def heartbeat(connection: Connection, replica_id: str, address: str, pid: int) -> None:
    connection.execute(
        text(
            "INSERT INTO replicas (replica_id, address, pid, started_at, seen_at) "
            "VALUES (:id, :address, :pid, clock_timestamp(), clock_timestamp()) "
            "ON CONFLICT (replica_id) DO UPDATE SET address = excluded.address, "
            "pid = excluded.pid, seen_at = excluded.seen_at"
        ),
        {"id": replica_id, "address": address, "pid": pid},
    )


def live_replicas(connection: Connection, within_seconds: float) -> list[str]:
    """Replicas seen within the last `within_seconds` (by the database's clock)."""
    rows = connection.execute(
        text(
            "SELECT replica_id FROM replicas "
            "WHERE seen_at > clock_timestamp() - make_interval(secs => :s)"
        ),
        {"s": within_seconds},
    ).all()
    return [r[0] for r in rows]
