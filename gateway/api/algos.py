"""Execution algorithms (parent orders): create, inspect, pause, resume, cancel.

An algo is persisted before it is acknowledged and continues from its persisted state after
a restart (see `gateway.oms.algo_runner`). Its children are smart-routed IOC gateway orders
whose client order id is `<algo id>-<n>`, visible through `/v1/orders`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import AwareDatetime, Field

from gateway.api.access import (
    ensure_account,
    ensure_not_api_key,
    ensure_not_delegate,
    ensure_order_visible,
)
from gateway.api.dependencies import runtime
from gateway.api.schemas import Address, DecimalText, ErrorOut, Symbol, _Strict
from gateway.domain.orders import Side
from gateway.oms.algo_runner import AlgoRequest
from gateway.routing.algos import AlgoKind, AlgoState, InvalidAlgoSpec
from gateway.runtime import Runtime
from gateway.store.algo_repository import StoredAlgo

router = APIRouter(prefix="/v1/algos", tags=["algos"])
RuntimeDep = Annotated[Runtime, Depends(runtime)]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut},
    409: {"model": ErrorOut},
    422: {"model": ErrorOut},
}
AlgoId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_]+$")]


class AlgoIn(_Strict):
    """A parent order. Quantities and prices are decimal strings; `interval` is in seconds
    (a decimal string). Per-kind parameters: `volume_profile` (vwap), `trigger_price`
    (sniper, with `limit_price`); the lot size is the instrument's."""

    kind: AlgoKind
    account: Address
    instrument: Symbol
    side: Side
    quantity: DecimalText
    start: AwareDatetime
    end: AwareDatetime
    limit_price: DecimalText | None = None
    min_child: DecimalText
    max_child: DecimalText
    interval: DecimalText = "60"
    volume_profile: list[DecimalText] = Field(default_factory=list, max_length=1_000)
    participation_rate: DecimalText | None = None
    display_quantity: DecimalText | None = None
    display_variance: DecimalText = "0"
    seed: int = Field(default=0, ge=0, lt=1 << 64)
    trigger_price: DecimalText | None = None

    def to_request(self) -> AlgoRequest:
        seconds = Decimal(self.interval)
        if seconds <= 0 or seconds > 86_400 * 365:
            raise InvalidAlgoSpec(
                "interval must be a positive number of seconds, at most a year", field="interval"
            )
        return AlgoRequest(
            kind=self.kind,
            account=self.account,
            instrument=self.instrument,
            side=self.side,
            quantity=Decimal(self.quantity),
            start=self.start,
            end=self.end,
            min_child=Decimal(self.min_child),
            max_child=Decimal(self.max_child),
            limit_price=_opt(self.limit_price),
            interval=timedelta(microseconds=int(seconds * 1_000_000)),
            volume_profile=tuple(Decimal(v) for v in self.volume_profile),
            participation_rate=_opt(self.participation_rate),
            display_quantity=_opt(self.display_quantity),
            display_variance=Decimal(self.display_variance),
            seed=self.seed,
            trigger_price=_opt(self.trigger_price),
        )


class AlgoOut(_Strict):
    id: str
    kind: AlgoKind
    status: str
    account: str
    instrument: str
    side: Side
    quantity: str
    filled: str
    in_flight: str
    remaining: str
    average_price: str | None
    next_wake_at: datetime | None
    children_sent: int
    open_children: list[str]
    spec: dict[str, Any]
    created_at: datetime | None
    updated_at: datetime | None


def _out(state: AlgoState, stored: StoredAlgo | None = None) -> AlgoOut:
    spec = state.spec
    average = state.average_price
    return AlgoOut(
        id=spec.algo_id,
        kind=spec.kind,
        status=state.status.value,
        account=spec.account,
        instrument=spec.instrument,
        side=spec.side,
        quantity=str(spec.quantity),
        filled=str(state.filled),
        in_flight=str(state.in_flight),
        remaining=str(state.remaining),
        average_price=None if average is None else str(average),
        next_wake_at=state.next_wake_at,
        children_sent=state.child_seq,
        open_children=[c.child_id for c in state.open_children],
        spec=spec.to_json(),
        created_at=None if stored is None else stored.created_at,
        updated_at=None if stored is None else stored.updated_at,
    )


def _opt(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


@router.post(
    "",
    response_model=AlgoOut,
    status_code=201,
    responses=ERRORS,
    summary="Start an execution algorithm (twap, vwap, sniper)",
    description="Validated against the instrument's trading rules and persisted before it "
    "is acknowledged. Errors: `invalid_algo_spec` (with the offending field), "
    "`algo_kind_unsupported` (iceberg, pov), `unknown_instrument`, `validation_error`.",
)
async def create_algo(body: AlgoIn, rt: RuntimeDep, request: Request) -> AlgoOut:
    ensure_not_api_key(request, "start an algo")  # its child orders are not owner-signed
    await ensure_account(request, body.account)
    await ensure_not_delegate(request, body.account, "start an algo")
    state = await rt.algos.create(body.to_request())
    return _out(state, await rt.algos.get(state.spec.algo_id))


@router.get("/{algo_id}", response_model=AlgoOut, responses=ERRORS, summary="An algo's state")
async def get_algo(algo_id: AlgoId, rt: RuntimeDep, request: Request) -> AlgoOut:
    stored = await _visible_algo(request, rt, algo_id)
    return _out(stored.state, stored)


@router.post(
    "/{algo_id}/pause", response_model=AlgoOut, responses=ERRORS, summary="Stop sending children"
)
async def pause_algo(algo_id: AlgoId, rt: RuntimeDep, request: Request) -> AlgoOut:
    await _visible_algo(request, rt, algo_id)
    await rt.algos.pause(algo_id)
    stored = await rt.algos.get(algo_id)
    return _out(stored.state, stored)


@router.post("/{algo_id}/resume", response_model=AlgoOut, responses=ERRORS, summary="Resume")
async def resume_algo(algo_id: AlgoId, rt: RuntimeDep, request: Request) -> AlgoOut:
    await _visible_algo(request, rt, algo_id)
    await rt.algos.resume(algo_id)
    stored = await rt.algos.get(algo_id)
    return _out(stored.state, stored)


@router.post("/{algo_id}/cancel", response_model=AlgoOut, responses=ERRORS, summary="Stop for good")
async def cancel_algo(algo_id: AlgoId, rt: RuntimeDep, request: Request) -> AlgoOut:
    await _visible_algo(request, rt, algo_id)
    await rt.algos.cancel(algo_id)
    stored = await rt.algos.get(algo_id)
    return _out(stored.state, stored)


async def _visible_algo(request: Request, rt: Runtime, algo_id: str) -> StoredAlgo:
    """Another account's algo is not found, like its orders."""
    stored = await rt.algos.get(algo_id)
    await ensure_order_visible(request, algo_id, stored.state.spec.account)
    return stored
