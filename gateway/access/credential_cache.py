"""Credentials this gateway read from the database, trusted for a short while.

Every request of a trader (a session token) or a protocol (an API key) used to read its
credential from the database on a worker thread: half a millisecond per order, more than the
rest of the order's checks. A credential read once is kept for `ttl` seconds. Only what was
found is kept (an unknown token is read again each time, so nothing an attacker sends fills
the memory, and a session opened on another replica is seen at once). A sign-out or a
revocation on this gateway forgets its credential at once; on another replica it holds for at
most `ttl`. A session's own expiry is checked on every request, cached or not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

V = TypeVar("V")
MAX_ENTRIES = 100_000  # past this, start again rather than grow without bound


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    read_at: datetime


class CredentialCache(Generic[V]):
    def __init__(self, ttl_seconds: float) -> None:
        self._ttl = timedelta(seconds=ttl_seconds)
        self._entries: dict[str, _Entry[V]] = {}
        # bumped by every `forget`: a read that began before one is not kept (it may have
        # found the credential the sign-out or revocation was removing)
        self.epoch = 0

    def get(self, key: str, now: datetime) -> V | None:
        """The value read for `key` within the last `ttl`, else None (read it again)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if not entry.read_at <= now < entry.read_at + self._ttl:
            del self._entries[key]
            return None
        return entry.value

    async def get_or_read(
        self,
        key: str,
        now: datetime,
        read: Callable[[], Awaitable[V | None]],
        keep: Callable[[V], bool] = lambda value: True,
    ) -> V | None:
        """The value kept for `key`, else what `read()` finds (kept when `keep(value)` and
        no `forget` came while it read)."""
        found = self.get(key, now)
        if found is not None:
            return found
        epoch = self.epoch
        found = await read()
        if found is not None and keep(found):
            self.put(key, found, now, epoch)
        return found

    def put(self, key: str, value: V, now: datetime, epoch: int) -> None:
        """Keep what a read found; `epoch`: `self.epoch` when that read began."""
        if self._ttl <= timedelta(0) or epoch != self.epoch:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = _Entry(value, now)

    def forget(self, key: str) -> None:
        self.epoch += 1
        self._entries.pop(key, None)
