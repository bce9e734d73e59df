"""The auditor's view: the verification report of `isthmus audit verify` on this gateway's
chain and store, the audited fills, and the audit log's records page by page.

Roles are enforced by the access policy in front of these routes; here a caller restricted to
some accounts (`request.state.principal.accounts`) sees only those accounts' fills.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gateway.api.dependencies import runtime
from gateway.api.errors import error_body
from gateway.api.schemas import ErrorOut
from gateway.runtime import Runtime
from gateway.settlement.audit_chain import AuditedFill
from gateway.settlement.audit_store import audit_records
from gateway.settlement.auditor import AuditReport, verify

router = APIRouter(prefix="/v1/audit", tags=["audit"])
RuntimeDep = Annotated[Runtime, Depends(runtime)]
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorOut, "description": "No chain is configured: nothing to verify against"}
}


class AuditedFillOut(BaseModel):
    tx_hash: str
    block_number: int
    log_index: int
    item_log_index: int = Field(
        description="The log the gateway records: the Fill of an order, the StrategyFilled "
        "of a strategy's legs"
    )
    batch_id: str
    wallet: str
    digest: str
    instrument: str
    side: str
    amount: str = Field(description="Base token units")
    quote: str = Field(description="Quote token units")
    kind: str
    signer: str = Field(
        description="Who signed the item: the wallet's owner, a trading key or the contract "
        "owner (empty when no accepted signer was found)"
    )
    signed_by: str = Field(description="owner, trading_key or contract_owner (empty: none)")
    ok: bool
    problems: list[str]
    gateway_fills: list[str]


class AuditLogStatusOut(BaseModel):
    ok: bool
    records: int
    problems: list[str]


class StoreAuditOut(BaseModel):
    settled_fills: int
    matched: int
    audit_log: AuditLogStatusOut


class AuditCountsOut(BaseModel):
    batches: int
    fills: int
    fills_ok: int
    fills_with_problems: int
    problems: int


class AuditReportOut(BaseModel):
    ok: bool
    chain_id: int
    settlement: str
    from_block: int
    to_block: int
    counts: AuditCountsOut
    store: StoreAuditOut | None
    problems: list[str]
    fills: list[AuditedFillOut]


class AuditRecordOut(BaseModel):
    seq: int
    kind: str
    entity_id: str
    payload: str = Field(description="Canonical JSON, exactly as hashed")
    created_at: str
    prev_hash: str
    hash: str


class AuditLogPageOut(BaseModel):
    items: list[AuditRecordOut]
    next_after: int | None = Field(description="Pass as `after` for the next page")


def _visible(request: Request) -> frozenset[str] | None:
    principal = getattr(request.state, "principal", None)
    accounts: frozenset[str] | None = getattr(principal, "accounts", None)
    return None if accounts is None else frozenset(a.lower() for a in accounts)


def _fills(fills: tuple[AuditedFill, ...], visible: frozenset[str] | None) -> list[AuditedFill]:
    return [f for f in fills if visible is None or f.wallet.lower() in visible]


async def _report(rt: Runtime) -> AuditReport | None:
    service = rt.settlement
    if service is None:
        return None
    sender = service.sender
    return await asyncio.to_thread(
        verify,
        sender.w3,
        sender.settlement.address,
        engine=rt.read_engine,
        catalogue=service.onchain.catalogue,
        tokens=service.onchain.tokens,
    )


def _unavailable() -> JSONResponse:
    return JSONResponse(
        error_body(
            "audit_unavailable",
            "this gateway settles on no chain: there is nothing to verify against",
        ),
        status_code=503,
    )


@router.get(
    "/verify",
    response_model=AuditReportOut,
    responses=UNAVAILABLE,
    summary="Verify every on-chain fill against its signature, the store and the audit log",
)
async def get_verify(request: Request, rt: RuntimeDep) -> AuditReportOut | JSONResponse:
    report = await _report(rt)
    if report is None:
        return _unavailable()
    body = report.to_json()
    visible = _visible(request)
    if visible is not None:
        # a caller limited to some accounts sees their fills, and of the problems no fill
        # carries only those naming no stored fill (another account's)
        fills = _fills(report.fills, visible)
        body["fills"] = [f.to_json() for f in fills]
        body["problems"] = [p for p in body["problems"] if not p.startswith("fill ")]
        body["counts"].update(
            fills=len(fills),
            fills_ok=sum(1 for f in fills if f.ok),
            fills_with_problems=sum(1 for f in fills if not f.ok),
            problems=len(body["problems"]),
        )
    return AuditReportOut.model_validate(body)


@router.get(
    "/fills",
    response_model=list[AuditedFillOut],
    responses=UNAVAILABLE,
    summary="Every on-chain fill as the auditor rebuilt it, with its problems",
)
async def get_fills(request: Request, rt: RuntimeDep) -> list[AuditedFillOut] | JSONResponse:
    report = await _report(rt)
    if report is None:
        return _unavailable()
    return [
        AuditedFillOut.model_validate(f.to_json()) for f in _fills(report.fills, _visible(request))
    ]


@router.get("/log", response_model=AuditLogPageOut, summary="The audit log's records, paged")
async def get_log(
    rt: RuntimeDep,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="Records after this seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditLogPageOut:
    def read() -> list[AuditRecordOut]:
        with rt.read_engine.connect() as connection:
            return [
                AuditRecordOut(
                    seq=r.seq,
                    kind=r.kind,
                    entity_id=r.entity_id,
                    payload=r.payload,
                    created_at=r.created_at.isoformat(),
                    prev_hash=r.prev_hash,
                    hash=r.hash,
                )
                for r in audit_records(connection, after, limit)
            ]

    items = await asyncio.to_thread(read)
    return AuditLogPageOut(items=items, next_after=items[-1].seq if len(items) == limit else None)
