"""The order and settlement state machines, as explicit transition tables.

Every status change in the system goes through `OrderStatus.check_transition` or
`SettlementStatus.check_transition`; anything not listed here raises `IllegalTransition`.
"""

from __future__ import annotations

import enum

from gateway.domain.errors import IllegalTransition


class OrderStatus(str, enum.Enum):
    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return not ORDER_TRANSITIONS[self]

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)

    def check_transition(self, target: OrderStatus) -> None:
        if target not in ORDER_TRANSITIONS[self]:
            raise IllegalTransition(f"order cannot go from {self.value} to {target.value}")


ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.NEW: frozenset({OrderStatus.ACCEPTED, OrderStatus.REJECTED}),
    OrderStatus.ACCEPTED: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.EXPIRED,
        }
    ),
    # A partial fill may be followed by more partial fills.
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.EXPIRED,
        }
    ),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
}


class SettlementStatus(str, enum.Enum):
    """Where a fill (and, aggregated, an order) stands on chain."""

    NONE = "none"  # nothing to settle yet (orders without fills)
    PENDING = "pending"  # in the outbox or in a submitted batch
    SETTLED = "settled"  # confirmed receipt at the required depth
    FAILED = "failed"  # the chain refused it; the fill is void

    def check_transition(self, target: SettlementStatus) -> None:
        if target not in SETTLEMENT_TRANSITIONS[self]:
            raise IllegalTransition(f"settlement cannot go from {self.value} to {target.value}")


SETTLEMENT_TRANSITIONS: dict[SettlementStatus, frozenset[SettlementStatus]] = {
    SettlementStatus.NONE: frozenset({SettlementStatus.PENDING}),
    SettlementStatus.PENDING: frozenset({SettlementStatus.SETTLED, SettlementStatus.FAILED}),
    # An order that was fully settled so far becomes pending again on its next fill.
    SettlementStatus.SETTLED: frozenset({SettlementStatus.PENDING}),
    SettlementStatus.FAILED: frozenset({SettlementStatus.PENDING}),
}

# A single fill settles once: it never leaves SETTLED or FAILED.
FILL_SETTLEMENT_TRANSITIONS: dict[SettlementStatus, frozenset[SettlementStatus]] = {
    SettlementStatus.PENDING: frozenset({SettlementStatus.SETTLED, SettlementStatus.FAILED}),
    SettlementStatus.SETTLED: frozenset(),
    SettlementStatus.FAILED: frozenset(),
    SettlementStatus.NONE: frozenset(),
}


def check_fill_settlement_transition(current: SettlementStatus, target: SettlementStatus) -> None:
    if target not in FILL_SETTLEMENT_TRANSITIONS[current]:
        raise IllegalTransition(f"a fill cannot go from {current.value} to {target.value}")
