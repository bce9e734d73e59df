"""Transaction cost analysis of a parent order: `GET /v1/orders/{id}/tca`.

`id` is a smart-routed order's id or an algo's id. Every amount is a decimal string in the
instrument's quote asset; costs are positive, gains negative (see `gateway.routing.tca`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from gateway.api.access import ensure_order_visible, principal_of
from gateway.api.dependencies import runtime
from gateway.api.schemas import ErrorOut
from gateway.domain.benchmarks import ArrivalPrice
from gateway.oms.execution_analysis import ParentExecution
from gateway.oms.service import OrderNotFound
from gateway.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["orders"])
RuntimeDep = Annotated[Runtime, Depends(runtime)]
ParentId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_]+$")]
ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}, 409: {"model": ErrorOut}}


class ArrivalOut(BaseModel):
    bid: str | None
    ask: str | None
    mid: str | None
    observed_at: str


class ShortfallOut(BaseModel):
    paper_notional: str
    execution_cost: str
    fees: str
    gas: str
    opportunity_cost: str | None
    total: str
    execution_bps: str
    fees_bps: str
    gas_bps: str
    opportunity_bps: str | None
    total_bps: str


class VenueOut(BaseModel):
    venue: str
    quantity: str
    average_price: str
    fees: str
    gas: str
    share: str


class TcaOut(BaseModel):
    parent_id: str
    parent_kind: str
    account: str
    instrument: str
    side: str
    status: str
    finished: bool
    start: str
    end: str
    children: int
    quantity: str
    filled: str
    unfilled: str
    average_price: str | None
    all_in_average_price: str | None
    fees: str
    gas: str
    arrival: ArrivalOut
    mark_mid: str | None
    implementation_shortfall: ShortfallOut | None
    market_vwap: str | None
    market_volume: str | None
    participation: str | None
    vs_vwap_bps: str | None
    venues: list[VenueOut]


def _text(value: Decimal | None, places: int | None = None) -> str | None:
    if value is None:
        return None
    if places is not None:
        value = value.quantize(Decimal(1).scaleb(-places))
    return format(value.normalize() if value == value.to_integral() else value, "f")


def _arrival(arrival: ArrivalPrice) -> ArrivalOut:
    return ArrivalOut(
        bid=_text(arrival.bid),
        ask=_text(arrival.ask),
        mid=_text(arrival.mid),
        observed_at=arrival.observed_at.isoformat(),
    )


def tca_out(report: ParentExecution) -> TcaOut:
    a = report.analysis
    s = a.shortfall
    shortfall = None
    if s is not None:
        shortfall = ShortfallOut(
            paper_notional=str(_text(s.paper_notional, 8)),
            execution_cost=str(_text(s.execution, 8)),
            fees=str(_text(s.fees, 8)),
            gas=str(_text(s.gas, 8)),
            opportunity_cost=_text(s.opportunity, 8),
            total=str(_text(s.total, 8)),
            execution_bps=str(_text(s.execution_bps)),
            fees_bps=str(_text(s.fees_bps)),
            gas_bps=str(_text(s.gas_bps)),
            opportunity_bps=_text(s.opportunity_bps),
            total_bps=str(_text(s.total_bps)),
        )
    return TcaOut(
        parent_id=report.parent_id,
        parent_kind=report.parent_kind,
        account=report.account,
        instrument=report.instrument,
        side=a.side.value,
        status=report.status,
        finished=report.finished,
        start=report.start.isoformat(),
        end=report.end.isoformat(),
        children=report.children,
        quantity=str(_text(a.quantity)),
        filled=str(_text(a.filled)),
        unfilled=str(_text(a.unfilled)),
        average_price=_text(a.average_price, 8),
        all_in_average_price=_text(a.all_in_average_price, 8),
        fees=str(_text(a.fees, 8)),
        gas=str(_text(a.gas, 8)),
        arrival=_arrival(report.benchmark.arrival),
        mark_mid=_text(a.mark),
        implementation_shortfall=shortfall,
        market_vwap=_text(a.market_vwap, 8),
        market_volume=_text(a.market_volume),
        participation=_text(a.participation, 6),
        vs_vwap_bps=_text(a.vs_vwap_bps),
        venues=[
            VenueOut(
                venue=v.venue,
                quantity=str(_text(v.quantity)),
                average_price=str(_text(v.average_price, 8)),
                fees=str(_text(v.fees, 8)),
                gas=str(_text(v.gas, 8)),
                share=str(_text(v.share, 6)),
            )
            for v in a.venues
        ],
    )


@router.get(
    "/orders/{parent_id}/tca",
    response_model=TcaOut,
    responses=ERRORS,
    summary="Transaction cost analysis of a smart-routed order or an algo",
)
async def get_tca(parent_id: ParentId, rt: RuntimeDep, request: Request) -> TcaOut:
    if principal_of(request).accounts is not None:  # before the analysis can tell it exists
        try:
            account = (await rt.orders.get(parent_id)).spec.account
        except OrderNotFound:
            account = (await rt.algos.get(parent_id)).state.spec.account
        await ensure_order_visible(request, parent_id, account)
    return tca_out(await rt.tca.analyse(parent_id))
