"""In-process fan-out of committed order events to WebSocket subscribers.

Each subscriber has a bounded queue. A subscriber that falls behind by a whole queue is
dropped (and told so) instead of growing memory or slowing the others; it re-reads the
state over REST when it reconnects.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Subscription:
    accounts: frozenset[str] | None  # None: every account
    queue: asyncio.Queue[dict[str, Any]]
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)
    # why it was dropped: it fell a whole queue behind, or events were lost before it
    reason: str = "slow_consumer"

    def wants(self, event: dict[str, Any]) -> bool:
        return self.accounts is None or event.get("account") in self.accounts


class OrderEvents:
    def __init__(self, queue_size: int) -> None:
        self._queue_size = queue_size
        self._subscribers: set[Subscription] = set()

    def subscribe(self, accounts: frozenset[str] | None) -> Subscription:
        subscription = Subscription(accounts, asyncio.Queue(self._queue_size))
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish_all(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.publish(event)

    def gap(self) -> None:
        """Events were lost before they reached this process: every subscriber is told and
        dropped, as a slow one is, and re-reads the state when it reconnects."""
        for subscription in list(self._subscribers):
            subscription.reason = "events_missed"
            subscription.overflowed.set()
            self._subscribers.discard(subscription)

    def publish(self, event: dict[str, Any]) -> None:
        for subscription in list(self._subscribers):
            if not subscription.wants(event):
                continue
            try:
                subscription.queue.put_nowait(event)
            except asyncio.QueueFull:
                subscription.overflowed.set()
                self._subscribers.discard(subscription)
