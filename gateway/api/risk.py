"""Risk reads: an account's live risk, the operator's whole book, and what-if.

Analytics (Greeks, VaR, liquidation prices) are estimates computed in floating point; they
travel as decimal strings rounded to 8 significant places after the point, like every
other number of this API, so no client parses a binary float.
"""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import Field

from gateway.api.access import ensure_account
from gateway.api.dependencies import runtime
from gateway.api.schemas import Address, DecimalText, ErrorOut, OrderIn, StrategyIn, Symbol, _Strict
from gateway.domain.errors import DomainError
from gateway.domain.orders import OrderSpec
from gateway.oms.risk_controls import policy_to_json
from gateway.risk.account_risk import AccountRiskReport, RiskSettings, Unavailable
from gateway.risk.hedging import DeltaHedgePolicy
from gateway.risk.liquidation import LiquidationPrice
from gateway.risk.pricing import Greeks
from gateway.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["risk"])
RuntimeDep = Annotated[Runtime, Depends(runtime)]
ERRORS: dict[int | str, dict[str, Any]] = {422: {"model": ErrorOut}}


def number(value: float | None, places: int = 8) -> str | None:
    """A float analytic as a decimal string; None for a missing or non-finite value."""
    if value is None or not math.isfinite(value):
        return None
    return f"{Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-places)).normalize():f}"


def _greeks(g: Greeks) -> dict[str, str | None]:
    return {
        "value": number(float(g.price)),
        "delta": number(float(g.delta)),
        "gamma": number(float(g.gamma)),
        "vega": number(float(g.vega)),
        "theta": number(float(g.theta)),
        "rho": number(float(g.rho)),
    }


def _liquidation(price: LiquidationPrice) -> dict[str, Any]:
    return {
        "underlying": price.underlying,
        "scope": price.scope,
        "current": number(price.current),
        "below": number(price.below),
        "above": number(price.above),
        "liquidatable": price.liquidatable,
        "distance": number(price.distance),
    }


def _family(method: str) -> str:
    """The stable method name (historical, delta_gamma, monte_carlo); the technique detail
    (e.g. delta_gamma_saddlepoint) is reported beside it."""
    for family in ("delta_gamma", "monte_carlo", "historical"):
        if method.startswith(family):
            return family
    return method


def report_json(report: AccountRiskReport) -> dict[str, Any]:
    market = report.market
    liquidation = report.liquidation
    by_instrument = {p.scope: p for p in liquidation.by_position}
    onchain = report.onchain
    return {
        "as_of": market.at.isoformat(),
        "market": {
            "spots": {u: f"{s:f}" for u, s in sorted(market.spots.items())},
            "vols": {u: number(v) for u, v in sorted(market.vols.items())},
            "option_vols": {k: number(v) for k, v in sorted(market.option_vols.items())},
        },
        "positions": [
            {
                "instrument": p.position.instrument,
                "venue": p.position.venue,
                "kind": p.position.kind.value,
                "quantity": f"{p.position.quantity:f}",
                "entry_price": f"{p.position.entry_price:f}",
                **_greeks(p.greeks),
                "liquidation": _liquidation(by_instrument[p.position.instrument])
                if p.position.instrument in by_instrument
                else None,
            }
            for p in report.positions
        ],
        "unpriced": list(report.unpriced),
        "greeks": {u: _greeks(g) for u, g in sorted(report.greeks.items())},
        "var": [
            {"method": m.method, "available": False, "reason": m.reason}
            if isinstance(m, Unavailable)
            else {
                "method": _family(m.method),
                "technique": m.method,
                "available": True,
                "confidence": number(m.confidence),
                "horizon_days": m.horizon_days,
                "var": number(m.var, 2),
                "expected_shortfall": number(m.expected_shortfall, 2),
                "scenarios": m.scenarios,
            }
            for m in report.measures
        ],
        "margin": {
            "equity": number(liquidation.equity, 2),
            "maintenance": number(liquidation.maintenance, 2),
            "usage": number(
                liquidation.maintenance / liquidation.equity if liquidation.equity > 0 else None,
                6,
            ),
            "liquidatable": liquidation.liquidatable,
            "onchain": None
            if onchain is None
            else {
                "required": str(onchain.required),
                "available": str(onchain.available),
                "ok": onchain.ok,
                # oracle prices (quote base units per whole token) at which the rule flips
                "margin_calls": {
                    symbol: {
                        "outcome": call.outcome.value,
                        "current_price": None
                        if call.current_price is None
                        else str(call.current_price),
                        "threshold_price": None if call.threshold is None else str(call.threshold),
                    }
                    for symbol, call in sorted(report.margin_calls.items())
                },
            },
        },
        "liquidation": [_liquidation(p) for _, p in sorted(liquidation.by_underlying.items())],
    }


def _settings(rt: Runtime, confidence: float | None, horizon_days: int | None) -> RiskSettings:
    base = rt.risk.settings
    return RiskSettings(
        confidence=base.confidence if confidence is None else confidence,
        horizon_days=base.horizon_days if horizon_days is None else horizon_days,
        monte_carlo_paths=base.monte_carlo_paths,
        seed=base.seed,
        min_history=base.min_history,
        correlation=base.correlation,
        rates=base.rates,
    )


Confidence = Annotated[float | None, Query(gt=0.5, lt=1.0, description="e.g. 0.99")]
Horizon = Annotated[int | None, Query(ge=1, le=30, description="days")]


