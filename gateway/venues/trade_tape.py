"""The consolidated public trade tape of an instrument across venues: market volume for POV
algos, VWAP volume profiles from venue history, and VWAP benchmarks for TCA.

`TradeTape` reads each venue's `fetch_trades` (public trades, everyone's) for the venues
that list the instrument (by `load_instruments`, asked once per venue). Trades are told apart
by `(venue, trade_id)`.

Failure policy: a venue that raises `VenueError` or does not answer within `timeout` seconds
is left out of that call with a warning; the others still count. For `poll` its cursor is
kept, so the trades it missed are counted on the first poll it answers again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from gateway.domain.clock import Clock
from gateway.domain.document_fields import micros
from gateway.domain.market import PublicTrade
from gateway.routing.algos import volume_profile_from_history
from gateway.venues.protocol import Venue, VenueError

_log = logging.getLogger(__name__)
ZERO = Decimal(0)
ONE_DAY = timedelta(days=1)
TICK = timedelta(microseconds=1)  # the finest time step of a `datetime`
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Cursor:
    """Where the next poll of one venue starts: trades at or after `since`, except the
    `seen` ids (those already counted at exactly `since`)."""

    since: datetime
    seen: frozenset[str]


class _Skipped(Exception):
    """A venue failed or timed out for this call (already logged)."""


class TradeTape:
    """Public trades of an instrument (our symbol) across `venues`.

    `timeout`: seconds a venue gets per request; `page_size`: the `limit` of each
    `fetch_trades`; `clock_margin`: how far before our clock the first poll of a venue that
    has no trades at all starts counting (venue clocks and block times differ from ours)."""

    def __init__(
        self,
        venues: Sequence[Venue],
        *,
        clock: Clock | None = None,
        timeout: float = 10.0,
        page_size: int = 1000,
        clock_margin: timedelta = timedelta(minutes=5),
    ) -> None:
        if page_size <= 0:
            raise ValueError("page_size must be positive")
        self.venues = list(venues)
        self._clock = clock
        self.timeout = timeout
        self.page_size = page_size
        self.clock_margin = clock_margin
        self._listed: dict[str, frozenset[str]] = {}
        self._cursors: dict[tuple[str, str], _Cursor] = {}
        self._poll_locks: dict[str, asyncio.Lock] = {}

    def _now(self) -> datetime:
        return self._clock.now() if self._clock is not None else datetime.now(tz=UTC)

    async def _ask(self, venue: Venue, what: str, awaitable: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(awaitable, self.timeout)
        except TimeoutError:
            _log.warning("%s: %s timed out after %ss; skipped", venue.name, what, self.timeout)
            raise _Skipped from None
        except VenueError as error:
            _log.warning("%s: %s failed (%s): %s; skipped", venue.name, what, error.code, error)
            raise _Skipped from error

    async def _venues_listing(self, instrument: str) -> list[Venue]:
        async def lists(venue: Venue) -> bool:
            if venue.name not in self._listed:
                try:
                    loaded = await self._ask(venue, "load_instruments", venue.load_instruments())
                except _Skipped:
                    return False  # asked again next time
                self._listed[venue.name] = frozenset(i.symbol for i in loaded)
            return instrument in self._listed[venue.name]

        listed = await asyncio.gather(*(lists(venue) for venue in self.venues))
        return [venue for venue, ok in zip(self.venues, listed, strict=True) if ok]

    # --- live volume ------------------------------------------------------------------------

    async def poll(self, instrument: str) -> Decimal:
        """Public volume (base units) traded in `instrument` on all venues listing it since
        the previous poll. The first poll of a venue only sets its cursor (counts 0)."""
        # concurrent polls of one instrument would count the same trades twice
        async with self._poll_locks.setdefault(instrument, asyncio.Lock()):
            venues = await self._venues_listing(instrument)
            volumes = await asyncio.gather(*(self._poll_venue(v, instrument) for v in venues))
        return sum(volumes, ZERO)

    async def _poll_venue(self, venue: Venue, instrument: str) -> Decimal:
        key = (venue.name, instrument)
        cursor = self._cursors.get(key)
        try:
            if cursor is None:
                self._cursors[key] = await self._establish(venue, instrument)
                return ZERO
            volume, moved = await self._advance(venue, instrument, cursor)
        except _Skipped:
            return ZERO
        self._cursors[key] = moved  # only once every page of this poll arrived
        return volume

    async def _establish(self, venue: Venue, instrument: str) -> _Cursor:
        latest = await self._ask(
            venue, "fetch_trades", venue.fetch_trades(instrument, None, self.page_size)
        )
        if not latest:
            # Nothing traded yet, so whatever shows up later is new; start a margin before
            # our clock because venue clocks differ (and block times are whole seconds).
            return _Cursor(self._now() - self.clock_margin, frozenset())
        last = max(t.timestamp for t in latest)
        return _Cursor(last, frozenset(t.trade_id for t in latest if t.timestamp == last))

    async def _advance(
        self, venue: Venue, instrument: str, cursor: _Cursor
    ) -> tuple[Decimal, _Cursor]:
        volume = ZERO
        since, seen = cursor.since, set(cursor.seen)
        while True:
            page = await self._ask(
                venue, "fetch_trades", venue.fetch_trades(instrument, since, self.page_size)
            )
            fresh: dict[str, PublicTrade] = {}
            for trade in page:
                if trade.timestamp >= since and trade.trade_id not in seen:
                    fresh.setdefault(trade.trade_id, trade)
            if not fresh:
                if len(page) < self.page_size or any(t.timestamp != since for t in page):
                    break
                # a full page of trades already counted, all at `since`: step past it
                self._warn_crowded(venue, instrument, since)
                since, seen = since + TICK, set()
                continue
            volume += sum((t.quantity for t in fresh.values()), ZERO)
            last = max(t.timestamp for t in fresh.values())
            at_last = {t.trade_id for t in fresh.values() if t.timestamp == last}
            seen = seen | at_last if last == since else at_last
            since = last
            if len(page) < self.page_size:
                break  # the venue had no more (a short page here is the end for now)
        return volume, _Cursor(since, frozenset(seen))

    def _warn_crowded(self, venue: Venue, instrument: str, at: datetime) -> None:
        _log.warning(
            "%s: a page of %d trades of %s all at %s; any more at that instant are missed",
            venue.name,
            self.page_size,
            instrument,
            at.isoformat(),
        )

    # --- history ----------------------------------------------------------------------------

    async def trades(self, instrument: str, start: datetime, end: datetime) -> list[PublicTrade]:
        """Every venue's public trades with `start <= timestamp <= end`, oldest first."""
        if end < start:
            return []
        venues = await self._venues_listing(instrument)
        per_venue = await asyncio.gather(
            *(self._venue_trades(v, instrument, start, end) for v in venues)
        )
        merged = [trade for trades in per_venue for trade in trades]
        merged.sort(key=lambda t: (t.timestamp, t.venue, t.trade_id))
        return merged

    async def _venue_trades(
        self, venue: Venue, instrument: str, start: datetime, end: datetime
    ) -> list[PublicTrade]:
        collected: dict[str, PublicTrade] = {}
        since = start
        try:
            while True:
                page = await self._ask(
                    venue, "fetch_trades", venue.fetch_trades(instrument, since, self.page_size)
                )
                fresh = [t for t in page if t.timestamp >= since and t.trade_id not in collected]
                for trade in fresh:
                    if trade.timestamp <= end:
                        collected[trade.trade_id] = trade
                if not fresh:
                    crowded = all(t.timestamp == since for t in page)
                    if len(page) < self.page_size or not crowded or since + TICK > end:
                        break
                    self._warn_crowded(venue, instrument, since)  # as in `_advance`
                    since += TICK
                    continue
                last = max(t.timestamp for t in fresh)
                if last > end:
                    break
                since = last
        except _Skipped:
            return []
        return sorted(collected.values(), key=lambda t: (t.timestamp, t.trade_id))

    async def vwap(
        self, instrument: str, start: datetime, end: datetime
    ) -> tuple[Decimal | None, Decimal]:
        """Volume-weighted average price over `[start, end]` (None without trades) and the
        volume, across venues. Prices are each venue's price currency: mix only venues that
        quote the instrument in the same one."""
        trades = await self.trades(instrument, start, end)
        volume = sum((t.quantity for t in trades), ZERO)
        if volume == 0:
            return None, ZERO
        notional = sum((t.price * t.quantity for t in trades), ZERO)
        return notional / volume, volume

    async def volume_profile(
        self, instrument: str, start: datetime, end: datetime, buckets: int, days: int
    ) -> tuple[Decimal, ...] | None:
        """Expected fraction of the volume of `[start, end]` (at most a day) falling in each
        of `buckets` equal slices, learnt from the same UTC time-of-day window on each of the
        previous `days` days. Days are pooled by volume (a busier day weighs more). None if
        that history has no volume. Fractions come from
        `gateway.routing.algos.volume_profile_from_history` (sum 1 to its 28 digits)."""
        if buckets <= 0 or days <= 0:
            raise ValueError("buckets and days must be positive")
        duration = end - start
        if duration <= timedelta(0) or duration > ONE_DAY:
            raise ValueError("the window must be longer than zero and at most a day")
        windows = [(start - ONE_DAY * d, end - ONE_DAY * d) for d in range(1, days + 1)]
        per_day = await asyncio.gather(*(self.trades(instrument, a, b) for a, b in windows))
        span = micros(duration)
        totals = [ZERO] * buckets
        for (window_start, _), trades in zip(windows, per_day, strict=True):
            for trade in trades:
                index = micros(trade.timestamp - window_start) * buckets // span
                totals[min(index, buckets - 1)] += trade.quantity
        if sum(totals, ZERO) == 0:
            return None
        return volume_profile_from_history(totals, buckets)
