"""`GET /v1/status`: the operator's (and the auditor's) view of the running gateway: the
replicas and when each was last seen, who holds each single-writer role, how far settlement
lags behind trading, and each venue's feed (the same answer as `GET /v1/venues`).
`isthmus status` prints it."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from gateway.api.dependencies import runtime
from gateway.api.venues import VenuesOut, list_venues
from gateway.runtime import Runtime
from gateway.telemetry.metrics import (
    LeaseState,
    ReplicaState,
    SettlementState,
    database_now,
    read_leases,
    read_replicas,
    read_settlement,
)

router = APIRouter(prefix="/v1", tags=["health"])
RuntimeDep = Annotated[Runtime, Depends(runtime)]


def seconds(value: float) -> str:
    """Seconds as a decimal string with milliseconds (negative: that long ago)."""
    millis = round(value * 1000)
    sign = "-" if millis < 0 else ""
    millis = abs(millis)
    return f"{sign}{millis // 1000}.{millis % 1000:03d}"


class ThisReplicaOut(BaseModel):
    replica: bool = Field(description="Whether it runs as one of several replicas")
    replica_id: str | None = Field(description="Its name in the leases (replicas only)")
    runs_roles: bool = Field(
        description="Whether it runs the single-writer roles now: the book, settlement, the "
        "runners (always in one process; a replica while it holds the lease)"
    )
    holds: list[str] = Field(description="The leases it holds (none in one process)")
    database: str


class ReplicaOut(BaseModel):
    replica_id: str
    address: str
    pid: int
    started_at: datetime
    seen_seconds_ago: str = Field(description="Since its last heartbeat (the database's clock)")
    live: bool = Field(description="Seen within the lease time to live")


class RoleOut(BaseModel):
    role: str
    holder: str | None = Field(description="The replica holding it; null once released")
    address: str
    token: int = Field(description="Its fencing token: grows by one at every acquisition")
    takeovers: int = Field(description="Times another replica took it over (failovers)")
    expires_in_seconds: str = Field(description="Until it lapses unless renewed; negative: lapsed")
    live: bool


class SettlementLagOut(BaseModel):
    settles: bool = Field(description="Whether this gateway settles on a chain")
    oldest_unsettled_seconds: str | None = Field(
        description="Age of the oldest fill of a trade not settled yet (null: none waits)"
    )
    unsettled_fills: int = Field(description="In the outbox or in a batch not confirmed yet")
    batches_pending: int = Field(description="Batches building, sent or reorged")
    batches: dict[str, int] = Field(description="Every batch, by status")


class StatusOut(BaseModel):
    as_of: datetime
    this_replica: ThisReplicaOut
    replicas: list[ReplicaOut]
    roles: list[RoleOut]
    settlement: SettlementLagOut
    venues: VenuesOut


@router.get(
    "/status",
    response_model=StatusOut,
    summary="Replicas, who holds each role, settlement lag and venue health",
)
async def status(rt: RuntimeDep) -> StatusOut:
    def read() -> tuple[list[LeaseState], list[ReplicaState], SettlementState]:
        with rt.read_engine.connect() as connection:
            now = database_now(connection)
            return (
                read_leases(connection, now),
                read_replicas(connection, now),
                read_settlement(connection),
            )

    leases, replicas, settlement = await asyncio.to_thread(read)
    now = rt.clock.now()
    return StatusOut(
        as_of=now,
        this_replica=_this_replica(rt),
        replicas=[
            ReplicaOut(
                replica_id=r.replica_id,
                address=r.address,
                pid=r.pid,
                started_at=r.started_at,
                seen_seconds_ago=seconds(r.seen_seconds_ago),
                live=r.seen_seconds_ago <= rt.settings.lease_ttl_seconds,
            )
            for r in replicas
        ],
        roles=[
            RoleOut(
                role=lease.role,
                holder=lease.holder or None,
                address=lease.address,
                token=lease.token,
                takeovers=lease.takeovers,
                expires_in_seconds=seconds(lease.expires_in),
                live=lease.live,
            )
            for lease in leases
        ],
        settlement=SettlementLagOut(
            settles=rt.settlement is not None,
            oldest_unsettled_seconds=None
            if settlement.oldest_unsettled_at is None
            else seconds(settlement.oldest_unsettled_seconds(now)),
            unsettled_fills=settlement.unsettled_fills,
            batches_pending=settlement.batches_pending,
            batches=settlement.batches,
        ),
        venues=await list_venues(rt),
    )


def _this_replica(rt: Runtime) -> ThisReplicaOut:
    leases = rt.leases
    database = rt.read_engine.dialect.name
    if leases is None:  # one process: every role is its own
        return ThisReplicaOut(
            replica=False, replica_id=None, runs_roles=True, holds=[], database=database
        )
    return ThisReplicaOut(
        replica=True,
        replica_id=leases.replica_id,
        runs_roles=leases.holding,
        holds=[leases.role] if leases.holding else [],
        database=database,
    )
