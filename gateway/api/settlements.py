"""Settlement visibility: the recent batches (operator and auditor), a batch and its fills,
and each fill of an order with where it stands on chain (transaction, block, log index)."""

from __future__ import annotations

import asyncio
import base64
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from gateway.api.access import can_see, ensure_order_visible, principal_of
from gateway.api.dependencies import runtime
from gateway.api.schemas import ErrorOut
from gateway.domain.errors import DomainError
from gateway.oms.service import OrderNotFound
from gateway.runtime import Runtime
from gateway.store import order_repository as orders_repo
from gateway.store import settlement_repository as store

router = APIRouter(prefix="/v1", tags=["settlement"])
RuntimeDep = Annotated[Runtime, Depends(runtime)]
Id = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_]+$")]
ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}}


class BatchNotFound(DomainError):
    code = "batch_not_found"


class FillOut(BaseModel):
    id: str
    order_id: str
    account: str
    instrument: str
    side: str
    quantity: str
    price: str
    fee: str
    venue: str
    trade_id: str | None
    executed_at: str
    settlement: str
    batch_id: str | None
    tx_hash: str | None
    block_number: int | None
    log_index: int | None
    settlement_reason: str | None


class _BatchFields(BaseModel):
    """What a batch's row says, as both the batch and the list of batches give it."""

    id: str
    chain_batch_id: str | None
    created_at: str
    updated_at: str | None
    tx_hash: str | None
    block_number: int | None
    block_hash: str | None
    operator_nonce: int | None
    gas_used: int | None
    reason: str | None


def _batch_fields(batch: store.BatchRecord) -> dict[str, Any]:
    return {
        "id": batch.id,
        "chain_batch_id": batch.chain_batch_id,
        "created_at": batch.created_at.isoformat(),
        "updated_at": None if batch.updated_at is None else batch.updated_at.isoformat(),
        "tx_hash": batch.tx_hash,
        "block_number": batch.block_number,
        "block_hash": batch.block_hash,
        "operator_nonce": batch.operator_nonce,
        "gas_used": batch.gas_used,
        "reason": batch.reason,
    }


class BatchOut(_BatchFields):
    status: str
    fills: list[FillOut]


def _fill(entry: store.SettlementFill) -> FillOut:
    f = entry.fill
    return FillOut(
        id=f.id,
        order_id=f.order_id,
        account=f.account,
        instrument=f.instrument,
        side=f.side.value,
        quantity=format(f.quantity, "f"),
        price=format(f.price, "f"),
        fee=format(f.fee, "f"),
        venue=f.venue,
        trade_id=f.trade_id,
        executed_at=f.executed_at.isoformat(),
        settlement=f.settlement.value,
        batch_id=entry.batch_id,
        tx_hash=f.tx_hash,
        block_number=entry.block_number,
        log_index=entry.log_index,
        settlement_reason=entry.reason,
    )


BatchStatus = Literal["building", "sent", "confirmed", "reverted", "reorged", "abandoned"]
# what may still settle: not yet sent, sent and unconfirmed, or undone by a reorg
PENDING: tuple[BatchStatus, ...] = ("building", "sent", "reorged")
STATUSES: tuple[BatchStatus, ...] = (*PENDING, "confirmed", "reverted", "abandoned")
BatchFilter = Literal[
    "building", "sent", "confirmed", "reverted", "reorged", "abandoned", "pending"
]


class BatchSummaryOut(_BatchFields):
    status: BatchStatus
    fills: int = Field(description="Fills the batch holds (an abandoned one gave its back)")
    reorgs: int = Field(description="Reorgs that took this batch's block away")
    reorg_healed: bool = Field(
        description="A reorg took this batch's block away and every fill it made pending "
        "again has settled since"
    )


class SettlementCountsOut(BaseModel):
    pending: int = Field(description="building, sent or reorged: may still settle")
    confirmed: int
    reverted: int
    abandoned: int
    building: int
    sent: int
    reorged: int


