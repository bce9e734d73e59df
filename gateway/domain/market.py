"""Normalized market data and venue-side order types. Every venue adapter returns these."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from gateway.domain.orders import OrderType, Side, TimeInForce


class VenueKind(str, enum.Enum):
    CEX = "cex"
    AMM = "amm"
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class BookLevel:
    price: Decimal
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class OrderBook:
    """One venue's book for one instrument (our symbol). Bids best first (descending),
    asks best first (ascending)."""

    venue: str
    instrument: str
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    timestamp: datetime
    sequence: int | None = None

    @property
    def best_bid(self) -> BookLevel | None:
        return self.bids[0] if self.bids else None

    @property
    def best_ask(self) -> BookLevel | None:
        return self.asks[0] if self.asks else None

    @property
    def mid(self) -> Decimal | None:
        if not self.bids or not self.asks:
            return None
        return (self.bids[0].price + self.asks[0].price) / 2


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Fees in basis points of notional; negative maker fees are rebates."""

    maker_bps: Decimal
    taker_bps: Decimal


class VenueOrderStatus(str, enum.Enum):
    OPEN = "open"
    CLOSED = "closed"  # fully filled
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class VenueOrderRequest:
    """A child order for one venue, in our symbols and exact amounts."""

    instrument: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    client_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class VenueOrder:
    venue: str
    venue_order_id: str
    instrument: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None
    status: VenueOrderStatus
    filled: Decimal
    average_price: Decimal | None
    fee: Decimal = Decimal(0)
    fee_asset: str | None = None
    client_order_id: str | None = None
    timestamp: datetime | None = None
    network_fee: Decimal = Decimal(0)  # gas paid in the chain's native asset (AMM swaps)

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    free: Decimal
    locked: Decimal = Decimal(0)

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass(frozen=True, slots=True)
class VenuePosition:
    """A derivatives position held on a venue (signed: long > 0)."""

    venue: str
    instrument: str
    quantity: Decimal
    average_price: Decimal | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PublicTrade:
    """One trade on a venue's public tape (anyone's, not only ours).

    `quantity` is in base units; `price` in the instrument's price currency per base unit;
    `side` is the taker's side, None when the venue does not say; `timestamp` is aware UTC.
    `trade_id` is unique within the venue (dedupe on `(venue, trade_id)`)."""

    venue: str
    instrument: str
    trade_id: str
    price: Decimal
    quantity: Decimal
    side: Side | None
    timestamp: datetime

    @property
    def notional(self) -> Decimal:
        return self.price * self.quantity
