"""`POST /v1/quote`: the smart order router's split of an order across venues, priced now."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from gateway.api.dependencies import runtime
from gateway.api.schemas import DecimalText, ErrorOut, Symbol, _Strict
from gateway.domain.amounts import canonical
from gateway.domain.orders import Side
from gateway.routing.allocation import Route
from gateway.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["routing"])
RuntimeDep = Annotated[Runtime, Depends(runtime)]


class QuoteIn(_Strict):
    instrument: Symbol
    side: Side
    quantity: DecimalText


def _text(value: Decimal | None) -> str | None:
    return None if value is None else canonical(value.quantize(Decimal(1).scaleb(-12)))


def route_json(found: Route) -> dict[str, Any]:
    return {
        "requested": _text(found.requested),
        "filled": _text(found.filled),
        "unfilled": _text(found.unfilled),
        "average_price": _text(found.average_price),
        "reference_price": _text(found.reference_price),
        "slippage_bps": _text(found.slippage_bps),
        "notional": _text(found.notional),
        "fees": _text(found.fees),
        "gas": _text(found.gas),
        "quote_amount": _text(found.quote_amount),
        "marginal_price": _text(found.marginal_price),
        "legs": [
            {
                "venue": leg.venue,
                "kind": leg.kind,
                "quantity": _text(leg.quantity),
                "average_price": _text(leg.average_price),
                "all_in_price": _text(leg.all_in_price),
                "fee": _text(leg.fee),
                "gas": _text(leg.gas),
                "quote_amount": _text(leg.quote_amount),
            }
            for leg in found.legs
        ],
    }


@router.post(
    "/quote",
    responses={422: {"model": ErrorOut}},
    summary="The smart route for an order now: legs per venue, average price, fees, gas, "
    "slippage against the mid, and the best single venue for comparison",
)
async def quote(body: QuoteIn, rt: RuntimeDep) -> dict[str, Any]:
    instrument = rt.orders.catalogue.get(body.instrument)
    quantity = Decimal(body.quantity)
    instrument.rules.check_quantity(quantity)
    found = await rt.routes.quote(body.instrument, body.side, quantity)
    single = found.best_single_venue
    return {
        "instrument": body.instrument,
        "side": body.side.value,
        "route": route_json(found.smart),
        "best_single_venue": None
        if single is None
        else {"venue": single.legs[0].venue if single.legs else None, **route_json(single)},
    }
