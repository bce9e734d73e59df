"""A gateway order's child on one venue, and what is new in a venue's report of it.

A venue reports an order cumulatively (filled so far, average price, fee so far). The
gateway records fills incrementally, so the child remembers what it has recorded
(`filled`, `filled_notional`, `fee`) and each report is turned into the execution since
(`ChildProgress`): recorded in the same transaction as the child's new totals, a report
seen twice (a retry, a restart) never records a fill twice.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from gateway.domain.foreign_text import printable
from gateway.domain.orders import OrderType, Side, TimeInForce

_ZERO = Decimal(0)


class VenueChildStatus(str, enum.Enum):
    PENDING = "pending"  # recorded, the venue's answer not yet known
    OPEN = "open"  # resting on the venue
    DONE = "done"  # nothing more can happen on the venue (filled, cancelled, rejected)

    @property
    def is_final(self) -> bool:
        return self is VenueChildStatus.DONE


@dataclass(frozen=True, slots=True)
class VenueChild:
    client_order_id: str  # `<gateway order id>-<n>`, what the venue knows it by
    order_id: str
    venue: str
    instrument: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal
    price: Decimal | None
    status: VenueChildStatus = VenueChildStatus.PENDING
    venue_order_id: str | None = None
    filled: Decimal = _ZERO
    filled_notional: Decimal = _ZERO
    fee: Decimal = _ZERO  # in the quote asset
    reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def average_price(self) -> Decimal | None:
        return self.filled_notional / self.filled if self.filled else None


@dataclass(frozen=True, slots=True)
class ChildProgress:
    """The child after a venue report, and the execution since the previous one (if any)."""

    child: VenueChild
    quantity: Decimal  # newly filled
    price: Decimal | None  # average price of the new quantity
    fee: Decimal  # newly charged, in quote


@dataclass(frozen=True, slots=True)
class ChildReport:
    """A venue's cumulative report of a child (what `progress` folds in)."""

    venue_order_id: str | None
    filled: Decimal
    average_price: Decimal | None
    fee: Decimal  # in quote, cumulative
    final: bool
    reason: str | None = None


def progress(
    child: VenueChild,
    *,
    venue_order_id: str | None,
    filled: Decimal,
    average_price: Decimal | None,
    fee: Decimal,
    final: bool,
    reason: str | None = None,
) -> ChildProgress:
    """Fold a cumulative venue report into the child. A report showing less than already
    recorded (an older snapshot arriving late) adds nothing and never goes backwards."""
    status = VenueChildStatus.DONE if final else VenueChildStatus.OPEN
    if filled <= child.filled or average_price is None:
        kept = replace(
            child,
            venue_order_id=venue_order_id or child.venue_order_id,
            status=VenueChildStatus.DONE if child.status.is_final else status,
            reason=printable(reason, 200) if reason else child.reason,
        )
        return ChildProgress(kept, _ZERO, None, _ZERO)
    notional = filled * average_price
    new_quantity = filled - child.filled
    new_notional = notional - child.filled_notional
    new_fee = max(fee - child.fee, _ZERO)
    updated = replace(
        child,
        venue_order_id=venue_order_id or child.venue_order_id,
        status=status,
        filled=filled,
        filled_notional=notional,
        fee=max(fee, child.fee),
        reason=printable(reason, 200) if reason else child.reason,
    )
    return ChildProgress(updated, new_quantity, new_notional / new_quantity, new_fee)
