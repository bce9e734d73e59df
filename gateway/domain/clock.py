"""Time is passed in, never read inside the domain, so the rules stay pure and replayable."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...
