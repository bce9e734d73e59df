"""The pre-trade validator: every order passes it before it touches a book or a venue.

Checks run cheapest first and stop at the first failure, each with a stable code:

=========================  ====================================================  ====
code                       rule                                                  HTTP
=========================  ====================================================  ====
kill_switch_engaged        the global or the account's kill switch is on         403
instrument_not_allowed     the account may not trade this instrument             403
order_rate_exceeded        more orders per second than the account's bucket      429
self_trade                 it would cross the account's own resting order        422
no_reference_price         a market order with no consolidated mid to bound it   422
price_outside_band         limit price too far from the consolidated mid (a      422
                           strategy: its net price from the net of the legs'
                           mids, see `_check_strategy_band`)
order_notional_limit       notional of this order above the account's limit      422
open_notional_limit        notional of all working orders above the limit        422
open_orders_limit          too many working orders                               422
position_limit             worst-case position (working orders filled) too big   422
insufficient_margin        the wallet would fail the on-chain margin rule        422
=========================  ====================================================  ====

Notional is exposure, in the quote currency: quantity times the limit price (or the mid
for market orders) for spot and perpetuals, quantity times the underlying's price for
options (a premium says little about what an option can lose), summed over legs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from gateway.domain.errors import DomainError
from gateway.domain.instruments import (
    EuropeanOption,
    Instrument,
    InstrumentCatalogue,
    InstrumentKind,
)
from gateway.domain.orders import OrderSpec, OrderType, Side
from gateway.risk.exposure import AccountExposure, ExposureLedger, WorkingOrder

BPS = Decimal(10_000)


class PreTradeRejected(DomainError):
    """An order the risk rules refuse; `code` names the rule."""

    code = "pre_trade_rejected"


class KillSwitchEngaged(PreTradeRejected):
    code = "kill_switch_engaged"


class InstrumentNotAllowed(PreTradeRejected):
    code = "instrument_not_allowed"


class OrderRateExceeded(PreTradeRejected):
    code = "order_rate_exceeded"


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Limits of one account. None switches a limit off."""

    max_order_notional: Decimal | None = Decimal(1_000_000)
    max_open_notional: Decimal | None = Decimal(5_000_000)
    max_position: Decimal | None = None  # per instrument, in its quantity units
    max_open_orders: int | None = 1_000
    orders_per_second: Decimal = Decimal(50)
    order_burst: int = 100
    allowed_instruments: frozenset[str] | None = None  # None: every catalogue instrument
    price_band_bps: int = 1_000  # spot and perpetuals: 10% from the mid
    option_price_band_bps: int = 5_000  # option mids are wide and move with vol

    def to_json(self) -> dict[str, Any]:
        def text(value: Decimal | None) -> str | None:
            return None if value is None else str(value)

        return {
            "max_order_notional": text(self.max_order_notional),
            "max_open_notional": text(self.max_open_notional),
            "max_position": text(self.max_position),
            "max_open_orders": self.max_open_orders,
            "orders_per_second": str(self.orders_per_second),
            "order_burst": self.order_burst,
            "allowed_instruments": None
            if self.allowed_instruments is None
            else sorted(self.allowed_instruments),
            "price_band_bps": self.price_band_bps,
            "option_price_band_bps": self.option_price_band_bps,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RiskLimits:
        def number(key: str) -> Decimal | None:
            value = data.get(key)
            return None if value is None else Decimal(str(value))

        allowed = data.get("allowed_instruments")
        return cls(
            max_order_notional=number("max_order_notional"),
            max_open_notional=number("max_open_notional"),
            max_position=number("max_position"),
            max_open_orders=data.get("max_open_orders"),
            orders_per_second=Decimal(str(data.get("orders_per_second", "50"))),
            order_burst=int(data.get("order_burst", 100)),
            allowed_instruments=None if allowed is None else frozenset(allowed),
            price_band_bps=int(data.get("price_band_bps", 1_000)),
            option_price_band_bps=int(data.get("option_price_band_bps", 5_000)),
        )


@dataclass
class RiskControls:
    """The operator's switches: a global kill switch, per-account kill switches and limits."""

    defaults: RiskLimits = field(default_factory=RiskLimits)
    global_kill: bool = False
    killed_accounts: set[str] = field(default_factory=set)
    account_limits: dict[str, RiskLimits] = field(default_factory=dict)

    def limits(self, account: str) -> RiskLimits:
        return self.account_limits.get(account, self.defaults)


class ReferencePrices(Protocol):
    def mid(self, instrument: str) -> Decimal | None: ...


@dataclass(frozen=True, slots=True)
class MarginVerdict:
    required: int  # quote base units
    available: int
    ok: bool
    reason: str | None = None  # when the wallet would refuse the fill outright


class MarginProjection(Protocol):
    def margin_after(
        self, spec: OrderSpec, working: Sequence[WorkingOrder]
    ) -> MarginVerdict | None:
        """The wallet's margin status if this order and every working order filled at their
        limit prices; None when the account has no wallet state to project from."""
        ...


@dataclass
class _Bucket:
    tokens: Decimal
    at: datetime


class PreTradeValidator:
    def __init__(
        self,
        catalogue: InstrumentCatalogue,
        controls: RiskControls,
        ledger: ExposureLedger,
        prices: ReferencePrices,
        now: Callable[[], datetime],
        margin: MarginProjection | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.controls = controls
        self.ledger = ledger
        self.prices = prices
        self._now = now
        self.margin = margin
        self._buckets: dict[str, _Bucket] = {}
        ledger.notional_of = self._working_notional
        self._underlying_pairs = {
            (i.base.symbol, i.quote.symbol): i.symbol
            for i in catalogue
            if i.kind is InstrumentKind.SPOT
        }

    # -- the check ------------------------------------------------------------------------

    def check(self, spec: OrderSpec, *, dry_run: bool = False) -> None:
        """Raise a PreTradeRejected naming the first rule the order breaks.

        `dry_run` (what-if) leaves the order-rate bucket alone."""
        controls = self.controls
        account = spec.account
        if controls.global_kill:
            raise KillSwitchEngaged("trading is halted by the global kill switch")
        if account in controls.killed_accounts:
            raise KillSwitchEngaged(f"trading is halted for account {account}", field="account")
        limits = controls.limits(account)
        symbols = (
            [spec.instrument]
            if spec.instrument is not None
            else [leg.instrument for leg in spec.legs]
        )
        if limits.allowed_instruments is not None:
            for symbol in symbols:
                if symbol not in limits.allowed_instruments:
                    raise InstrumentNotAllowed(
                        f"account {account} may not trade {symbol}", field="instrument"
                    )
        if not dry_run:
            self._take_token(account, limits)
        exposure = self.ledger.account(account)
        incoming = WorkingOrder.of_spec(spec)
        self._check_self_trade(incoming, exposure)
        notional = self._check_price_and_notional(spec, limits)
        self._check_open_orders(incoming, notional, exposure, limits)
        self._check_positions(incoming, exposure, limits)
        if self.margin is not None:
            verdict = self.margin.margin_after(spec, list(exposure.working.values()))
            if verdict is not None and not verdict.ok:
                raise PreTradeRejected(
                    verdict.reason
                    or f"the wallet would need {verdict.required} quote units of margin and "
                    f"have {verdict.available} if this (and its working orders) filled",
                    code="insufficient_margin",
                )

    def _take_token(self, account: str, limits: RiskLimits) -> None:
        now = self._now()
        burst = Decimal(limits.order_burst)
        bucket = self._buckets.get(account)
        if bucket is None:
            bucket = self._buckets[account] = _Bucket(burst, now)
        else:
            elapsed = Decimal(str(max(0.0, (now - bucket.at).total_seconds())))
            bucket.tokens = min(burst, bucket.tokens + elapsed * limits.orders_per_second)
            bucket.at = now
        if bucket.tokens < 1:
            raise OrderRateExceeded(
                f"account {account} may send {limits.orders_per_second} orders per second "
                f"(bursts of {limits.order_burst})",
                field="account",
            )
        bucket.tokens -= 1

    def _check_self_trade(self, incoming: WorkingOrder, exposure: AccountExposure) -> None:
        if incoming.instrument is None:
            return
        best = exposure.best_price(incoming.instrument, incoming.side.opposite)
        if best is None or (
            incoming.price is not None
            and (incoming.price < best if incoming.side is Side.BUY else incoming.price > best)
        ):
            return  # no working order of the account on the other side it would reach
        for resting in exposure.working.values():
            if resting.instrument != incoming.instrument or resting.side is incoming.side:
                continue
            if resting.price is None:
                continue
            if incoming.price is None or (
                incoming.price >= resting.price
                if incoming.side is Side.BUY
                else incoming.price <= resting.price
            ):
                raise PreTradeRejected(
                    "it would trade against the account's own order "
                    f"{resting.order_id or resting.client_order_id} at {resting.price}",
                    code="self_trade",
                    field="price",
                )

    def reference_price(self, instrument: Instrument) -> Decimal | None:
        return self.prices.mid(instrument.symbol)

    def underlying_price(self, instrument: Instrument) -> Decimal | None:
        """The price of an option's underlying (the spot pair's mid), else the strike."""
        pair = self._underlying_pairs.get((instrument.base.symbol, instrument.quote.symbol))
        mid = None if pair is None else self.prices.mid(pair)
        if mid is None and isinstance(instrument, EuropeanOption):
            return instrument.strike
        return mid

    def _exposure_notional(
        self, instrument: Instrument, quantity: Decimal, price: Decimal
    ) -> Decimal:
        if isinstance(instrument, EuropeanOption):
            underlying = self.underlying_price(instrument)
            assert underlying is not None
            return quantity * underlying
        if getattr(instrument, "inverse", False):
            return quantity * getattr(instrument, "contract_size", Decimal(1))
        return quantity * price

    def _check_price_and_notional(self, spec: OrderSpec, limits: RiskLimits) -> Decimal:
        if spec.instrument is not None:
            instrument = self.catalogue.get(spec.instrument)
            mid = self.reference_price(instrument)
            price = spec.price
            if spec.order_type in (OrderType.MARKET, OrderType.STOP):
                if mid is None:
                    raise PreTradeRejected(
                        f"no consolidated mid for {instrument.symbol} to bound a market order",
                        code="no_reference_price",
                        field="type",
                    )
                price = mid
            elif mid is not None and price is not None:
                band = (
                    limits.option_price_band_bps
                    if instrument.kind is InstrumentKind.OPTION
                    else limits.price_band_bps
                )
                self._check_band(spec.side, price, mid, band, instrument.symbol)
            assert price is not None
            notional = self._exposure_notional(instrument, spec.quantity, price)
        else:
            self._check_strategy_band(spec, limits)
            notional = Decimal(0)
            for leg in spec.legs:
                instrument = self.catalogue.get(leg.instrument)
                reference = self.reference_price(instrument) or (
                    self.underlying_price(instrument)
                    if isinstance(instrument, EuropeanOption)
                    else None
                )
                if reference is None:
                    raise PreTradeRejected(
                        f"no consolidated mid for leg {leg.instrument}",
                        code="no_reference_price",
                        field="legs",
                    )
                notional += self._exposure_notional(
                    instrument, spec.quantity * leg.ratio, reference
                )
        if limits.max_order_notional is not None and notional > limits.max_order_notional:
            raise PreTradeRejected(
                f"order notional {notional:f} exceeds the account's limit "
                f"{limits.max_order_notional}",
                code="order_notional_limit",
                field="quantity",
            )
        return notional

    @staticmethod
    def _check_band(side: Side, price: Decimal, mid: Decimal, band_bps: int, symbol: str) -> None:
        limit = _band_limit(side, price, mid, mid * band_bps / BPS)
        if limit is None:
            return
        raise PreTradeRejected(
            f"{side.value} price {price} is more than {band_bps} bps from the {symbol} mid "
            f"{mid:f} (limit {limit:f})",
            code="price_outside_band",
            field="price",
        )

    def _check_strategy_band(self, spec: OrderSpec, limits: RiskLimits) -> None:
        """A strategy's net price against its legs' mids, as a single order's price against
        its mid: the same code, `price_outside_band`, and only the side that would pay too
        much is bounded (a buy far below the net mid, or a sell far above, just rests).

        The reference is the net of the legs' mids in the strategy's own price terms (as
        the combo book prices a strategy lot): sum over legs of +ratio * mid for a buy leg
        and -ratio * mid for a sell leg, whatever the strategy's side. The band is not in
        bps of that net, which can be near zero or negative (a spread, a credit); it is the
        sum of each leg's own band on the leg's value: |ratio * mid| * (the option band for
        an option leg, the price band for any other), in bps. For legs of one kind that is
        the band's bps of the sum of |ratio * mid|; a strategy is never held to a tighter
        band than its legs would be one by one. A leg without a mid leaves nothing to
        compare with, as for a single limit order without one: the check passes."""
        if spec.price is None:
            return
        reference = Decimal(0)
        width = Decimal(0)
        for leg in spec.legs:
            instrument = self.catalogue.get(leg.instrument)
            mid = self.reference_price(instrument)
            if mid is None:
                return
            value = leg.ratio * mid
            reference += value if leg.side is Side.BUY else -value
            band_bps = (
                limits.option_price_band_bps
                if instrument.kind is InstrumentKind.OPTION
                else limits.price_band_bps
            )
            width += abs(value) * band_bps / BPS
        limit = _band_limit(spec.side, spec.price, reference, width)
        if limit is not None:
            raise PreTradeRejected(
                f"{spec.side.value} net price {spec.price} is more than {width:f} from the net "
                f"of the legs' mids {reference:f} (limit {limit:f}; each leg's band on its "
                "ratio x mid)",
                code="price_outside_band",
                field="price",
            )

    def _working_notional(self, order: WorkingOrder) -> Decimal:
        total = Decimal(0)
        for symbol, quantity in order.leg_quantities():
            instrument = self.catalogue.get(symbol)
            price = order.price if order.instrument is not None else None
            if price is None:
                price = (
                    self.reference_price(instrument)
                    or self.underlying_price(instrument)
                    or Decimal(0)
                )
            total += self._exposure_notional(instrument, abs(quantity), price)
        return total

    def _check_open_orders(
        self,
        incoming: WorkingOrder,
        notional: Decimal,
        exposure: AccountExposure,
        limits: RiskLimits,
    ) -> None:
        if (
            limits.max_open_orders is not None
            and len(exposure.working) + 1 > limits.max_open_orders
        ):
            raise PreTradeRejected(
                f"the account already has {len(exposure.working)} working orders "
                f"(limit {limits.max_open_orders})",
                code="open_orders_limit",
            )
        if limits.max_open_notional is not None:
            total = notional + exposure.open_notional
            if total > limits.max_open_notional:
                raise PreTradeRejected(
                    f"working orders would total {total:f} of notional "
                    f"(limit {limits.max_open_notional})",
                    code="open_notional_limit",
                    field="quantity",
                )

    def _check_positions(
        self, incoming: WorkingOrder, exposure: AccountExposure, limits: RiskLimits
    ) -> None:
        if limits.max_position is None:
            return
        for symbol, quantity in incoming.leg_quantities():
            longest, shortest = exposure.worst_case(symbol)
            worst = longest + quantity if quantity > 0 else shortest + quantity
            if abs(worst) > limits.max_position:
                raise PreTradeRejected(
                    f"{symbol} position could reach {worst:f} with working orders "
                    f"(limit {limits.max_position})",
                    code="position_limit",
                    field="quantity",
                )

    # -- state ------------------------------------------------------------------------

    def admit(self, spec: OrderSpec) -> bool:
        """Check and reserve in one step (no await in between, so atomic on the loop).

        Returns False for a retry of an order already working: the writer answers it
        (same order back, or duplicate_client_order_id) and it must not count twice.
        """
        if self.ledger.is_known(spec):
            return False
        self.check(spec)
        self.ledger.reserve(spec)
        return True


def _band_limit(side: Side, price: Decimal, reference: Decimal, width: Decimal) -> Decimal | None:
    """The bound a price breaks (a buy above reference + width, a sell below reference -
    width), or None when it is inside."""
    if side is Side.BUY and price > reference + width:
        return reference + width
    if side is Side.SELL and price < reference - width:
        return reference - width
    return None
