"""The consolidated book equals a naive reference merge, for any books and fees, and a book the
builder keeps across an update that left its levels as they were equals one built afresh."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.consolidated_book import ConsolidatedBookBuilder, consolidate, unchanged_top
from gateway.domain.market import BookLevel, FeeSchedule, OrderBook

T0 = datetime(2026, 11, 25, tzinfo=UTC)
VENUES = ["binance", "deribit", "uniswap", "internal"]


def book(
    venue: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]], t: int = 0
) -> OrderBook:
    return OrderBook(
        venue,
        "WETH/USDC",
        tuple(BookLevel(Decimal(p), Decimal(q)) for p, q in bids),
        tuple(BookLevel(Decimal(p), Decimal(q)) for p, q in asks),
        T0 + timedelta(seconds=t),
    )


def test_fees_make_venues_comparable() -> None:
    books = {
        "cheap_fee": book("cheap_fee", [("3000", "1")], [("3001", "1")]),
        "dear_fee": book("dear_fee", [("3000.5", "2")], [("3000.5", "2")]),
    }
    fees = {
        "cheap_fee": FeeSchedule(Decimal(0), Decimal(0)),
        "dear_fee": FeeSchedule(Decimal(0), Decimal(10)),  # 10 bp taker
    }
    merged = consolidate(books, fees, depth=10)
    # 3000.5 * 1.001 = 3003.5005 > 3001: the zero-fee venue's ask is better all-in.
    assert [lvl.price for lvl in merged.asks] == [Decimal("3001"), Decimal("3003.5005")]
    # 3000.5 * 0.999 = 2997.4995 < 3000: the zero-fee venue's bid is better too.
    assert [lvl.price for lvl in merged.bids] == [Decimal("3000"), Decimal("2997.4995")]
    assert merged.asks[1].shares[0].price == Decimal("3000.5")  # raw venue price kept
    assert merged.mid == (Decimal("3000") + Decimal("3001")) / 2


def test_equal_prices_aggregate_and_stale_venues_drop_out() -> None:
    books = {
        "a": book("a", [("100", "1")], [("101", "1")], t=1),
        "b": book("b", [("100", "2")], [("102", "1")], t=2),
    }
    zero = FeeSchedule(Decimal(0), Decimal(0))
    merged = consolidate(books, {"a": zero, "b": zero}, depth=5)
    assert merged.bids[0].quantity == Decimal(3)
    assert {s.venue for s in merged.bids[0].shares} == {"a", "b"}
    only_b = consolidate(books, {"a": zero, "b": zero}, depth=5, stale=frozenset({"a"}))
    assert only_b.live_venues == ("b",) and only_b.stale_venues == ("a",)
    assert only_b.bids[0].quantity == Decimal(2)
    assert only_b.asks[0].price == Decimal(102)
    assert only_b.timestamp == T0 + timedelta(seconds=2)


PRICES = st.integers(min_value=1, max_value=5000).map(lambda n: Decimal(n) / 4)
QUANTITIES = st.integers(min_value=0, max_value=1000).map(lambda n: Decimal(n) / 10)
LEVELS = st.lists(st.tuples(PRICES, QUANTITIES), max_size=12)
FEES = st.integers(min_value=-5, max_value=50).map(Decimal)


def reference(
    books: dict[str, OrderBook], fees: dict[str, FeeSchedule], depth: int, stale: frozenset[str]
):  # type: ignore[no-untyped-def]
    """Naive: adjust everything, sort everything, aggregate."""
    sides = {}
    for side, factor_sign, reverse in (("bids", -1, True), ("asks", 1, False)):
        totals: dict[Decimal, Decimal] = defaultdict(Decimal)
        for venue, b in books.items():
            if venue in stale:
                continue
            factor = 1 + factor_sign * fees[venue].taker_bps / 10_000
            for level in getattr(b, side):
                if level.quantity > 0:
                    totals[level.price * factor] += level.quantity
        sides[side] = sorted(totals.items(), reverse=reverse)[:depth]
    return sides


@given(
    st.dictionaries(
        st.sampled_from(VENUES),
        st.tuples(LEVELS, LEVELS, FEES),
        min_size=1,
        max_size=4,
    ),
    st.integers(min_value=1, max_value=30),
    st.sets(st.sampled_from(VENUES)),
)
def test_matches_the_naive_reference(
    data: dict[str, tuple], depth: int, stale_set: set[str]
) -> None:  # type: ignore[type-arg]
    books = {}
    fees = {}
    for venue, (bids, asks, fee) in data.items():
        bids_sorted = sorted(bids, key=lambda level: -level[0])
        asks_sorted = sorted(asks, key=lambda level: level[0])
        books[venue] = OrderBook(
            venue,
            "WETH/USDC",
            tuple(BookLevel(p, q) for p, q in bids_sorted),
            tuple(BookLevel(p, q) for p, q in asks_sorted),
            T0,
        )
        fees[venue] = FeeSchedule(Decimal(0), fee)
    stale = frozenset(stale_set)
    merged = consolidate(books, fees, depth, stale=stale)
    expected = reference(books, fees, depth, stale)
    assert [(lvl.price, lvl.quantity) for lvl in merged.bids] == expected["bids"]
    assert [(lvl.price, lvl.quantity) for lvl in merged.asks] == expected["asks"]
    for level in merged.bids + merged.asks:
        assert level.quantity == sum(s.quantity for s in level.shares)


def test_builder_recomputes_only_what_changed() -> None:
    zero = FeeSchedule(Decimal(0), Decimal(0))
    builder = ConsolidatedBookBuilder("WETH/USDC")
    builder.update(book("a", [("100", "1")], [("101", "1")]), zero)
    builder.update(book("b", [("99", "1")], [("102", "1")]), zero)
    builder.update(book("a", [("98", "5")], [("103", "5")]), zero)  # a moved
    merged = builder.build(depth=5)
    assert [lvl.price for lvl in merged.bids] == [Decimal(99), Decimal(98)]
    assert [lvl.price for lvl in merged.asks] == [Decimal(102), Decimal(103)]
    builder.remove("b")
    assert builder.venues == frozenset({"a"})


def venue_book(venue: str, bids: list, asks: list, t: int) -> OrderBook:  # type: ignore[type-arg]
    return OrderBook(
        venue,
        "WETH/USDC",
        tuple(BookLevel(p, q) for p, q in sorted(bids, key=lambda level: -level[0])),
        tuple(BookLevel(p, q) for p, q in sorted(asks, key=lambda level: level[0])),
        T0 + timedelta(seconds=t),
    )


@given(
    st.dictionaries(st.sampled_from(VENUES), st.tuples(LEVELS, LEVELS), min_size=1, max_size=4),
    st.data(),
)
def test_books_kept_across_an_update_equal_books_built_afresh(
    data: dict[str, tuple], draw: st.DataObject
) -> None:  # type: ignore[type-arg]
    """Any update of one venue: every depth the update left unchanged reads the same from
    the builder's kept books as from a builder that never saw the book before."""
    zero = FeeSchedule(Decimal(0), Decimal(0))
    books = {v: venue_book(v, bids, asks, 0) for v, (bids, asks) in data.items()}
    builder = ConsolidatedBookBuilder("WETH/USDC")
    for b in books.values():
        builder.update(b, zero)
    depths = range(1, 8)
    for depth in depths:
        builder.build(depth)  # built before the update: what it may keep
    venue = draw.draw(st.sampled_from(sorted(books)))
    before = books[venue]
    # the new book keeps a prefix of each side and adds levels anywhere (duplicates too)
    bids = [(lvl.price, lvl.quantity) for lvl in before.bids[: draw.draw(st.integers(0, 12))]]
    asks = [(lvl.price, lvl.quantity) for lvl in before.asks[: draw.draw(st.integers(0, 12))]]
    after = venue_book(venue, bids + draw.draw(LEVELS), asks + draw.draw(LEVELS), 1)
    books[venue] = after
    unchanged = unchanged_top(before, after, max(depths))
    builder.update(after, zero, unchanged=unchanged)
    fresh = ConsolidatedBookBuilder("WETH/USDC")
    for b in books.values():
        fresh.update(b, zero)
    for depth in depths:
        assert builder.build(depth) == fresh.build(depth)
