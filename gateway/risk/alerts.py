"""Margin alerts: levels of margin usage, raised on the way up and cleared with hysteresis.

Usage is margin required over margin available (1.0: nothing to spare). An alert fires
when an account's level changes: at once when usage crosses a threshold upwards, and only
once it is `hysteresis` below the threshold on the way down, so a price hovering at a
threshold does not flood the webhook.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


class MarginLevel(int, enum.Enum):
    OK = 0
    WARNING = 1
    MARGIN_CALL = 2
    LIQUIDATION = 3


@dataclass(frozen=True, slots=True)
class MarginThresholds:
    warning: Decimal = Decimal("0.5")
    margin_call: Decimal = Decimal("0.8")
    liquidation: Decimal = Decimal("1.0")
    hysteresis: Decimal = Decimal("0.05")

    def __post_init__(self) -> None:
        if not (0 < self.warning < self.margin_call < self.liquidation):
            raise ValueError("thresholds must increase: warning < margin call < liquidation")
        if not (0 <= self.hysteresis < self.warning):
            raise ValueError("hysteresis must be below the warning threshold")

    def bounds(self) -> list[tuple[MarginLevel, Decimal]]:
        return [
            (MarginLevel.WARNING, self.warning),
            (MarginLevel.MARGIN_CALL, self.margin_call),
            (MarginLevel.LIQUIDATION, self.liquidation),
        ]

    def level(self, usage: Decimal, current: MarginLevel) -> MarginLevel:
        level = MarginLevel.OK
        for candidate, threshold in self.bounds():
            # keep a level already reached until usage falls clearly below its threshold
            keep = candidate <= current and usage >= threshold - self.hysteresis
            if usage >= threshold or keep:
                level = candidate
        return level


@dataclass(frozen=True, slots=True)
class MarginAlert:
    account: str
    level: MarginLevel
    previous: MarginLevel
    usage: Decimal
    required: Decimal
    available: Decimal
    at: datetime

    def to_json(self) -> dict[str, object]:
        return {
            "type": "risk.margin_alert",
            "account": self.account,
            "alert": {
                "level": self.level.name.lower(),
                "previous": self.previous.name.lower(),
                "usage": str(self.usage),
                "required": str(self.required),
                "available": str(self.available),
                "at": self.at.isoformat(),
            },
        }


@dataclass
class MarginAlerts:
    thresholds: MarginThresholds = field(default_factory=MarginThresholds)
    levels: dict[str, MarginLevel] = field(default_factory=dict)

    def update(
        self, account: str, required: Decimal, available: Decimal, at: datetime
    ) -> MarginAlert | None:
        """The alert to send if the account's level changed, else None."""
        usage = usage_of(required, available)
        previous = self.levels.get(account, MarginLevel.OK)
        level = self.thresholds.level(usage, previous)
        if level is previous:
            return None
        self.levels[account] = level
        return MarginAlert(account, level, previous, usage, required, available, at)


def usage_of(required: Decimal, available: Decimal) -> Decimal:
    """required / available, rounded to 6 places; nothing required is 0, nothing available
    with something required is treated as far past liquidation."""
    if required <= 0:
        return Decimal(0)
    if available <= 0:
        return Decimal(999)
    return (required / available).quantize(Decimal("0.000001"))