class BatchPageOut(BaseModel):
    items: list[BatchSummaryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")
    counts: SettlementCountsOut = Field(description="Every batch, whatever the filter")


def _encode_batch_cursor(batch_id: str) -> str:
    return base64.urlsafe_b64encode(f"b:{batch_id}".encode()).decode().rstrip("=")


def _decode_batch_cursor(cursor: str) -> str:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    prefix, _, batch_id = text.partition(":")
    if prefix != "b" or not batch_id or not batch_id.replace("_", "").isalnum():
        raise DomainError(
            "cursor is not one this API gave out", field="cursor", code="invalid_cursor"
        )
    return batch_id


def _counts(by_status: dict[str, int]) -> SettlementCountsOut:
    return SettlementCountsOut(
        pending=sum(by_status.get(s, 0) for s in PENDING),
        confirmed=by_status.get("confirmed", 0),
        reverted=by_status.get("reverted", 0),
        abandoned=by_status.get("abandoned", 0),
        building=by_status.get("building", 0),
        sent=by_status.get("sent", 0),
        reorged=by_status.get("reorged", 0),
    )


@router.get(
    "/settlements",
    response_model=BatchPageOut,
    responses={422: {"model": ErrorOut}},
    summary="Recent settlement batches, newest first (operator and auditor)",
)
async def list_settlements(
    rt: RuntimeDep,
    status: Annotated[
        BatchFilter | None,
        Query(description="One status, or `pending` for building, sent and reorged"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=80)] = None,
) -> BatchPageOut:
    before = None if cursor is None else _decode_batch_cursor(cursor)
    statuses: tuple[str, ...] = (
        STATUSES if status is None else PENDING if status == "pending" else (status,)
    )

    def read() -> BatchPageOut:
        with rt.read_engine.connect() as connection:
            page, more = store.list_batches(connection, statuses, before, limit)
            ids = [b.id for b in page]
            fills = store.fill_counts(connection, ids) if ids else {}
            reorgs = store.reorgs_of(connection, ids) if ids else {}
            counts = _counts(store.count_by_status(connection))
        items = [
            BatchSummaryOut(
                **_batch_fields(b),
                status=b.status,  # one of STATUSES, as stored
                fills=fills.get(b.id, 0),
                reorgs=reorgs.get(b.id, (0, False))[0],
                reorg_healed=reorgs.get(b.id, (0, False))[1],
            )
            for b in page
        ]
        next_cursor = _encode_batch_cursor(page[-1].id) if more and page else None
        return BatchPageOut(items=items, next_cursor=next_cursor, counts=counts)

    return await asyncio.to_thread(read)


@router.get("/settlements/{batch_id}", response_model=BatchOut, responses=ERRORS)
async def get_settlement(batch_id: Id, rt: RuntimeDep, request: Request) -> BatchOut:
    def read() -> tuple[store.BatchRecord | None, list[store.SettlementFill]]:
        with rt.read_engine.connect() as connection:
            return store.get_batch(connection, batch_id), store.fills_of_batch(connection, batch_id)

    batch, fills = await asyncio.to_thread(read)
    if batch is None:
        raise BatchNotFound(f"no settlement batch {batch_id!r}", field="batch_id")
    if principal_of(request).accounts is not None:
        # a batch carries many accounts' fills: a caller sees its own, and no batch without any
        fills = [f for f in fills if await can_see(request, f.fill.account)]
        if not fills:
            raise BatchNotFound(f"no settlement batch {batch_id!r}", field="batch_id")
    return BatchOut(**_batch_fields(batch), status=batch.status, fills=[_fill(f) for f in fills])


@router.get("/orders/{order_id}/fills", response_model=list[FillOut], responses=ERRORS)
async def get_order_fills(order_id: Id, rt: RuntimeDep, request: Request) -> list[FillOut]:
    def read() -> tuple[str, list[store.SettlementFill]] | None:
        with rt.read_engine.connect() as connection:
            stored = orders_repo.get_order(connection, order_id)
            if stored is None:
                return None
            return stored.order.spec.account, store.settlement_fills_of_order(connection, order_id)

    found = await asyncio.to_thread(read)
    if found is None:
        raise OrderNotFound(f"no order {order_id!r}", field="order_id")
    account, fills = found
    await ensure_order_visible(request, order_id, account)
    return [_fill(f) for f in fills]
