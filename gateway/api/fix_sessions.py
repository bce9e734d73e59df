"""`GET /v1/fix/sessions`: the operator's (and the auditor's) view of the FIX acceptor's
provisioned sessions, as the store has them: who is logged on to each (which API key, since
when) and the sequence numbers each side is at. Read from the store, so every replica answers
the same whichever of them runs the acceptor. `isthmus status` prints it."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from gateway.api.dependencies import runtime
from gateway.runtime import Runtime
from gateway.telemetry.metrics import FixSessionReading, read_fix_sessions

router = APIRouter(prefix="/v1/fix", tags=["fix"])
RuntimeDep = Annotated[Runtime, Depends(runtime)]


class FixSessionOut(BaseModel):
    session: str = Field(
        description="The session's id: BeginString, the gateway's comp id and the counterparty's",
        examples=["FIX.4.4:ISTHMUS->DESK1"],
    )
    counterparty: str = Field(description="The counterparty's SenderCompID", examples=["DESK1"])
    logged_on: bool = Field(description="Whether an API key is logged on to it now")
    key_id: str | None = Field(description="The API key logged on (null: nobody)")
    logged_on_at: datetime | None = Field(description="When that key logged on")
    next_sender_seq: int = Field(ge=1, description="The MsgSeqNum the gateway sends next")
    next_target_seq: int = Field(
        ge=1, description="The MsgSeqNum the gateway expects from the counterparty next"
    )
    updated_at: datetime | None = Field(
        description="When the session last sent or received a message (null: never)"
    )


class FixSessionsOut(BaseModel):
    enabled: bool = Field(description="Whether this gateway runs a FIX acceptor")
    comp_id: str = Field(description="The gateway's SenderCompID (the desks' TargetCompID)")
    port: int | None = Field(
        description="The port the acceptor is configured on (null: no acceptor; 0: a free "
        "port it picks)"
    )
    sessions: list[FixSessionOut] = Field(
        description="Every provisioned session, in the configured order (none without an acceptor)"
    )


@router.get(
    "/sessions",
    response_model=FixSessionsOut,
    summary="FIX sessions: who is logged on to each, and their sequence numbers",
)
async def fix_sessions(rt: RuntimeDep) -> FixSessionsOut:
    settings = rt.settings
    enabled = settings.fix_port is not None

    def read() -> list[FixSessionReading]:
        with rt.read_engine.connect() as connection:
            return read_fix_sessions(connection, settings.fix_comp_id, settings.fix_sessions)

    sessions = await asyncio.to_thread(read) if enabled else []
    return FixSessionsOut(
        enabled=enabled,
        comp_id=settings.fix_comp_id,
        port=settings.fix_port,
        sessions=[
            FixSessionOut(
                session=s.session,
                counterparty=s.counterparty,
                logged_on=s.logged_on,
                key_id=s.key_id,
                logged_on_at=s.logged_on_at,
                next_sender_seq=s.next_sender,
                next_target_seq=s.next_target,
                updated_at=s.updated_at,
            )
            for s in sessions
        ],
    )
