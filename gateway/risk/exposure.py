"""What every account has at risk right now: its open orders and its positions.

The ledger is folded from committed order and fill events (the same events the WebSocket
stream carries), so it never runs ahead of the database; at start-up it is rebuilt from the
store. Orders that passed the pre-trade check but are not committed yet are held as
reservations, so two concurrent orders cannot both squeeze under one limit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from gateway.domain.fills import Fill
from gateway.domain.instruments import InstrumentCatalogue, InstrumentKind
from gateway.domain.orders import Leg, Order, OrderSpec, OrderType, Side
from gateway.domain.positions import Position

OPEN_STATUSES = frozenset({"accepted", "partially_filled"})


@dataclass(frozen=True, slots=True)
class WorkingOrder:
    """The still-open part of an order (or of a reservation)."""

    order_id: str | None  # None while reserved and not committed yet
    client_order_id: str
    instrument: str | None
    legs: tuple[Leg, ...]
    side: Side
    order_type: OrderType
    remaining: Decimal
    price: Decimal | None

    @classmethod
    def of_spec(cls, spec: OrderSpec) -> WorkingOrder:
        return cls(
            None,
            spec.client_order_id,
            spec.instrument,
            spec.legs,
            spec.side,
            spec.order_type,
            spec.quantity,
            spec.price,
        )

    @classmethod
    def of_order(cls, order: Order) -> WorkingOrder:
        spec = order.spec
        return cls(
            order.id,
            spec.client_order_id,
            spec.instrument,
            spec.legs,
            spec.side,
            spec.order_type,
            order.remaining,
            order.price,
        )

    def leg_quantities(self) -> list[tuple[str, Decimal]]:
        """Signed quantity per instrument if the rest fills (strategy legs by ratio)."""
        sign = self.side.sign
        if self.instrument is not None:
            return [(self.instrument, sign * self.remaining)]
        return [
            (leg.instrument, sign * leg.side.sign * leg.ratio * self.remaining) for leg in self.legs
        ]


@dataclass
class AccountExposure:
    """One account's working orders and positions, with running totals so that the checks
    on the hot path cost the same whatever the number of working orders."""

    working: dict[str, WorkingOrder] = field(default_factory=dict)  # by client_order_id
    positions: dict[str, Position] = field(default_factory=dict)  # by instrument
    # Cash moved by fills not yet settled on chain, per asset: what buying spot or options
    # paid (negative) or selling received. Perpetuals move no cash until they are closed.
    unsettled_cash: dict[str, Decimal] = field(default_factory=dict)
    open_notional: Decimal = Decimal(0)  # of the working orders, valued when they came in
    _pending: dict[str, list[Decimal]] = field(default_factory=dict)  # instrument: [buy, sell]
    _notional: dict[str, Decimal] = field(default_factory=dict)  # by client_order_id
    # limit prices of the single-instrument working orders, counted per (instrument, side):
    # the self-trade check reads the best of a few prices, not every working order
    _prices: dict[tuple[str, Side], dict[Decimal, int]] = field(default_factory=dict)

    def best_price(self, instrument: str, side: Side) -> Decimal | None:
        """The highest working buy / lowest working sell limit price on `instrument`."""
        prices = self._prices.get((instrument, side))
        if not prices:
            return None
        return max(prices) if side is Side.BUY else min(prices)

    def position(self, instrument: str) -> Decimal:
        held = self.positions.get(instrument)
        return Decimal(0) if held is None else held.quantity

    def worst_case(self, instrument: str) -> tuple[Decimal, Decimal]:
        """Position if every working buy fills / if every working sell fills."""
        held = self.position(instrument)
        pending = self._pending.get(instrument)
        if pending is None:
            return held, held
        return held + pending[0], held + pending[1]

    def put(self, key: str, order: WorkingOrder, notional: Decimal) -> None:
        self.drop(key)
        self.working[key] = order
        self._notional[key] = notional
        self.open_notional += notional
        if order.instrument is not None and order.price is not None:
            prices = self._prices.setdefault((order.instrument, order.side), {})
            prices[order.price] = prices.get(order.price, 0) + 1
        for symbol, quantity in order.leg_quantities():
            pending = self._pending.setdefault(symbol, [Decimal(0), Decimal(0)])
            pending[0 if quantity > 0 else 1] += quantity

    def drop(self, key: str) -> WorkingOrder | None:
        order = self.working.pop(key, None)
        if order is None:
            return None
        self.open_notional -= self._notional.pop(key, Decimal(0))
        if order.instrument is not None and order.price is not None:
            prices = self._prices[(order.instrument, order.side)]
            if prices[order.price] == 1:
                del prices[order.price]
            else:
                prices[order.price] -= 1
        for symbol, quantity in order.leg_quantities():
            pending = self._pending[symbol]
            pending[0 if quantity > 0 else 1] -= quantity
            if not pending[0] and not pending[1]:
                del self._pending[symbol]
        return order


def _no_notional(order: WorkingOrder) -> Decimal:
    return Decimal(0)


class ExposureLedger:
    def __init__(self, catalogue: InstrumentCatalogue | None = None) -> None:
        self._accounts: dict[str, AccountExposure] = {}
        self._catalogue = catalogue
        # How a working order counts towards open notional; the pre-trade validator sets it.
        self.notional_of: Callable[[WorkingOrder], Decimal] = _no_notional

    def account(self, address: str) -> AccountExposure:
        found = self._accounts.get(address)
        if found is None:
            found = self._accounts[address] = AccountExposure()
        return found

    def accounts(self) -> list[str]:
        return sorted(self._accounts)

    def peek(self, address: str) -> AccountExposure | None:
        return self._accounts.get(address)

    # -- loading and folding ------------------------------------------------------------

    def load(self, open_orders: Iterable[Order], fills: Iterable[Fill]) -> None:
        """Rebuild from the store: open orders, and every fill in execution order."""
        self._accounts.clear()
        for order in open_orders:
            self._put(order.spec.account, WorkingOrder.of_order(order))
        for fill in fills:
            self.apply_fill(fill)

    def _put(self, account: str, order: WorkingOrder) -> None:
        self.account(account).put(order.client_order_id, order, self.notional_of(order))

    def reserve(self, spec: OrderSpec) -> None:
        self._put(spec.account, WorkingOrder.of_spec(spec))

    def release(self, spec: OrderSpec) -> None:
        """Drop a reservation whose submission failed (a committed order is kept)."""
        exposure = self._accounts.get(spec.account)
        if exposure is None:
            return
        working = exposure.working.get(spec.client_order_id)
        if working is not None and working.order_id is None:
            exposure.drop(spec.client_order_id)

    def is_known(self, spec: OrderSpec) -> bool:
        exposure = self._accounts.get(spec.account)
        return exposure is not None and spec.client_order_id in exposure.working

    def apply_events(self, events: Iterable[Mapping[str, Any]]) -> None:
        for event in events:
            kind = str(event.get("type", ""))
            if kind.startswith("order."):
                self._apply_order_facts(event["order"])
            elif kind == "fill.recorded":
                self.apply_fill(_fill_from_facts(event["fill"]))

    def _apply_order_facts(self, facts: Mapping[str, Any]) -> None:
        account = str(facts["account"])
        client_id = str(facts["client_order_id"])
        if facts["status"] not in OPEN_STATUSES:
            self.account(account).drop(client_id)
            return
        price = facts.get("price")
        order = WorkingOrder(
            str(facts["id"]),
            client_id,
            facts.get("instrument"),
            tuple(
                Leg(str(leg["instrument"]), Side(leg["side"]), int(leg["ratio"]))
                for leg in facts.get("legs", ())
            ),
            Side(facts["side"]),
            OrderType(facts["type"]),
            Decimal(facts["remaining_quantity"]),
            None if price is None else Decimal(price),
        )
        exposure = self._accounts.get(account)
        held = None if exposure is None else exposure.working.get(client_id)
        if (
            exposure is not None
            and held is not None
            and order.instrument is not None
            and order.price is not None
            and dataclasses.replace(held, order_id=order.order_id) == order
        ):
            # the reservation of a limit order, committed as it was checked: only its id is
            # new; its notional (its own price times its quantity) and pending legs stand
            exposure.working[client_id] = order
            return
        self._put(account, order)

    def apply_fill(self, fill: Fill) -> None:
        exposure = self.account(fill.account)
        held = exposure.positions.get(fill.instrument) or Position(fill.account, fill.instrument)
        exposure.positions[fill.instrument] = held.apply(fill)
        if self._catalogue is None or fill.instrument not in self._catalogue:
            return
        instrument = self._catalogue.get(fill.instrument)
        if instrument.kind is InstrumentKind.PERPETUAL:
            return
        asset = instrument.quote.symbol
        paid = fill.side.sign * fill.quantity * fill.price + fill.fee
        exposure.unsettled_cash[asset] = exposure.unsettled_cash.get(asset, Decimal(0)) - paid


def _fill_from_facts(facts: Mapping[str, Any]) -> Fill:
    return Fill(
        id=str(facts["id"]),
        order_id=str(facts["order_id"]),
        account=str(facts["account"]),
        instrument=str(facts["instrument"]),
        side=Side(facts["side"]),
        quantity=Decimal(facts["quantity"]),
        price=Decimal(facts["price"]),
        fee=Decimal(facts["fee"]),
        venue=str(facts["venue"]),
        executed_at=datetime.fromisoformat(facts["executed_at"]),
    )
