"""Consolidated-book updates per second at 3 venues, against a naive merge in the same run.

Each update is one venue's new snapshot (50 levels a side) for one instrument, followed by
the consolidated top 20 levels. The naive baseline fee-adjusts every venue's levels, sorts
them all and aggregates equal prices, per update. Both must produce identical books.
Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.domain.consolidated_book import ConsolidatedBookBuilder
from gateway.domain.market import BookLevel, FeeSchedule, OrderBook

VENUES = {"binance": Decimal(10), "deribit": Decimal(5), "uniswap": Decimal(30)}
DEPTH = 20
LEVELS = 50
NOW = datetime(2026, 11, 25, tzinfo=UTC)


def snapshots(count: int, seed: int) -> list[OrderBook]:
    rng = random.Random(seed)
    mids = {venue: 300_000 + rng.randint(-50, 50) for venue in VENUES}  # in cents
    names = list(VENUES)
    books = []
    for n in range(count):
        venue = names[n % len(names)]
        mids[venue] += rng.randint(-3, 3)
        mid = mids[venue]
        bids = tuple(
            BookLevel(
                Decimal(mid - 1 - i * rng.randint(1, 3)) / 100, Decimal(rng.randint(1, 500)) / 100
            )
            for i in range(LEVELS)
        )
        asks = tuple(
            BookLevel(
                Decimal(mid + 1 + i * rng.randint(1, 3)) / 100, Decimal(rng.randint(1, 500)) / 100
            )
            for i in range(LEVELS)
        )
        # a venue's book has one level per price
        bids = tuple(sorted({lvl.price: lvl for lvl in bids}.values(), key=lambda lvl: -lvl.price))
        asks = tuple(sorted({lvl.price: lvl for lvl in asks}.values(), key=lambda lvl: lvl.price))
        books.append(OrderBook(venue, "WETH/USDC", bids, asks, NOW, n))
    return books


def naive(
    latest: dict[str, OrderBook],
) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
    sides = []
    for side, sign, reverse in (("bids", -1, True), ("asks", 1, False)):
        totals: dict[Decimal, Decimal] = defaultdict(Decimal)
        for venue, book in latest.items():
            factor = 1 + sign * VENUES[venue] / 10_000
            for level in getattr(book, side):
                totals[level.price * factor] += level.quantity
        sides.append(sorted(totals.items(), reverse=reverse)[:DEPTH])
    return sides[0], sides[1]


def run_builder(books: list[OrderBook]) -> tuple[float, object]:
    builder = ConsolidatedBookBuilder("WETH/USDC")
    fees = {v: FeeSchedule(Decimal(0), bps) for v, bps in VENUES.items()}
    started = time.perf_counter()
    result = None
    for book in books:
        builder.update(book, fees[book.venue])
        result = builder.build(DEPTH)
    return time.perf_counter() - started, result


def run_naive(books: list[OrderBook]) -> tuple[float, object]:
    latest: dict[str, OrderBook] = {}
    started = time.perf_counter()
    result = None
    for book in books:
        latest[book.venue] = book
        result = naive(latest)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    books = snapshots(args.updates, seed=42)

    # Same answer first: the benchmark compares equal work.
    for cut in (3, 100, len(books)):
        _, ours = run_builder(books[:cut])
        _, reference = run_naive(books[:cut])
        assert [(lvl.price, lvl.quantity) for lvl in ours.bids] == reference[0]  # type: ignore[attr-defined]
        assert [(lvl.price, lvl.quantity) for lvl in ours.asks] == reference[1]  # type: ignore[attr-defined]

    ours_times, naive_times = [], []
    for _ in range(args.rounds):  # interleaved
        ours_times.append(run_builder(books)[0])
        naive_times.append(run_naive(books)[0])
    best_ours, best_naive = min(ours_times), min(naive_times)
    print(
        json.dumps(
            {
                "benchmark": "consolidated_book",
                "venues": len(VENUES),
                "levels_per_side": LEVELS,
                "depth": DEPTH,
                "updates": args.updates,
                "updates_per_second": round(args.updates / best_ours),
                "naive_updates_per_second": round(args.updates / best_naive),
                "ratio_vs_naive": round(best_naive / best_ours, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
