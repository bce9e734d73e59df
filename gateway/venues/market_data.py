"""Live market data from every venue, consolidated per instrument.

One feed task per venue reads its book stream and folds each book into the consolidated
book. Subscribers get conflated updates: the latest book per instrument, never a growing
queue. A feed whose stream fails is stale at once: its quotes leave the consolidated book
(never shown as live) and the feed reconnects with exponential backoff and jitter.

When a live feed turns stale depends on the kind of liquidity behind it (`STALENESS`, chosen
by the venue's `VenueKind`):

- An exchange (`CEX`: `Staleness.SILENCE`) is stale when its stream fails or has been silent
  for longer than `stale_after`: an exchange that stops talking may have stopped quoting, so
  its last book cannot be trusted.
- A pool (`AMM`: `Staleness.CHAIN_READ`) is stale when the chain is unreachable (a read that
  fails raises `VenueUnavailable`, which ends the stream: stale at once) or when its reserves
  were not read at the chain's head within `stale_after`. A quiet pool's book does not change,
  so its stream reads the reserves at the head again at least once a second and sends the same
  book: that repeat is the pool's heartbeat, taken here as proof of a recent read (the venue
  counts as heard from) and never published as an update.
- The internal book (`INTERNAL`: `Staleness.FEED_ALIVE`) is never stale while its feed task
  runs: it is the gateway's own book, and silence only means that nothing rested, traded or
  left. It is stale while its stream is failing (until it reconnects) or once its task ended.

For every kind, a feed that has not delivered its first book, whose stream failed, or whose
task ended, is stale. `stale_venues()` applies the rule at the moment it is asked (on the
hub's injected clock); the watchdog applies it every `stale_after / 4` and turns the status
of a feed that aged out to STALE, so that status listeners hear of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from gateway.domain.clock import Clock
from gateway.domain.consolidated_book import (
    ConsolidatedBook,
    ConsolidatedBookBuilder,
    unchanged_top,
)
from gateway.domain.market import OrderBook, VenueKind
from gateway.venues.protocol import Venue

log = logging.getLogger("gateway.venues")


class FeedStatus(str, enum.Enum):
    CONNECTING = "connecting"
    LIVE = "live"
    STALE = "stale"


class Staleness(enum.Enum):
    """What makes a live feed stale, besides a failing stream or an ended feed task."""

    SILENCE = "silence"  # an exchange: no book for longer than `stale_after`
    CHAIN_READ = "chain_read"  # a pool: no read of its reserves at the head within `stale_after`
    FEED_ALIVE = "feed_alive"  # the internal book: nothing more (silence is not staleness)

    @property
    def ages(self) -> bool:
        """Whether the feed is stale once its last word is older than `stale_after`."""
        return self is not Staleness.FEED_ALIVE


STALENESS: Mapping[VenueKind, Staleness] = MappingProxyType(
    {
        VenueKind.CEX: Staleness.SILENCE,
        VenueKind.AMM: Staleness.CHAIN_READ,
        VenueKind.INTERNAL: Staleness.FEED_ALIVE,
    }
)


@dataclass
class VenueFeed:
    venue: Venue
    instruments: tuple[str, ...]
    staleness: Staleness = Staleness.SILENCE
    status: FeedStatus = FeedStatus.CONNECTING
    last_update: datetime | None = None  # the last book, changed or not (a pool: its last read)
    failures: int = 0
    reconnects: int = 0  # times it came back live after being stale (not its first book)
    last_error: str | None = None
    task: asyncio.Task[None] | None = None  # None: fed through `apply` by its caller
    heard: asyncio.Event = field(default_factory=asyncio.Event, repr=False)  # set per book


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.2
    maximum: float = 10.0
    jitter: float = 0.2  # fraction of the delay, so reconnecting venues don't synchronize

    def delay(self, failures: int, rng: random.Random) -> float:
        base: float = min(self.maximum, self.initial * 2.0 ** max(0, failures - 1))
        return base * (1 + self.jitter * (2 * rng.random() - 1))


class ConflatedBooks:
    """A subscriber's mailbox: at most one pending book per instrument. A pending book is
    built when the subscriber reads it, not on every venue update: a burst of updates
    between two reads costs one consolidation."""

    def __init__(self, instruments: frozenset[str], depth: int) -> None:
        self.instruments = instruments
        self.depth = depth
        self._latest: dict[str, Callable[[], ConsolidatedBook]] = {}
        self._ready = asyncio.Event()
        self.conflated = 0  # updates replaced before the subscriber read them

    def offer(self, book: ConsolidatedBook) -> None:
        self.offer_later(book.instrument, lambda: book)

    def offer_later(self, instrument: str, build: Callable[[], ConsolidatedBook]) -> None:
        """`build()` gives the instrument's book as of when it is read."""
        if instrument not in self.instruments:
            return
        if instrument in self._latest:
            self.conflated += 1
        self._latest[instrument] = build
        self._ready.set()

    @property
    def pending(self) -> int:
        return len(self._latest)

    async def next(self) -> list[ConsolidatedBook]:
        await self._ready.wait()
        self._ready.clear()
        builds = list(self._latest.values())
        self._latest.clear()
        return [build() for build in builds]


