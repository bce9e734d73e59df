"""Exact amounts. Money is a `Decimal` for people and an `int` in token units for chains."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from gateway.domain.errors import DomainError

# Enough digits for 256-bit token amounts with 18 decimals; never rely on the default context.
MAX_DIGITS = 78


def parse_decimal(value: str | int | Decimal, *, field: str) -> Decimal:
    """Parse a decimal from text or int; floats are refused because they are not exact."""
    if isinstance(value, (bool, float)):
        raise DomainError(f"{field} must be a decimal string, not a float", field=field)
    try:
        result = Decimal(value)
    except (InvalidOperation, ValueError, TypeError):
        raise DomainError(f"{field} is not a decimal number", field=field) from None
    if not result.is_finite():
        raise DomainError(f"{field} must be finite", field=field)
    _sign, digits, exponent = result.as_tuple()
    assert isinstance(exponent, int)
    if len(digits) > MAX_DIGITS or exponent < -MAX_DIGITS or exponent > MAX_DIGITS:
        raise DomainError(f"{field} is out of range", field=field)
    return result


def is_multiple(value: Decimal, step: Decimal) -> bool:
    """True when `value` is an exact integer multiple of `step` (step > 0)."""
    return (value % step) == 0


def to_units(value: Decimal, decimals: int) -> int:
    """Convert a decimal amount to integer token units; refuses any loss of precision."""
    scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise DomainError(f"{value} has more than {decimals} decimals")
    return int(scaled)


def from_units(units: int, decimals: int) -> Decimal:
    """Convert integer token units back to an exact decimal amount."""
    return Decimal(units).scaleb(-decimals)


def canonical(value: Decimal) -> str:
    """One text form per value (no exponent, no trailing zeros) for storage and hashing."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text
