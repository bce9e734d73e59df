"""Commands into the matching engine. Prices are integer ticks, quantities integer lots.

The caller (the gateway) has already validated, risk-checked and converted the order with
`InstrumentUnits` / `StrategyUnits`; the engine still rejects what it cannot execute.
Order ids are the caller's, unique among open orders.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.domain.orders import Leg, OrderType, Side, TimeInForce


class SelfTradePrevention(str, enum.Enum):
    """What happens when an incoming order meets a resting order of the same account.

    The incoming (taker) order's mode decides, as on Binance:

    - CANCEL_NEWEST: cancel the rest of the incoming order; the resting one stays.
    - CANCEL_OLDEST: cancel the resting order; the incoming one goes on matching.
    - CANCEL_BOTH: cancel both.
    - DECREMENT_AND_CANCEL (Coinbase "dc"): reduce both by the smaller remaining quantity;
      the one left with nothing is cancelled, the other goes on (the incoming order matching
      further, the resting one keeping its place).
    """

    CANCEL_NEWEST = "cancel_newest"
    CANCEL_OLDEST = "cancel_oldest"
    CANCEL_BOTH = "cancel_both"
    DECREMENT_AND_CANCEL = "decrement_and_cancel"


DEFAULT_STP = SelfTradePrevention.CANCEL_NEWEST


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """A single-instrument order. `price` is None exactly for market orders.

    Market orders are IOC or FOK. Post-only orders are GTC (or GTD) limit orders. GTD is
    kept like GTC: the engine has no clock, so expiry arrives as `CancelOrder(reason=EXPIRED)`.
    """

    order_id: str
    account: str
    instrument: str
    side: Side
    quantity: int
    price: int | None
    order_type: OrderType = OrderType.LIMIT
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    stp: SelfTradePrevention = DEFAULT_STP


@dataclass(frozen=True, slots=True)
class PlaceCombo:
    """A multi-leg strategy order, as the client wrote it.

    `price` is the net price per strategy lot in strategy ticks (positive = debit for the
    buyer), `quantity` in strategy lots (see `StrategyUnits`). Always a limit order; any time
    in force (GTD rests like GTC).
    """

    order_id: str
    account: str
    legs: tuple[Leg, ...]
    side: Side
    quantity: int
    price: int
    time_in_force: TimeInForce = TimeInForce.GTC
    stp: SelfTradePrevention = DEFAULT_STP


@dataclass(frozen=True, slots=True)
class AmendOrder:
    """Change the price and/or the total quantity (filled included) of an open order.

    Priority is kept when only the quantity goes down; a new price or a larger quantity sends
    the order to the back of its (new) level, and a new price may make it trade at once.
    For combos the price is in the client's terms, as placed.
    """

    order_id: str
    price: int | None = None
    quantity: int | None = None


class CancelReason(str, enum.Enum):
    USER = "user"
    EXPIRED = "expired"  # a GTD order whose time came (told by the caller)
    IOC_REMAINDER = "ioc_remainder"  # also the unfilled rest of a market order
    FOK_UNFILLED = "fok_unfilled"
    SELF_TRADE = "self_trade"
    POST_ONLY_WOULD_CROSS = "post_only_would_cross"


@dataclass(frozen=True, slots=True)
class CancelOrder:
    order_id: str
    reason: CancelReason = CancelReason.USER


Command = PlaceOrder | PlaceCombo | AmendOrder | CancelOrder
