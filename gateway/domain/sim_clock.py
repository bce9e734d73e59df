"""A deterministic simulated clock, so time-driven logic is tested in seconds, not minutes.

`SimClock` implements `gateway.domain.clock.Clock` (`now()`), and time only moves when the
driver says so: `advance(delta)`, `advance_to(when)`, or `advance_to_next()` which jumps
straight to the earliest pending timer. Timers are plain records (a due time, an id and an
optional label); an optional callback runs when the timer fires, with `now()` equal to the
timer's due time, so a callback that schedules another timer inside the window being advanced
sees it fire in the same `advance` call, in order.

Ordering is total and reproducible: timers fire by due time, ties by scheduling order. No real
time, threads, I/O or global state are involved.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

TimerCallback = Callable[["Timer"], None]


@dataclass(frozen=True, slots=True, order=True)
class Timer:
    """A timer due at `when`. Ordered by (`when`, `timer_id`): ties fire in scheduling order."""

    when: datetime
    timer_id: int
    label: str = field(default="", compare=False)
    callback: TimerCallback | None = field(default=None, compare=False, repr=False)


class SimClock:
    """Simulated time starting at `start` (timezone-aware). Never moves backwards."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the simulated clock needs a timezone-aware start time")
        self._now = start
        self._heap: list[Timer] = []
        self._cancelled: set[int] = set()
        self._next_id = 0

    def now(self) -> datetime:
        return self._now

    # timers

    def schedule(
        self, when: datetime, label: str = "", callback: TimerCallback | None = None
    ) -> Timer:
        """Add a timer due at `when`; a time already past fires on the next advance."""
        if when.tzinfo is None:
            raise ValueError("timer times must be timezone-aware")
        timer = Timer(when, self._next_id, label, callback)
        self._next_id += 1
        heapq.heappush(self._heap, timer)
        return timer

    def schedule_in(
        self, delay: timedelta, label: str = "", callback: TimerCallback | None = None
    ) -> Timer:
        if delay < timedelta(0):
            raise ValueError("a timer delay cannot be negative")
        return self.schedule(self._now + delay, label, callback)

    def cancel(self, timer: Timer) -> None:
        """Cancel a pending timer; cancelling a fired or unknown timer does nothing."""
        if any(t.timer_id == timer.timer_id for t in self._heap):
            self._cancelled.add(timer.timer_id)

    def pending(self) -> list[Timer]:
        """Pending timers in firing order."""
        return sorted(t for t in self._heap if t.timer_id not in self._cancelled)

    def next_due(self) -> datetime | None:
        """Due time of the earliest pending timer, or None."""
        self._drop_cancelled_head()
        return self._heap[0].when if self._heap else None

    # moving time

    def advance(self, delta: timedelta) -> list[Timer]:
        if delta < timedelta(0):
            raise ValueError("the simulated clock cannot go backwards")
        return self.advance_to(self._now + delta)

    def advance_to(self, when: datetime) -> list[Timer]:
        """Move to `when`, firing every timer due at or before it in order; returns them."""
        if when < self._now:
            raise ValueError(f"the simulated clock cannot go backwards ({when} < {self._now})")
        fired: list[Timer] = []
        while True:
            self._drop_cancelled_head()
            if not self._heap or self._heap[0].when > when:
                break
            timer = heapq.heappop(self._heap)
            self._now = max(self._now, timer.when)
            fired.append(timer)
            if timer.callback is not None:
                timer.callback(timer)
        self._now = when
        return fired

    def advance_to_next(self) -> list[Timer]:
        """Jump to the earliest pending timer and fire every timer due at that instant.
        Returns an empty list (and does not move) when nothing is pending."""
        due = self.next_due()
        if due is None:
            return []
        return self.advance_to(max(due, self._now))

    def _drop_cancelled_head(self) -> None:
        while self._heap and self._heap[0].timer_id in self._cancelled:
            self._cancelled.discard(heapq.heappop(self._heap).timer_id)
