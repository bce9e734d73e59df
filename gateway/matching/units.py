"""Integer units of the engine and their exact conversion from and to `Decimal`.

Inside the engine a price is an integer number of ticks and a quantity an integer number of
lots: integer arithmetic is exact and fast. `InstrumentUnits` converts with an instrument's
`TradingRules`. A strategy (combo) has its own units, `StrategyUnits`:

- its tick is the greatest common divisor of its legs' tick sizes, so that the net price of
  one strategy unit, sum(sign * ratio * leg price), is a whole number of strategy ticks;
  net prices can be zero or negative (a credit);
- its lot is the least quantity `q` such that `q * ratio` is a whole number of lots on every
  leg, so one strategy lot is `lots_per_unit[i]` lots of leg `i`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation, Rounded
from fractions import Fraction

from gateway.domain.errors import InvalidOrder
from gateway.domain.instruments import TradingRules
from gateway.domain.orders import Leg


def _whole(value: Fraction, *, field: str, code: str, step: Fraction) -> int:
    if value.denominator != 1:
        raise InvalidOrder(f"{field} is not a multiple of {step}", field=field, code=code)
    return value.numerator


# Ticks and lots back to Decimal: a product of two exact decimals, computed with enough digits
# to be exact (Inexact trapped, never silently rounded); much cheaper than a Fraction.
_EXACT = Context(prec=80, traps=[Inexact, Rounded])
_ONE = Decimal(1)


_PRODUCTS: dict[tuple[Decimal, int], Decimal] = {}  # books publish the same levels again


def _product(step: Decimal, count: int) -> Decimal:
    """step * count exactly, in the form an exact division gives (no trailing zeros after
    the point, no exponent above zero: 0.5, 3000, 3000.25), as `_to_decimal` does."""
    key = (step, count)
    value = _PRODUCTS.get(key)
    if value is None:
        if len(_PRODUCTS) >= 100_000:
            _PRODUCTS.clear()
        value = _EXACT.multiply(step, count).normalize(_EXACT)
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent > 0:
            value = value.quantize(_ONE, context=_EXACT)
        _PRODUCTS[key] = value
    return value


def _count(value: Decimal, step: Decimal, *, field: str, code: str) -> int:
    """How many `step`s make `value`, exactly (a value off the grid is refused)."""
    try:
        whole, rest = _EXACT.divmod(value, step)
    except (Inexact, Rounded, InvalidOperation):
        return _whole(Fraction(value) / Fraction(step), field=field, code=code, step=Fraction(step))
    if rest:
        raise InvalidOrder(f"{field} is not a multiple of {step}", field=field, code=code)
    return int(whole)


def _to_decimal(value: Fraction) -> Decimal:
    result = Decimal(value.numerator) / Decimal(value.denominator)
    if Fraction(result) != value:  # a denominator with prime factors other than 2 and 5
        raise ValueError(f"{value} has no exact decimal form")
    return result


@dataclass(frozen=True, slots=True)
class InstrumentUnits:
    """Ticks and lots of one instrument."""

    tick_size: Decimal
    lot_size: Decimal

    @classmethod
    def of(cls, rules: TradingRules) -> InstrumentUnits:
        return cls(rules.tick_size, rules.lot_size)

    def to_ticks(self, price: Decimal) -> int:
        return _count(price, self.tick_size, field="price", code="invalid_price_tick")

    def from_ticks(self, ticks: int) -> Decimal:
        return _product(self.tick_size, ticks)

    def to_lots(self, quantity: Decimal) -> int:
        return _count(quantity, self.lot_size, field="quantity", code="invalid_quantity_lot")

    def from_lots(self, lots: int) -> Decimal:
        return _product(self.lot_size, lots)


def _gcd(values: Sequence[Fraction]) -> Fraction:
    numerator = math.gcd(*(v.numerator for v in values))
    denominator = math.lcm(*(v.denominator for v in values))
    return Fraction(numerator, denominator)


def _lcm(values: Sequence[Fraction]) -> Fraction:
    numerator = math.lcm(*(v.numerator for v in values))
    denominator = math.gcd(*(v.denominator for v in values))
    return Fraction(numerator, denominator)


@dataclass(frozen=True, slots=True)
class StrategyUnits:
    """Ticks and lots of a strategy, and how they map onto its legs (in leg order).

    `price_factors[i]` is ratio * leg tick / strategy tick: the net price in strategy ticks of
    one strategy unit is sum(sign[i] * price_factors[i] * leg_price_ticks[i]).
    `lots_per_unit[i]` is how many lots of leg `i` one strategy lot needs.
    """

    tick: Fraction
    lot: Fraction
    price_factors: tuple[int, ...]
    lots_per_unit: tuple[int, ...]

    @classmethod
    def of(cls, legs: Sequence[Leg], rules: Mapping[str, TradingRules]) -> StrategyUnits:
        ticks = [Fraction(rules[leg.instrument].tick_size) for leg in legs]
        lots = [Fraction(rules[leg.instrument].lot_size) for leg in legs]
        tick = _gcd(ticks)
        lot = _lcm([leg_lot / leg.ratio for leg_lot, leg in zip(lots, legs, strict=True)])
        factors = tuple(
            int(leg.ratio * leg_tick / tick) for leg_tick, leg in zip(ticks, legs, strict=True)
        )
        per_unit = tuple(
            int(lot * leg.ratio / leg_lot) for leg_lot, leg in zip(lots, legs, strict=True)
        )
        return cls(tick, lot, factors, per_unit)

    def to_ticks(self, price: Decimal) -> int:
        return _whole(
            Fraction(price) / self.tick, field="price", code="invalid_price_tick", step=self.tick
        )

    def from_ticks(self, ticks: int | Fraction) -> Decimal:
        """Exact decimal of a (possibly fractional, for implied fills) strategy price."""
        return _to_decimal(self.tick * ticks)

    def to_lots(self, quantity: Decimal) -> int:
        return _whole(
            Fraction(quantity) / self.lot,
            field="quantity",
            code="invalid_quantity_lot",
            step=self.lot,
        )

    def from_lots(self, lots: int) -> Decimal:
        return _to_decimal(self.lot * lots)
