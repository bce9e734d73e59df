"""Tradable instruments: spot pairs, European options and perpetuals."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from gateway.domain.amounts import is_multiple
from gateway.domain.errors import DomainError, InvalidOrder, UnknownInstrument

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InstrumentKind(str, enum.Enum):
    SPOT = "spot"
    OPTION = "option"
    PERPETUAL = "perpetual"


class OptionRight(str, enum.Enum):
    CALL = "call"
    PUT = "put"


@dataclass(frozen=True, slots=True)
class Asset:
    """A token: its symbol and how many decimals one unit has on chain."""

    symbol: str
    decimals: int


@dataclass(frozen=True, slots=True)
class TradingRules:
    """Granularity of prices and sizes; every order must respect them."""

    tick_size: Decimal
    lot_size: Decimal
    min_quantity: Decimal

    def __post_init__(self) -> None:
        if self.tick_size <= 0 or self.lot_size <= 0 or self.min_quantity <= 0:
            raise DomainError("tick size, lot size and minimum quantity must be positive")

    def check_price(self, price: Decimal, *, field: str = "price") -> None:
        if price <= 0:
            raise InvalidOrder(f"{field} must be positive", field=field, code="invalid_price")
        if not is_multiple(price, self.tick_size):
            raise InvalidOrder(
                f"{field} {price} is not a multiple of the tick size {self.tick_size}",
                field=field,
                code="invalid_price_tick",
            )

    def check_quantity(self, quantity: Decimal, *, field: str = "quantity") -> None:
        if quantity <= 0:
            raise InvalidOrder(f"{field} must be positive", field=field, code="invalid_quantity")
        if quantity < self.min_quantity:
            raise InvalidOrder(
                f"{field} {quantity} is below the minimum {self.min_quantity}",
                field=field,
                code="quantity_below_minimum",
            )
        if not is_multiple(quantity, self.lot_size):
            raise InvalidOrder(
                f"{field} {quantity} is not a multiple of the lot size {self.lot_size}",
                field=field,
                code="invalid_quantity_lot",
            )


@dataclass(frozen=True, slots=True)
class Instrument:
    """Common shape of every instrument. `symbol` is unique across the catalogue."""

    symbol: str
    kind: InstrumentKind
    base: Asset
    quote: Asset
    rules: TradingRules

    @property
    def expiry(self) -> datetime | None:
        return None


@dataclass(frozen=True, slots=True)
class SpotPair(Instrument):
    pass


@dataclass(frozen=True, slots=True)
class Perpetual(Instrument):
    """A perpetual swap. Linear: quantity in base, P&L in quote. Inverse (Deribit's
    ETH-PERPETUAL): quantity in contracts of `contract_size` quote each, P&L in base."""

    inverse: bool = False
    contract_size: Decimal = Decimal(1)


@dataclass(frozen=True, slots=True)
class EuropeanOption(Instrument):
    """Cash-settled in the quote asset at expiry against the oracle; `base` is the underlying."""

    strike: Decimal = Decimal(0)
    expires_at: datetime = EPOCH
    right: OptionRight = OptionRight.CALL

    @property
    def expiry(self) -> datetime | None:
        return self.expires_at

    def payoff(self, underlying_price: Decimal) -> Decimal:
        """Payoff of one long option at expiry, in quote per unit of underlying."""
        if self.right is OptionRight.CALL:
            return max(underlying_price - self.strike, Decimal(0))
        return max(self.strike - underlying_price, Decimal(0))


def spot(base: Asset, quote: Asset, rules: TradingRules) -> SpotPair:
    return SpotPair(f"{base.symbol}/{quote.symbol}", InstrumentKind.SPOT, base, quote, rules)


def perpetual(
    base: Asset,
    quote: Asset,
    rules: TradingRules,
    *,
    inverse: bool = False,
    contract_size: Decimal = Decimal(1),
) -> Perpetual:
    """`WETH-PERP` (linear) or `WETH-IPERP` (inverse, `contract_size` quote per contract)."""
    if contract_size <= 0:
        raise DomainError("contract size must be positive")
    suffix = "IPERP" if inverse else "PERP"
    return Perpetual(
        f"{base.symbol}-{suffix}",
        InstrumentKind.PERPETUAL,
        base,
        quote,
        rules,
        inverse=inverse,
        contract_size=contract_size,
    )


def option(
    underlying: Asset,
    quote: Asset,
    rules: TradingRules,
    *,
    strike: Decimal,
    expires_at: datetime,
    right: OptionRight,
) -> EuropeanOption:
    """Symbol follows the Deribit convention: `WETH-20261231-3000-C`."""
    if strike <= 0:
        raise DomainError("strike must be positive")
    if expires_at.tzinfo is None:
        raise DomainError("expiry must be timezone-aware")
    letter = "C" if right is OptionRight.CALL else "P"
    symbol = f"{underlying.symbol}-{expires_at:%Y%m%d}-{strike.normalize():f}-{letter}"
    return EuropeanOption(
        symbol,
        InstrumentKind.OPTION,
        underlying,
        quote,
        rules,
        strike=strike,
        expires_at=expires_at,
        right=right,
    )


class InstrumentCatalogue:
    """The instruments a gateway trades, by symbol."""

    def __init__(self, instruments: list[Instrument]) -> None:
        self._by_symbol: dict[str, Instrument] = {}
        for instrument in instruments:
            if instrument.symbol in self._by_symbol:
                raise DomainError(f"duplicate instrument {instrument.symbol}")
            self._by_symbol[instrument.symbol] = instrument

    def get(self, symbol: str, *, field: str = "instrument") -> Instrument:
        try:
            return self._by_symbol[symbol]
        except KeyError:
            raise UnknownInstrument(f"unknown instrument {symbol!r}", field=field) from None

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._by_symbol.values())

    def __len__(self) -> int:
        return len(self._by_symbol)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._by_symbol
