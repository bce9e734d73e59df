"""Positions: what an account holds of an instrument, folded from its fills.

Lots are closed first-in first-out, so realized P&L is exact in Decimal (an average-cost
method would divide and round).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from gateway.domain.fills import Fill


@dataclass(frozen=True, slots=True)
class Lot:
    quantity: Decimal  # signed: long > 0, short < 0
    price: Decimal


@dataclass(frozen=True, slots=True)
class Position:
    account: str
    instrument: str
    lots: tuple[Lot, ...] = ()
    realized_pnl: Decimal = Decimal(0)  # after fees

    @property
    def quantity(self) -> Decimal:
        return sum((lot.quantity for lot in self.lots), Decimal(0))

    @property
    def cost(self) -> Decimal:
        """Signed entry value of the open lots (what was paid for longs, received for shorts)."""
        return sum((lot.quantity * lot.price for lot in self.lots), Decimal(0))

    @property
    def average_price(self) -> Decimal | None:
        """Average entry price of the open lots (for display; may be rounded)."""
        quantity = self.quantity
        return None if quantity == 0 else self.cost / quantity

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        return self.quantity * mark - self.cost

    def apply(self, fill: Fill) -> Position:
        remaining = fill.quantity * fill.side.sign  # signed quantity still to place
        realized = self.realized_pnl - fill.fee
        lots = list(self.lots)
        while lots and remaining and (lots[0].quantity > 0) != (remaining > 0):
            lot = lots[0]
            closed = min(abs(lot.quantity), abs(remaining))
            direction = 1 if lot.quantity > 0 else -1
            realized += closed * (fill.price - lot.price) * direction
            left = lot.quantity - closed * direction
            remaining += closed * direction
            if left == 0:
                lots.pop(0)
            else:
                lots[0] = Lot(left, lot.price)
        if remaining:
            lots.append(Lot(remaining, fill.price))
        return replace(self, lots=tuple(lots), realized_pnl=realized)
