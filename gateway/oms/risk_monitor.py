"""The risk monitor: re-prices accounts when the market moves, alerts, and delta-hedges.

It wakes on every consolidated-book update of an underlying (conflated: a burst of ticks is
one wake-up) and re-prices when a mid moved, and at least every `interval` seconds (an order
resting away from the touch changes the book, not the mid: market makers replacing quotes
many times a second must not re-price every account each time). It records the spot mids
for historical VaR, and for each account with positions computes margin usage (the on-chain
rule where the account has a wallet, the cross-margin view otherwise; the worse of the two
counts). A change of alert level is published on the event stream (`risk.margin_alert`,
delivered to the account's WebSocket subscribers) and POSTed to the webhook. Accounts with a
hedge policy get their delta traded back inside its band through the hedge router.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from gateway.domain.clock import Clock
from gateway.domain.errors import DomainError
from gateway.domain.instruments import InstrumentKind
from gateway.domain.orders import OrderSpec, OrderType, Side, TimeInForce
from gateway.oms.ids import new_id
from gateway.oms.risk_view import RiskView
from gateway.oms.service import OrderService
from gateway.oms.smart_execution import SmartExecutor
from gateway.oms.webhook import WebhookSender
from gateway.risk.account_risk import risk_positions
from gateway.risk.alerts import MarginAlert, MarginAlerts, usage_of
from gateway.risk.hedging import DeltaHedgePolicy, HedgeOrder, hedge_order
from gateway.risk.liquidation import CrossMarginAccount, margin_curve
from gateway.risk.portfolio import PortfolioArrays
from gateway.venues.market_data import MarketDataHub

log = logging.getLogger("gateway.risk")
BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class MarginReading:
    account: str
    required: Decimal
    available: Decimal
    basis: str  # "onchain" or "cross"
    delta: dict[str, Decimal]  # by underlying, in underlying units


@dataclass(frozen=True, slots=True)
class HedgeResult:
    account: str
    order: HedgeOrder
    venue: str | None
    gateway_order_id: str | None
    filled: Decimal
    average_price: Decimal | None
    error: str | None = None


class HedgeRouter:
    """Executes a hedge through the smart order router: a gateway order (risk-checked and
    stored like any other), immediate-or-cancel, limited to `slippage_bps` beyond the
    consolidated mid, split across venues by the router, its fills recorded."""

    def __init__(
        self,
        orders: OrderService,
        hub: MarketDataHub,
        smart: SmartExecutor,
        *,
        slippage_bps: Decimal = Decimal(50),
    ) -> None:
        self.orders = orders
        self.hub = hub
        self.smart = smart
        self.slippage_bps = slippage_bps

    async def execute(self, account: str, hedge: HedgeOrder) -> HedgeResult:
        mid = self.hub.book(hedge.instrument, depth=1).mid
        if mid is None:
            return HedgeResult(account, hedge, None, None, Decimal(0), None, "no_reference_price")
        tick = self.orders.catalogue.get(hedge.instrument).rules.tick_size
        move = mid * self.slippage_bps / BPS
        raw = mid + move if hedge.side is Side.BUY else mid - move
        price = (raw / tick).to_integral_value() * tick  # protective limit on the tick grid
        spec = OrderSpec(
            account=account,
            client_order_id=new_id("hedge"),
            side=hedge.side,
            order_type=OrderType.LIMIT,
            quantity=hedge.quantity,
            time_in_force=TimeInForce.IOC,
            instrument=hedge.instrument,
            price=price,
        )
        try:
            submitted = await self.orders.submit(spec, routed=True)
        except DomainError as error:
            return HedgeResult(account, hedge, None, None, Decimal(0), None, error.code)
        done = await self.smart.execute(submitted.order)
        venues = ",".join(c.venue for c in done.children if c.filled > 0) or None
        errors = [c.error for c in done.children if c.error]
        return HedgeResult(
            account,
            hedge,
            venues,
            done.order.id,
            done.order.filled_quantity,
            done.order.average_price,
            None if done.order.filled_quantity > 0 or not errors else errors[0],
        )


@dataclass
class RiskMonitor:
    view: RiskView
    hub: MarketDataHub
    clock: Clock
    publish: Callable[[dict[str, Any]], None]
    alerts: MarginAlerts = field(default_factory=MarginAlerts)
    webhook: WebhookSender | None = None
    router: HedgeRouter | None = None
    interval: float = 1.0
    policies: dict[str, DeltaHedgePolicy] = field(default_factory=dict)
    readings: dict[str, MarginReading] = field(default_factory=dict)
    hedges: list[HedgeResult] = field(default_factory=list)
    ticks: int = 0

    async def run(self) -> None:
        spots = frozenset(
            i.symbol
            for i in self.view.catalogue
            if i.kind in (InstrumentKind.SPOT, InstrumentKind.PERPETUAL)
        )
        subscription = self.hub.subscribe(spots, depth=1)  # it reads the mids
        loop = asyncio.get_running_loop()
        mids: dict[str, Decimal | None] = {}
        due = loop.time()
        try:
            while True:
                moved = False
                with contextlib.suppress(TimeoutError):
                    for book in await asyncio.wait_for(subscription.next(), self.interval):
                        moved |= mids.get(book.instrument, book) != book.mid
                        mids[book.instrument] = book.mid
                if not moved and loop.time() < due:
                    continue
                due = loop.time() + self.interval
                try:
                    await self.tick()
                except Exception:  # the monitor must outlive one bad tick
                    log.exception("risk monitor tick failed")
        finally:
            self.hub.unsubscribe(subscription)

    async def tick(self) -> list[MarginAlert]:
        """One pass over every account with positions; returns the alerts it raised."""
        now = self.clock.now()
        market = self.view.market.snapshot(now)
        self.view.history.record(now, dict(market.spots))
        raised: list[MarginAlert] = []
        for account in self.view.ledger.accounts():
            reading = await self.reading(account)
            if reading is None:
                continue
            self.readings[account] = reading
            alert = self.alerts.update(account, reading.required, reading.available, now)
            if alert is not None:
                raised.append(alert)
                payload = alert.to_json()
                payload["alert"]["basis"] = reading.basis  # type: ignore[index]
                self.publish(payload)
                if self.webhook is not None:
                    self.webhook.send(payload)
            policy = self.policies.get(account)
            if policy is not None and self.router is not None:
                await self._hedge(account, policy, reading)
        self.ticks += 1
        return raised

    async def reading(self, account: str) -> MarginReading | None:
        view = self.view
        exposure = view.ledger.peek(account)
        if exposure is None:
            return None
        positions = risk_positions(exposure.positions, view.catalogue)
        if not positions:
            return None
        market = view.market.snapshot(view.clock.now())
        priced = [p for p in positions if p.underlying in market.spots]
        if not priced:
            return None
        collateral, onchain = await view.collateral_of(account, exposure)
        usable = tuple(
            c for c in collateral if c.underlying is None or c.underlying in market.spots
        )
        arrays = PortfolioArrays.build(priced, market)
        greeks = arrays.greeks_by_underlying()
        delta = {u: Decimal(str(round(float(g.delta), 12))) for u, g in greeks.items()}
        cross = CrossMarginAccount(tuple(priced), usable, view.settings.rates)
        first = arrays.underlyings[0]
        equity, maintenance = margin_curve(
            cross, market, first, np.array([float(market.spots[first])])
        )
        required = Decimal(str(round(float(maintenance[0]), 6)))
        available = Decimal(str(round(float(equity[0]), 6)))
        basis = "cross"
        if onchain is not None:
            on_required, on_available = Decimal(onchain.required), Decimal(onchain.available)
            if usage_of(on_required, on_available) > usage_of(required, available):
                required, available, basis = on_required, on_available, "onchain"
        return MarginReading(account, required, available, basis, delta)

    async def _hedge(self, account: str, policy: DeltaHedgePolicy, reading: MarginReading) -> None:
        assert self.router is not None
        instrument = self.view.catalogue.get(policy.instrument)
        delta = reading.delta.get(instrument.base.symbol, Decimal(0))
        order = hedge_order(delta, policy, instrument)
        if order is None:
            return
        result = await self.router.execute(account, order)
        self.hedges.append(result)
        event = {
            "type": "risk.hedge",
            "account": account,
            "hedge": {
                "instrument": order.instrument,
                "side": order.side.value,
                "quantity": str(order.quantity),
                "delta_before": str(order.delta_before),
                "venue": result.venue,
                "order_id": result.gateway_order_id,
                "filled": str(result.filled),
                "average_price": None
                if result.average_price is None
                else str(result.average_price),
                "error": result.error,
            },
        }
        self.publish(event)
        if result.error:
            log.warning("hedge for %s failed: %s", account, result.error)
