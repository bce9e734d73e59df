"""The consolidated book: every live venue's levels, fee-adjusted, merged by price.

Prices are what a taker actually pays (asks: price plus taker fee) or receives (bids:
price minus taker fee), so levels from different venues compare directly. Each venue's
adjusted levels are cached and only the venue that changed is recomputed; the merge is a
lazy k-way merge that stops at the requested depth.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal

from gateway.domain.market import BookLevel, FeeSchedule, OrderBook

_EXACT = Context(prec=60)  # fee adjustment never rounds at realistic magnitudes
_BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class VenueShare:
    venue: str
    price: Decimal  # the venue's own price, before fees
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class ConsolidatedLevel:
    price: Decimal  # all-in price for a taker
    quantity: Decimal
    shares: tuple[VenueShare, ...]


@dataclass(frozen=True, slots=True)
class ConsolidatedBook:
    instrument: str
    bids: tuple[ConsolidatedLevel, ...]
    asks: tuple[ConsolidatedLevel, ...]
    live_venues: tuple[str, ...]
    stale_venues: tuple[str, ...]
    timestamp: datetime | None

    @property
    def mid(self) -> Decimal | None:
        if not self.bids or not self.asks:
            return None
        return (self.bids[0].price + self.asks[0].price) / 2


# (all-in price, venue, raw price, quantity); bids store the negated price so that one
# ascending merge serves both sides.
_Entry = tuple[Decimal, str, Decimal, Decimal]


def _adjusted(
    venue: str, levels: Iterable[BookLevel], factor: Decimal, negate: bool, depth: int
) -> tuple[list[_Entry], bool]:
    """Adjust levels until `depth` distinct non-empty prices are covered.

    Returns the entries and whether the whole side was consumed.
    """
    sign = -1 if negate else 1
    entries: list[_Entry] = []
    prices: set[Decimal] = set()
    for level in levels:
        if level.quantity <= 0:
            continue
        if level.price not in prices:
            if len(prices) == depth:
                return entries, False
            prices.add(level.price)
        entries.append(
            (_EXACT.multiply(level.price, factor) * sign, venue, level.price, level.quantity)
        )
    return entries, True


def unchanged_top(before: OrderBook, after: OrderBook, limit: int) -> int:
    """How many first levels (up to `limit`) a venue's update left as they were, on both sides
    and none of them empty. A consolidated book `depth` levels deep holds only each venue's top
    `depth` levels (an empty one would let a deeper level in), so a book built to at most that
    depth reads the same after the update."""
    same = limit
    for old, new in ((before.bids, after.bids), (before.asks, after.asks)):
        count = 0
        for was, now in zip(old, new, strict=False):  # one side may be longer
            if count == same or not (was is now or was == now) or was.quantity <= 0:
                break
            count += 1
        else:
            if len(old) == len(new):  # the whole side as it was
                continue
        # a level at the same price as the last one kept adds into it: not kept either
        while count and (_repeats(old, count) or _repeats(new, count)):
            count -= 1
        same = count
    return same


def _repeats(levels: tuple[BookLevel, ...], index: int) -> bool:
    return index < len(levels) and levels[index].price == levels[index - 1].price


class ConsolidatedBookBuilder:
    """Keeps each venue's book for one instrument, fee-adjusted lazily.

    The top `depth` consolidated levels can only contain each venue's top `depth` levels,
    so only that prefix is adjusted, once per venue update.
    """

    def __init__(self, instrument: str) -> None:
        self.instrument = instrument
        self._books: dict[str, tuple[OrderBook, Decimal]] = {}  # venue -> (book, taker rate)
        # (venue, is_bid) -> (entries, depth they cover, whole side consumed)
        self._adjusted: dict[tuple[str, bool], tuple[list[_Entry], int, bool]] = {}
        # the books built since the last change, by (depth, stale venues): many readers
        # (mids for every pre-trade check, subscribers) between two venue updates
        self._built: dict[tuple[int, frozenset[str]], ConsolidatedBook] = {}

    def update(self, book: OrderBook, fees: FeeSchedule, *, unchanged: int = 0) -> None:
        """The venue's new book. `unchanged`: how many first levels it left as they were
        (`unchanged_top`); the books built no deeper stay, with the new time (the mid that
        every pre-trade check reads is not built again for an order resting deeper)."""
        rate = fees.taker_bps / _BPS
        previous = self._books.get(book.venue)
        self._books[book.venue] = (book, rate)
        built, self._built = self._built, {}
        if previous is not None and previous[1] == rate:
            for (depth, stale), kept in built.items():
                if depth <= unchanged:
                    times = [self._books[v][0].timestamp for v in kept.live_venues]
                    at = max(times) if times else None
                    self._built[(depth, stale)] = dataclasses.replace(kept, timestamp=at)
        self._adjusted.pop((book.venue, True), None)
        self._adjusted.pop((book.venue, False), None)

    def remove(self, venue: str) -> None:
        self._built.clear()
        self._books.pop(venue, None)
        self._adjusted.pop((venue, True), None)
        self._adjusted.pop((venue, False), None)

    @property
    def venues(self) -> frozenset[str]:
        return frozenset(self._books)

    def _side(self, venue: str, bids: bool, depth: int) -> list[_Entry]:
        cached = self._adjusted.get((venue, bids))
        if cached is not None and (cached[1] >= depth or cached[2]):
            return cached[0]
        book, taker = self._books[venue]
        factor = 1 - taker if bids else 1 + taker
        entries, complete = _adjusted(venue, book.bids if bids else book.asks, factor, bids, depth)
        self._adjusted[(venue, bids)] = (entries, depth, complete)
        return entries

    def build(self, depth: int, *, stale: frozenset[str] = frozenset()) -> ConsolidatedBook:
        stale = frozenset(v for v in stale if v in self._books)
        built = self._built.get((depth, stale))
        if built is None:
            built = self._built[(depth, stale)] = self._build(depth, stale)
        return built

    def _build(self, depth: int, stale: frozenset[str]) -> ConsolidatedBook:
        live = sorted(v for v in self._books if v not in stale)
        bids = _merge((self._side(v, True, depth) for v in live), depth, negated=True)
        asks = _merge((self._side(v, False, depth) for v in live), depth, negated=False)
        times = [self._books[v][0].timestamp for v in live]
        return ConsolidatedBook(
            instrument=self.instrument,
            bids=bids,
            asks=asks,
            live_venues=tuple(live),
            stale_venues=tuple(sorted(v for v in self._books if v in stale)),
            timestamp=max(times) if times else None,
        )


def _merge(
    sides: Iterable[list[_Entry]], depth: int, *, negated: bool
) -> tuple[ConsolidatedLevel, ...]:
    merged: Iterator[_Entry] = heapq.merge(*sides)
    levels: list[ConsolidatedLevel] = []
    for key, group in itertools.groupby(merged, key=lambda entry: entry[0]):
        shares = tuple(VenueShare(venue, raw, quantity) for _, venue, raw, quantity in group)
        levels.append(
            ConsolidatedLevel(
                price=-key if negated else key,
                quantity=sum((s.quantity for s in shares), Decimal(0)),
                shares=shares,
            )
        )
        if len(levels) == depth:
            break
    return tuple(levels)


def consolidate(
    books: Mapping[str, OrderBook],
    fees: Mapping[str, FeeSchedule],
    depth: int,
    *,
    stale: frozenset[str] = frozenset(),
) -> ConsolidatedBook:
    """One-shot consolidation of venue snapshots for one instrument."""
    instruments = {book.instrument for book in books.values()}
    if len(instruments) != 1:
        raise ValueError("consolidate one instrument at a time")
    builder = ConsolidatedBookBuilder(instruments.pop())
    for venue, book in books.items():
        builder.update(book, fees[venue])
    return builder.build(depth, stale=stale)
