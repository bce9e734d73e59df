"""Reading and writing the fields of persisted JSON documents (algo and legging states):
decimals as strings, never floats; durations as whole microseconds; times as ISO 8601."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal


def micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def decimal_field(value: object) -> Decimal:
    if not isinstance(value, str):
        raise ValueError(f"expected a decimal string, got {type(value).__name__}")
    return Decimal(value)


def optional_decimal(value: object) -> Decimal | None:
    return None if value is None else decimal_field(value)


def optional_text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def optional_time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def parse_optional_time(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 time, got {type(value).__name__}")
    return datetime.fromisoformat(value)
