"""The legging report of a legged strategy, as JSON (decimal strings, seconds)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from pydantic import BaseModel

from gateway.routing.legging import LeggingReport


class LegReportOut(BaseModel):
    instrument: str
    side: str
    ratio: int
    opened_quantity: str
    opened_average_price: str | None
    unwound_quantity: str
    unwound_average_price: str | None
    net_quantity: str
    residual: str


class LeggingOut(BaseModel):
    order_id: str
    status: str
    reason: str | None
    completed_units: str
    net_average_price: str | None
    arrival_net_price: str
    legging_cost: str
    max_unhedged_notional: str
    seconds_unhedged: str
    clips: int
    in_ratio: bool
    legs: list[LegReportOut]


def _text(value: Decimal | None) -> str | None:
    if value is None:
        return None
    value = value.quantize(Decimal("1e-8")).normalize()
    return format(value, "f")


def legging_out(report: LeggingReport) -> LeggingOut:
    return LeggingOut(
        order_id=report.parent_id,
        status=report.status.value,
        reason=report.reason,
        completed_units=str(_text(report.completed_units)),
        net_average_price=_text(report.net_average_price),
        arrival_net_price=str(_text(report.arrival_net_price)),
        legging_cost=str(_text(report.legging_cost)),
        max_unhedged_notional=str(_text(report.max_unhedged_notional)),
        seconds_unhedged=str(
            _text(Decimal(report.time_unhedged // timedelta(microseconds=1)) / 10**6)
        ),
        clips=report.clips,
        in_ratio=report.in_ratio,
        legs=[
            LegReportOut(
                instrument=leg.instrument,
                side=leg.side.value,
                ratio=leg.ratio,
                opened_quantity=str(_text(leg.opened_quantity)),
                opened_average_price=_text(leg.opened_average_price),
                unwound_quantity=str(_text(leg.unwound_quantity)),
                unwound_average_price=_text(leg.unwound_average_price),
                net_quantity=str(_text(leg.net_quantity)),
                residual=str(_text(leg.residual)),
            )
            for leg in report.legs
        ],
    )
