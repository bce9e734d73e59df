"""Settlement visibility: a batch and its fills, and each fill of an order with where it
stands on chain (transaction, block, log index)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from gateway.api.access import can_see, ensure_order_visible, principal_of
from gateway.api.runtime import Runtime, runtime
from gateway.api.schemas import ErrorOut
from gateway.domain.errors import DomainError
from gateway.oms.service import OrderNotFound
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


class BatchOut(BaseModel):
    id: str
    status: str
    chain_batch_id: str | None
    created_at: str
    updated_at: str | None
    tx_hash: str | None
    block_number: int | None
    block_hash: str | None
    operator_nonce: int | None
    gas_used: int | None
    reason: str | None
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
    return BatchOut(
        id=batch.id,
        status=batch.status,
        chain_batch_id=batch.chain_batch_id,
        created_at=batch.created_at.isoformat(),
        updated_at=None if batch.updated_at is None else batch.updated_at.isoformat(),
        tx_hash=batch.tx_hash,
        block_number=batch.block_number,
        block_hash=batch.block_hash,
        operator_nonce=batch.operator_nonce,
        gas_used=batch.gas_used,
        reason=batch.reason,
        fills=[_fill(f) for f in fills],
    )


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