class MarketDataHub:
    def __init__(
        self,
        venues: Sequence[Venue],
        instruments: Mapping[str, Sequence[str]] | None,
        clock: Clock,
        *,
        stale_after: float = 5.0,
        depth: int = 20,
        backoff: Backoff | None = None,
        seed: int | None = None,
    ) -> None:
        self._clock = clock
        self._stale_after = timedelta(seconds=stale_after)
        self._depth = depth
        self._backoff = backoff or Backoff()
        self._rng = random.Random(seed)
        # None: ask each venue what it trades when its feed starts
        self._declared = instruments
        self.feeds: dict[str, VenueFeed] = {
            v.name: VenueFeed(
                v,
                tuple((instruments or {}).get(v.name, ())),
                STALENESS.get(v.kind, Staleness.SILENCE),
            )
            for v in venues
        }
        self._builders: dict[str, ConsolidatedBookBuilder] = {}
        self._latest: dict[str, dict[str, OrderBook]] = {}  # instrument: venue: raw book
        self._subscribers: set[ConflatedBooks] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._listeners: list[Callable[[str, FeedStatus], None]] = []
        self._stopping = False
        self.updates = 0

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        for feed in self.feeds.values():
            if feed.instruments or self._declared is None:
                task = asyncio.create_task(self._run(feed), name=f"feed-{feed.venue.name}")
                task.add_done_callback(functools.partial(self._feed_ended, feed))
                feed.task = task
                self._tasks.append(task)
        self._tasks.append(asyncio.create_task(self._watch_staleness(), name="feed-watchdog"))

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def on_status_change(self, listener: Callable[[str, FeedStatus], None]) -> None:
        self._listeners.append(listener)

    # -- reads ------------------------------------------------------------------------

    @property
    def instruments(self) -> frozenset[str]:
        return frozenset(self._builders)

    def stale_venues(self) -> frozenset[str]:
        """The venues whose quotes are not live now, each by the rule of its kind."""
        now = self._clock.now()
        return frozenset(name for name, feed in self.feeds.items() if self._stale(feed, now))

    def _stale(self, feed: VenueFeed, now: datetime) -> bool:
        if feed.status is not FeedStatus.LIVE or feed.last_update is None:
            return True  # no first book yet, or its stream failed and it is reconnecting
        if feed.task is not None and feed.task.done():
            return True  # its feed task ended: nothing reads the venue any more
        return feed.staleness.ages and now - feed.last_update > self._stale_after

    async def heard_from(self, venue: str, since: datetime) -> None:
        """Wait until `venue`'s feed has delivered a book (or the same book again: a pool's
        read at the head) at or after `since` on the hub's clock. Bound it with a timeout."""
        feed = self.feeds[venue]
        while feed.last_update is None or feed.last_update < since:
            await feed.heard.wait()

    def book(self, instrument: str, depth: int | None = None) -> ConsolidatedBook:
        """The consolidated book (empty when no venue quotes the instrument)."""
        builder = self._builders.get(instrument) or ConsolidatedBookBuilder(instrument)
        return builder.build(depth or self._depth, stale=self.stale_venues())

    def venue_books(self, instrument: str) -> dict[str, OrderBook]:
        """Each live venue's own latest book of `instrument` (stale venues left out): what
        the router splits an order across."""
        stale = self.stale_venues()
        books = self._latest.get(instrument, {})
        return {name: book for name, book in books.items() if name not in stale}

    def subscribe(self, instruments: frozenset[str], depth: int | None = None) -> ConflatedBooks:
        """Conflated consolidated books of `instruments`, `depth` levels (the hub's depth by
        default; 1 for a reader of mids)."""
        subscription = ConflatedBooks(instruments, depth or self._depth)
        self._subscribers.add(subscription)
        for symbol in instruments:
            subscription.offer(self.book(symbol, subscription.depth))
        return subscription

    def unsubscribe(self, subscription: ConflatedBooks) -> None:
        self._subscribers.discard(subscription)

    # -- feeds ------------------------------------------------------------------------

    def apply(self, venue: str, book: OrderBook) -> None:
        """Fold one venue update in and publish the consolidated book."""
        feed = self._feed_alive(venue)
        previous = self._latest.get(book.instrument, {}).get(venue)
        if previous is not None and (previous.bids, previous.asks) == (book.bids, book.asks):
            # the venue sent the same book again (a pool's reserves read at the head): it was
            # heard from, and nothing changed to publish
            return
        builder = self._builders.get(book.instrument)
        if builder is None:
            builder = self._builders[book.instrument] = ConsolidatedBookBuilder(book.instrument)
        # how deep the update left the book as it was: who needs to hear of it, what stays built
        unchanged = 0 if previous is None else unchanged_top(previous, book, self._deepest())
        builder.update(book, feed.venue.fees(book.instrument), unchanged=unchanged)
        self._latest.setdefault(book.instrument, {})[venue] = book
        self.updates += 1
        self._publish(book.instrument, unchanged)

    def _feed_alive(self, venue: str) -> VenueFeed:
        feed = self.feeds[venue]
        feed.last_update = self._clock.now()
        if feed.status is not FeedStatus.LIVE:
            if feed.status is FeedStatus.STALE:
                feed.reconnects += 1
            self._set_status(feed, FeedStatus.LIVE)
            feed.failures = 0
        heard, feed.heard = feed.heard, asyncio.Event()
        heard.set()
        return feed

    def _deepest(self) -> int:
        """The deepest book anyone reads by default or by subscription."""
        return max([self._depth, *(s.depth for s in self._subscribers)])

    def _publish(self, instrument: str, unchanged: int = 0) -> None:
        """Offer the instrument's book to its subscribers, but not to those that read no
        deeper than the `unchanged` first levels of a venue's update: an order resting below
        what they read moves nothing they see (the risk monitor reads one level)."""
        interested = [s for s in self._subscribers if instrument in s.instruments]
        if not interested:
            return
        for subscription in interested:
            if subscription.depth <= unchanged:
                continue
            # built when read (the builder keeps what it built until the next change)
            subscription.offer_later(
                instrument, functools.partial(self.book, instrument, subscription.depth)
            )

    def _set_status(self, feed: VenueFeed, status: FeedStatus) -> None:
        if feed.status is status:
            return
        feed.status = status
        log.info("venue %s is %s", feed.venue.name, status.value)
        for symbol in feed.instruments:
            if symbol in self._builders:
                self._publish(symbol)
        for listener in self._listeners:
            listener(feed.venue.name, status)

    async def _run(self, feed: VenueFeed) -> None:
        while True:
            try:
                if not feed.instruments:
                    feed.instruments = tuple(i.symbol for i in await feed.venue.load_instruments())
                async for book in feed.venue.stream_order_books(feed.instruments):
                    self.apply(feed.venue.name, book)
                raise ConnectionError("stream ended")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                feed.failures += 1
                feed.last_error = f"{type(error).__name__}: {error}"
                self._set_status(feed, FeedStatus.STALE)
                delay = self._backoff.delay(feed.failures, self._rng)
                log.warning(
                    "venue %s feed failed (%s); retry in %.2fs",
                    feed.venue.name,
                    feed.last_error,
                    delay,
                )
                await asyncio.sleep(delay)

    def _feed_ended(self, feed: VenueFeed, task: asyncio.Task[None]) -> None:
        """A feed task never ends by itself (`_run` retries every failure): one that did, other
        than by `stop`, leaves its venue unread, so the venue is stale from now on."""
        if self._stopping:
            return
        error = None if task.cancelled() else task.exception()
        feed.last_error = "feed task cancelled" if error is None else f"feed task died: {error!r}"
        log.error("venue %s: %s", feed.venue.name, feed.last_error)
        self._set_status(feed, FeedStatus.STALE)

    def check_staleness(self) -> None:
        """Turn every live feed that is stale now, by the rule of its kind, to STALE (the
        watchdog's check, for a feed that went quiet or stopped reading without an error)."""
        now = self._clock.now()
        for feed in self.feeds.values():
            if feed.status is FeedStatus.LIVE and self._stale(feed, now):
                self._set_status(feed, FeedStatus.STALE)

    async def _watch_staleness(self) -> None:
        period = max(0.05, self._stale_after.total_seconds() / 4)
        while True:
            await asyncio.sleep(period)
            self.check_staleness()
