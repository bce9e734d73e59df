"""What every account has at risk right now: its open orders and its positions.

The ledger is folded from committed order and fill events (the same events the WebSocket
stream carries), so it never runs ahead of the database; at start-up it is rebuilt from the
store. Orders that passed the pre-trade check but are not committed yet are held as
reservations, so two concurrent orders cannot both squeeze under one limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from gateway.domain.fills import Fill
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
    working: dict[str, WorkingOrder]  # by client_order_id
    positions: dict[str, Position]  # by instrument

    def position(self, instrument: str) -> Decimal:
        held = self.positions.get(instrument)
        return Decimal(0) if held is None else held.quantity

    def worst_case(self, instrument: str) -> tuple[Decimal, Decimal]:
        """Position if every working buy fills / if every working sell fills."""
        longest = shortest = self.position(instrument)
        for order in self.working.values():
            for symbol, quantity in order.leg_quantities():
                if symbol != instrument:
                    continue
                if quantity > 0:
                    longest += quantity
                else:
                    shortest += quantity
        return longest, shortest


class ExposureLedger:
    def __init__(self) -> None:
        self._accounts: dict[str, AccountExposure] = {}

    def account(self, address: str) -> AccountExposure:
        found = self._accounts.get(address)
        if found is None:
            found = self._accounts[address] = AccountExposure({}, {})
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
            self.account(order.spec.account).working[order.spec.client_order_id] = (
                WorkingOrder.of_order(order)
            )
        for fill in fills:
            self.apply_fill(fill)

    def reserve(self, spec: OrderSpec) -> None:
        self.account(spec.account).working[spec.client_order_id] = WorkingOrder.of_spec(spec)

    def release(self, spec: OrderSpec) -> None:
        """Drop a reservation whose submission failed (a committed order is kept)."""
        exposure = self._accounts.get(spec.account)
        if exposure is None:
            return
        working = exposure.working.get(spec.client_order_id)
        if working is not None and working.order_id is None:
            del exposure.working[spec.client_order_id]

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
        exposure = self.account(str(facts["account"]))
        client_id = str(facts["client_order_id"])
        if facts["status"] not in OPEN_STATUSES:
            exposure.working.pop(client_id, None)
            return
        price = facts.get("price")
        exposure.working[client_id] = WorkingOrder(
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

    def apply_fill(self, fill: Fill) -> None:
        exposure = self.account(fill.account)
        held = exposure.positions.get(fill.instrument) or Position(fill.account, fill.instrument)
        exposure.positions[fill.instrument] = held.apply(fill)


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
