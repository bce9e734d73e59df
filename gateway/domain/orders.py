"""Orders and multi-leg strategies, and the rules for submitting, amending, filling them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from gateway.domain.errors import IllegalTransition, InvalidOrder
from gateway.domain.foreign_text import printable
from gateway.domain.instruments import Instrument, InstrumentCatalogue
from gateway.domain.lifecycle import OrderStatus, SettlementStatus

# what a venue child sent before the end may still fill (a rejected order sent nothing)
_LATE_FILL_STATUSES = frozenset({OrderStatus.CANCELLED, OrderStatus.EXPIRED})


class Side(str, enum.Enum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderType(str, enum.Enum):
    LIMIT = "limit"
    MARKET = "market"
    STOP = "stop"  # becomes a market order when the stop price trades
    STOP_LIMIT = "stop_limit"  # becomes a limit order when the stop price trades


class TimeInForce(str, enum.Enum):
    GTC = "gtc"  # good till cancelled
    GTD = "gtd"  # good till `expires_at`
    IOC = "ioc"  # immediate or cancel: fill what is possible now, cancel the rest
    FOK = "fok"  # fill or kill: all now, or nothing


@dataclass(frozen=True, slots=True)
class Leg:
    """One leg of a strategy: `ratio` units of `instrument` per unit of strategy."""

    instrument: str
    side: Side
    ratio: int


class SignedOrderNotAmendable(InvalidOrder):
    """A signed order keeps the price and quantity its signature covers: the wallet settles
    nothing else. Cancel it and sign a new order."""

    code = "signed_order_not_amendable"

    def __init__(self) -> None:
        super().__init__(
            "a signed order's signature covers its price and quantity: cancel it and sign a "
            "new order",
            field="body",
        )


@dataclass(frozen=True, slots=True)
class OrderSignature:
    """The EIP-712 signature of the order (see docs/onchain-types.md): the signed
    `Order`/`Strategy` is rebuilt from the spec plus this `nonce` and `deadline` (unix
    seconds). `signature` is 65 bytes r || s || v (ECDSA, by the owner EOA or a trading key
    of the wallet) or, of any other length, a contract owner's EIP-1271 signature (e.g. a
    Safe's owners'). It is what lets the order settle."""

    nonce: int
    deadline: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """What a client asked for. Validated against the catalogue by `validate`.

    A single-instrument order has `instrument` and no `legs`; a strategy has `legs` and a
    signed `price` meaning the net debit (positive) or credit (negative) per unit.
    """

    account: str
    client_order_id: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    time_in_force: TimeInForce = TimeInForce.GTC
    instrument: str | None = None
    legs: tuple[Leg, ...] = ()
    price: Decimal | None = None
    stop_price: Decimal | None = None
    post_only: bool = False
    expires_at: datetime | None = None
    signed: OrderSignature | None = None

    @property
    def is_strategy(self) -> bool:
        return bool(self.legs)


MAX_LEGS = 8


def validate(spec: OrderSpec, catalogue: InstrumentCatalogue, now: datetime) -> None:
    """Raise `InvalidOrder` (or `UnknownInstrument`) with the offending field, else return."""
    if spec.is_strategy == (spec.instrument is not None):
        raise InvalidOrder("an order has either an instrument or legs", field="instrument")
    if spec.is_strategy:
        _validate_strategy(spec, catalogue)
    else:
        assert spec.instrument is not None
        _validate_single(spec, catalogue.get(spec.instrument))
    if spec.time_in_force is TimeInForce.GTD:
        if spec.expires_at is None:
            raise InvalidOrder("gtd orders need expires_at", field="expires_at")
        if spec.expires_at <= now:
            raise InvalidOrder("expires_at is in the past", field="expires_at")
    elif spec.expires_at is not None:
        raise InvalidOrder("expires_at is only for gtd orders", field="expires_at")


def _validate_single(spec: OrderSpec, instrument: Instrument) -> None:
    rules = instrument.rules
    rules.check_quantity(spec.quantity)
    needs_price = spec.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    needs_stop = spec.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
    if needs_price:
        if spec.price is None:
            raise InvalidOrder(f"{spec.order_type.value} orders need a price", field="price")
        rules.check_price(spec.price)
    elif spec.price is not None:
        raise InvalidOrder(f"{spec.order_type.value} orders take no price", field="price")
    if needs_stop:
        if spec.stop_price is None:
            raise InvalidOrder("stop orders need a stop_price", field="stop_price")
        rules.check_price(spec.stop_price, field="stop_price")
    elif spec.stop_price is not None:
        raise InvalidOrder("only stop orders take a stop_price", field="stop_price")
    if spec.post_only:
        if spec.order_type is not OrderType.LIMIT:
            raise InvalidOrder("post-only orders must be limit orders", field="post_only")
        if spec.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            raise InvalidOrder("post-only orders cannot be ioc or fok", field="post_only")
    if spec.order_type is OrderType.MARKET and spec.time_in_force in (
        TimeInForce.GTC,
        TimeInForce.GTD,
    ):
        raise InvalidOrder("market orders are ioc or fok", field="time_in_force")


def _validate_strategy(spec: OrderSpec, catalogue: InstrumentCatalogue) -> None:
    if len(spec.legs) < 2 or len(spec.legs) > MAX_LEGS:
        raise InvalidOrder(f"a strategy has 2 to {MAX_LEGS} legs", field="legs")
    if spec.order_type is not OrderType.LIMIT:
        raise InvalidOrder("strategies are limit orders on their net price", field="type")
    if spec.price is None:
        raise InvalidOrder("strategies need a net price", field="price")
    if spec.stop_price is not None or spec.post_only:
        raise InvalidOrder("strategies take no stop price and are not post-only", field="type")
    seen: set[tuple[str, Side]] = set()
    quotes: set[str] = set()
    for index, leg in enumerate(spec.legs):
        instrument = catalogue.get(leg.instrument, field=f"legs.{index}.instrument")
        if leg.ratio < 1:
            raise InvalidOrder("leg ratios are positive integers", field=f"legs.{index}.ratio")
        if (leg.instrument, leg.side) in seen:
            raise InvalidOrder("a leg is repeated", field=f"legs.{index}")
        seen.add((leg.instrument, leg.side))
        quotes.add(instrument.quote.symbol)
        instrument.rules.check_quantity(spec.quantity * leg.ratio, field="quantity")
    if len(quotes) != 1:
        raise InvalidOrder("all legs must share one quote asset", field="legs")


@dataclass(frozen=True, slots=True)
class Order:
    """An order as the gateway tracks it. Immutable: every change returns a new version."""

    id: str
    spec: OrderSpec
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    filled_quantity: Decimal = Decimal(0)
    filled_notional: Decimal = Decimal(0)  # sum of fill quantity * price, for the average
    settlement: SettlementStatus = SettlementStatus.NONE
    status_reason: str | None = None
    version: int = 1
    price: Decimal | None = field(default=None)  # current price (after amends)
    quantity: Decimal = field(default=Decimal(0))  # current quantity (after amends)

    @classmethod
    def new(cls, order_id: str, spec: OrderSpec, now: datetime) -> Order:
        return cls(
            id=order_id,
            spec=spec,
            status=OrderStatus.NEW,
            created_at=now,
            updated_at=now,
            price=spec.price,
            quantity=spec.quantity,
        )

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled_quantity

    @property
    def average_price(self) -> Decimal | None:
        if self.filled_quantity == 0:
            return None
        return self.filled_notional / self.filled_quantity

    def _to(self, status: OrderStatus, now: datetime, **changes: object) -> Order:
        self.status.check_transition(status)
        return replace(self, status=status, updated_at=now, version=self.version + 1, **changes)  # type: ignore[arg-type]

    def accept(self, now: datetime) -> Order:
        return self._to(OrderStatus.ACCEPTED, now)

    def reject(self, reason: str, now: datetime) -> Order:
        return self._to(OrderStatus.REJECTED, now, status_reason=printable(reason))

    def cancel(self, now: datetime, reason: str = "cancelled by client") -> Order:
        return self._to(OrderStatus.CANCELLED, now, status_reason=printable(reason))

    def expire(self, now: datetime) -> Order:
        return self._to(OrderStatus.EXPIRED, now, status_reason="expired")

    def fill(
        self, quantity: Decimal, price: Decimal, now: datetime, *, in_flight: bool = False
    ) -> Order:
        """Apply one execution; it may never exceed what remains.

        `in_flight`: the execution of a venue child sent while the order was open. It counts
        even if the order was cancelled or expired since (the venue executed it; refusing
        it would lose a fill), and the order keeps its final status."""
        if not self.status.is_open:
            if not (in_flight and self.status in _LATE_FILL_STATUSES):
                raise IllegalTransition(f"a {self.status.value} order cannot be filled")
            return self._late_fill(quantity, price, now)
        if quantity <= 0:
            raise InvalidOrder("fill quantity must be positive", field="quantity")
        if quantity > self.remaining:
            raise IllegalTransition(
                f"fill of {quantity} exceeds the remaining {self.remaining} of order {self.id}"
            )
        filled = self.filled_quantity + quantity
        target = OrderStatus.FILLED if filled == self.quantity else OrderStatus.PARTIALLY_FILLED
        settlement = self.settlement
        if settlement is not SettlementStatus.PENDING:
            settlement.check_transition(SettlementStatus.PENDING)
            settlement = SettlementStatus.PENDING
        return self._to(
            target,
            now,
            filled_quantity=filled,
            filled_notional=self.filled_notional + quantity * price,
            settlement=settlement,
        )

    def _late_fill(self, quantity: Decimal, price: Decimal, now: datetime) -> Order:
        if quantity <= 0:
            raise InvalidOrder("fill quantity must be positive", field="quantity")
        if quantity > self.remaining:
            raise IllegalTransition(
                f"fill of {quantity} exceeds the remaining {self.remaining} of order {self.id}"
            )
        settlement = self.settlement
        if settlement is not SettlementStatus.PENDING:
            settlement.check_transition(SettlementStatus.PENDING)
            settlement = SettlementStatus.PENDING
        return replace(
            self,
            updated_at=now,
            version=self.version + 1,
            filled_quantity=self.filled_quantity + quantity,
            filled_notional=self.filled_notional + quantity * price,
            settlement=settlement,
        )

    def amend(
        self,
        now: datetime,
        catalogue: InstrumentCatalogue,
        *,
        price: Decimal | None = None,
        quantity: Decimal | None = None,
    ) -> Order:
        """Change price and/or total quantity of an open order (same status, new version).
        Not a signed one: its signature covers its price and quantity, and settlement
        rebuilds the signed order from them."""
        if not self.status.is_open:
            raise IllegalTransition(f"a {self.status.value} order cannot be amended")
        if self.spec.signed is not None:
            raise SignedOrderNotAmendable()
        if price is None and quantity is None:
            raise InvalidOrder("nothing to amend", field="price")
        new_price = self.price if price is None else price
        new_quantity = self.quantity if quantity is None else quantity
        if price is not None:
            if self.spec.order_type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
                raise InvalidOrder("only limit prices can be amended", field="price")
            if not self.spec.is_strategy:
                assert self.spec.instrument is not None
                catalogue.get(self.spec.instrument).rules.check_price(price)
        if quantity is not None:
            if quantity <= self.filled_quantity:
                raise InvalidOrder(
                    f"quantity must stay above the filled {self.filled_quantity}",
                    field="quantity",
                )
            if self.spec.is_strategy:
                for leg in self.spec.legs:
                    catalogue.get(leg.instrument).rules.check_quantity(
                        quantity * leg.ratio, field="quantity"
                    )
            else:
                assert self.spec.instrument is not None
                catalogue.get(self.spec.instrument).rules.check_quantity(quantity)
        if new_price == self.price and new_quantity == self.quantity:
            raise InvalidOrder("the amendment changes nothing", field="price")
        return replace(
            self, price=new_price, quantity=new_quantity, updated_at=now, version=self.version + 1
        )

    def mark_settled(self, now: datetime) -> Order:
        self.settlement.check_transition(SettlementStatus.SETTLED)
        return replace(self, settlement=SettlementStatus.SETTLED, updated_at=now)

    def mark_settlement_failed(self, now: datetime) -> Order:
        self.settlement.check_transition(SettlementStatus.FAILED)
        return replace(self, settlement=SettlementStatus.FAILED, updated_at=now)