@router.get(
    "/accounts/{address}/risk",
    responses=ERRORS,
    summary="An account's live risk: Greeks, VaR/ES, margin, liquidation prices",
)
async def account_risk(
    address: Annotated[Address, Path()],
    rt: RuntimeDep,
    request: Request,
    confidence: Confidence = None,
    horizon_days: Horizon = None,
) -> dict[str, Any]:
    await ensure_account(request, address)
    report = await rt.risk.account(address, _settings(rt, confidence, horizon_days))
    return {"account": address, **report_json(report)}


@router.get(
    "/risk/book",
    responses=ERRORS,
    summary="The operator's whole book: every account plus the CEX venue accounts",
)
async def operator_book(
    rt: RuntimeDep, confidence: Confidence = None, horizon_days: Horizon = None
) -> dict[str, Any]:
    report = await rt.risk.operator_book(_settings(rt, confidence, horizon_days))
    return {**report_json(report), "inventory": await _inventory_json(rt)}


async def _inventory_json(rt: Runtime) -> dict[str, Any] | None:
    """The operator's inventory wallet against its exchange hedges (None without one)."""
    inventory = rt.orders.inventory
    if inventory is None:
        return None
    marks = {
        symbol: rt.market_data.book(symbol, depth=1).mid for symbol in rt.market_data.instruments
    }
    lines = await asyncio.to_thread(inventory.book, marks)

    def text(value: Decimal | None) -> str | None:
        return None if value is None else str(value)

    return {
        "wallet": inventory.wallet,
        "owner": inventory.owner,
        "spread_bps": str(inventory.spread_bps),
        "lines": [
            {
                "instrument": line.instrument,
                "wallet_position": str(line.wallet_position),
                "pending_position": str(line.pending_position),
                "hedge_position": str(line.hedge_position),
                "net_position": str(line.net_position),
                "wallet_cash": str(line.wallet_cash),
                "hedge_cash": str(line.hedge_cash),
                "fees": str(line.fees),
                "mark": text(line.mark),
                "pnl": text(line.pnl),
            }
            for line in lines
        ],
    }


class WhatIfIn(_Strict):
    """A proposed order or strategy: the same body as POST /v1/orders or /v1/strategies."""

    order: OrderIn | None = None
    strategy: StrategyIn | None = None
    confidence: float | None = Field(default=None, gt=0.5, lt=1.0)
    horizon_days: int | None = Field(default=None, ge=1, le=30)

    def to_spec(self) -> OrderSpec:
        if (self.order is None) == (self.strategy is None):
            raise DomainError("give exactly one of order and strategy", field="order")
        proposal = self.order or self.strategy
        assert proposal is not None
        return proposal.to_spec()


@router.post(
    "/risk/what-if",
    responses=ERRORS,
    summary="Risk before and after a proposed order fills, and what the pre-trade check says",
)
async def what_if(body: WhatIfIn, rt: RuntimeDep, request: Request) -> dict[str, Any]:
    spec = body.to_spec()
    await ensure_account(request, spec.account)
    rt.orders.validate(spec)
    result = await rt.risk.what_if(spec, _settings(rt, body.confidence, body.horizon_days))
    rejection = result.rejection
    return {
        "account": spec.account,
        "pre_trade": {"accepted": True}
        if rejection is None
        else {
            "accepted": False,
            "code": rejection.code,
            "message": rejection.message,
            "field": rejection.field,
        },
        "assumed_fill_prices": {k: f"{v:f}" for k, v in sorted(result.fill_prices.items())},
        "before": report_json(result.before),
        "after": report_json(result.after),
    }


class HedgePolicyIn(_Strict):
    instrument: Symbol
    band: DecimalText
    target: str = Field(default="0", pattern=r"^-?[0-9]{1,30}(\.[0-9]{1,18})?$")
    max_order: DecimalText | None = None


@router.put(
    "/risk/hedging/{account}",
    responses=ERRORS,
    summary="Turn automatic delta hedging on for an account (persisted and audited)",
)
async def put_hedging(
    account: Annotated[Address, Path()], body: HedgePolicyIn, rt: RuntimeDep
) -> dict[str, Any]:
    instrument = rt.orders.catalogue.get(body.instrument, field="instrument")
    if instrument.kind.value == "option" or getattr(instrument, "inverse", False):
        raise DomainError(
            "hedge with a linear instrument: a spot pair or a linear perpetual",
            field="instrument",
        )
    try:
        policy = DeltaHedgePolicy(
            body.instrument,
            Decimal(body.band),
            Decimal(body.target),
            None if body.max_order is None else Decimal(body.max_order),
        )
    except ValueError as error:
        raise DomainError(str(error), field="band") from None
    await rt.risk_controls.set_hedge_policy(account, policy)
    return {"account": account, "enabled": True, "policy": policy_to_json(policy)}


@router.delete("/risk/hedging/{account}", summary="Turn automatic delta hedging off")
async def delete_hedging(account: Annotated[Address, Path()], rt: RuntimeDep) -> dict[str, Any]:
    await rt.risk_controls.set_hedge_policy(account, None)
    return {"account": account, "enabled": False, "policy": None}


@router.get("/risk/hedging/{account}", summary="An account's hedge policy")
async def get_hedging(
    account: Annotated[Address, Path()], rt: RuntimeDep, request: Request
) -> dict[str, Any]:
    await ensure_account(request, account)
    policy = rt.risk_controls.hedge_policies.get(account)
    return {
        "account": account,
        "enabled": policy is not None,
        "policy": None if policy is None else policy_to_json(policy),
    }
