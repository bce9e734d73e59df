"""Events out of the matching engine, each with a sequence number unique in the engine.

Every command returns its events in order. An order's life:

- `OrderAccepted`, or `OrderRejected` when the command cannot be executed (stable `reason`);
- `Trade`s (single-instrument books, and the leg fills of implied combo matching), and
  `ComboFill`s (a combo order's fill, with every leg);
- `OrderAmended`, `OrderReduced` (self-trade decrement), `OrderCancelled` (with a reason).

Quantities conserve per order: quantity placed (as last amended) = remaining + filled +
reduced + cancelled. Prices are integer ticks, quantities integer lots. Replaying the events
rebuilds the books exactly (see `projection`).

Events are named tuples: immutable, and several times cheaper to build than frozen
dataclasses, which matters at a few hundred thousand events per second.
"""

from __future__ import annotations

import enum
from fractions import Fraction
from typing import NamedTuple

from gateway.domain.orders import Leg, OrderType, Side, TimeInForce
from gateway.matching.commands import CancelReason, SelfTradePrevention


class RejectReason(str, enum.Enum):
    DUPLICATE_ORDER_ID = "duplicate_order_id"
    UNKNOWN_INSTRUMENT = "unknown_instrument"
    UNKNOWN_ORDER = "unknown_order"
    INVALID_QUANTITY = "invalid_quantity"
    INVALID_PRICE = "invalid_price"
    PRICE_REQUIRED = "price_required"
    PRICE_NOT_ALLOWED = "price_not_allowed"
    UNSUPPORTED_ORDER_TYPE = "unsupported_order_type"
    MARKET_NEEDS_IOC_OR_FOK = "market_needs_ioc_or_fok"
    POST_ONLY_NEEDS_RESTING_LIMIT = "post_only_needs_resting_limit"
    INVALID_LEGS = "invalid_legs"
    NOTHING_TO_AMEND = "nothing_to_amend"
    AMEND_BELOW_FILLED = "amend_below_filled"


class Liquidity(str, enum.Enum):
    MAKER = "maker"
    TAKER = "taker"


class OrderAccepted(NamedTuple):
    """`book` is the instrument, or the strategy key for combos; `side` and `price` are in the
    book's terms (for a combo: of the normalised strategy, flipped from the client's terms
    when `flipped`). `legs` are the normalised legs of a combo."""

    seq: int
    order_id: str
    account: str
    book: str
    side: Side
    price: int | None
    quantity: int
    order_type: OrderType
    time_in_force: TimeInForce
    post_only: bool
    stp: SelfTradePrevention
    legs: tuple[Leg, ...] = ()
    flipped: bool = False


class OrderRejected(NamedTuple):
    seq: int
    order_id: str
    reason: RejectReason


class Trade(NamedTuple):
    """One execution in a single-instrument book, at the maker's price.

    When `implied`, the taker is a combo order filling a leg: its remaining then counts
    strategy lots (see the `ComboFill` that follows) and this trade does not reduce it.
    """

    seq: int
    book: str
    price: int
    quantity: int
    aggressor_side: Side
    maker_order_id: str
    maker_account: str
    maker_remaining: int
    taker_order_id: str
    taker_account: str
    taker_remaining: int
    implied: bool = False


class LegFill(NamedTuple):
    """A leg's part of a combo fill, in the client's terms. `price` (leg ticks) is None when
    two combo orders met: the net price is agreed, the split across legs is not the engine's."""

    instrument: str
    side: Side
    quantity: int
    price: int | None


class ComboFill(NamedTuple):
    """A combo order filled `quantity` strategy lots, every leg in ratio, in client terms.

    `price` is the net price per strategy lot in strategy ticks; exact, and whole except for
    an implied lot whose leg quantity spans two price levels. `counterparty_order_id` is the
    other combo order, or None for implied fills (the counterparties are in the `Trade`s).
    """

    seq: int
    order_id: str
    account: str
    strategy: str
    side: Side
    quantity: int
    price: Fraction
    remaining: int
    liquidity: Liquidity
    counterparty_order_id: str | None
    legs: tuple[LegFill, ...]


class OrderAmended(NamedTuple):
    """`price` in the book's terms; `quantity` the new total; `priority_kept` False means the
    order went to the back of the level at `price`."""

    seq: int
    order_id: str
    price: int | None
    quantity: int
    remaining: int
    priority_kept: bool


class OrderReduced(NamedTuple):
    """Part of an order was cancelled but it stays open (self-trade decrement)."""

    seq: int
    order_id: str
    quantity: int
    remaining: int
    reason: CancelReason


class OrderCancelled(NamedTuple):
    """The order is closed; `quantity` is what was still open."""

    seq: int
    order_id: str
    quantity: int
    reason: CancelReason


Event = (
    OrderAccepted | OrderRejected | Trade | ComboFill | OrderAmended | OrderReduced | OrderCancelled
)
