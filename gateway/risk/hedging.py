"""Automatic delta hedging: when an account's delta leaves its band, trade it back.

The policy hedges to the target delta (usually 0), not just to the band's edge, so that a
trending market does not trigger a hedge on every tick; the order size is rounded down to
the hedge instrument's lot size and capped per hedge.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from gateway.domain.instruments import Instrument
from gateway.domain.orders import Side


@dataclass(frozen=True, slots=True)
class DeltaHedgePolicy:
    instrument: str  # a linear instrument on the underlying: spot pair or linear perpetual
    band: Decimal  # |delta - target| tolerated, in underlying units
    target: Decimal = Decimal(0)
    max_order: Decimal | None = None  # largest single hedge, in underlying units

    def __post_init__(self) -> None:
        if self.band <= 0:
            raise ValueError("the hedge band must be positive")
        if self.max_order is not None and self.max_order <= 0:
            raise ValueError("the largest hedge must be positive")


@dataclass(frozen=True, slots=True)
class HedgeOrder:
    instrument: str
    side: Side
    quantity: Decimal
    delta_before: Decimal


def hedge_order(
    delta: Decimal, policy: DeltaHedgePolicy, instrument: Instrument
) -> HedgeOrder | None:
    """The order that brings `delta` back to the target, or None inside the band."""
    excess = delta - policy.target
    if abs(excess) <= policy.band:
        return None
    quantity = abs(excess)
    if policy.max_order is not None:
        quantity = min(quantity, policy.max_order)
    lot = instrument.rules.lot_size
    quantity = (quantity / lot).to_integral_value(rounding=ROUND_DOWN) * lot
    if quantity < instrument.rules.min_quantity:
        return None
    side = Side.SELL if excess > 0 else Side.BUY
    return HedgeOrder(instrument.symbol, side, quantity, delta)
