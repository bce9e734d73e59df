"""Operator risk controls: account limits and kill switches.

Access control for these routes arrives with the access issue (operator role); today they
are open to whoever reaches the API, like the rest of it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from eth_utils import to_checksum_address
from fastapi import APIRouter, Depends, Path, Request
from pydantic import Field

from gateway.api.access import ensure_account
from gateway.api.dependencies import runtime
from gateway.api.schemas import Address, DecimalText, ErrorOut, Symbol, _Strict
from gateway.domain.errors import DomainError
from gateway.domain.foreign_text import NO_CONTROL_CHARACTERS
from gateway.risk.pretrade import RiskLimits
from gateway.runtime import Runtime

router = APIRouter(prefix="/v1/risk", tags=["risk controls"])
RuntimeDep = Annotated[Runtime, Depends(runtime)]
ERRORS: dict[int | str, dict[str, Any]] = {422: {"model": ErrorOut}}


class RiskLimitsBody(_Strict):
    """An account's limits; null switches a limit off."""

    max_order_notional: DecimalText | None = None
    max_open_notional: DecimalText | None = None
    max_position: DecimalText | None = None
    max_open_orders: int | None = Field(default=None, ge=1)
    orders_per_second: DecimalText = "50"
    order_burst: int = Field(default=100, ge=1)
    allowed_instruments: list[Symbol] | None = None
    price_band_bps: int = Field(default=1_000, ge=1, le=100_000)
    option_price_band_bps: int = Field(default=5_000, ge=1, le=100_000)

    def to_limits(self) -> RiskLimits:
        return RiskLimits.from_json(self.model_dump())


class LimitsOut(_Strict):
    account: str
    custom: bool  # False: the gateway's defaults apply
    limits: dict[str, Any]


class KillSwitchIn(_Strict):
    engaged: bool
    reason: str | None = Field(default=None, max_length=200, pattern=NO_CONTROL_CHARACTERS)


class KillSwitchOut(_Strict):
    scope: str
    engaged: bool
    reason: str | None
    cancelled_orders: int


def _limits_out(rt: Runtime, account: str) -> LimitsOut:
    controls = rt.risk_controls.controls
    return LimitsOut(
        account=account,
        custom=account in controls.account_limits,
        limits=controls.limits(account).to_json(),
    )


@router.get("/limits/{account}", response_model=LimitsOut, summary="An account's risk limits")
async def get_limits(
    account: Annotated[Address, Path()], rt: RuntimeDep, request: Request
) -> LimitsOut:
    await ensure_account(request, account)
    return _limits_out(rt, account)


@router.put(
    "/limits/{account}",
    response_model=LimitsOut,
    responses=ERRORS,
    summary="Set an account's risk limits (persisted and audited)",
)
async def put_limits(
    account: Annotated[Address, Path()], body: RiskLimitsBody, rt: RuntimeDep
) -> LimitsOut:
    if Decimal(body.orders_per_second) <= 0:
        raise DomainError("orders_per_second must be positive", field="orders_per_second")
    await rt.risk_controls.set_limits(account, body.to_limits())
    return _limits_out(rt, account)


@router.delete("/limits/{account}", response_model=LimitsOut, summary="Back to the default limits")
async def delete_limits(account: Annotated[Address, Path()], rt: RuntimeDep) -> LimitsOut:
    await rt.risk_controls.set_limits(account, None)
    return _limits_out(rt, account)


@router.get("/kill-switches", response_model=list[KillSwitchOut], summary="Engaged kill switches")
async def kill_switches(rt: RuntimeDep) -> list[KillSwitchOut]:
    return [
        KillSwitchOut(scope=s.scope, engaged=s.engaged, reason=s.reason, cancelled_orders=0)
        for s in rt.risk_controls.kill_switches()
    ]


@router.put(
    "/kill-switches/{scope}",
    response_model=KillSwitchOut,
    responses=ERRORS,
    summary="Engage or release a kill switch: `global` or an account address",
    description="Engaging refuses every new order in scope and cancels its working orders.",
)
async def put_kill_switch(
    scope: Annotated[str, Path(pattern=r"^(global|0x[0-9a-fA-F]{40})$")],
    body: KillSwitchIn,
    rt: RuntimeDep,
) -> KillSwitchOut:
    if scope != "global":
        scope = to_checksum_address(scope)
    state = await rt.risk_controls.set_kill_switch(scope, body.engaged, body.reason)
    return KillSwitchOut(
        scope=state.scope,
        engaged=state.engaged,
        reason=state.reason,
        cancelled_orders=state.cancelled_orders,
    )
