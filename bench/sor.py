"""Smart order router: quote latency at 10 venues, and the cost of its split against baselines.

Baselines measured in the same run, priced with the same exact cost functions:

- best single venue: the whole order on the one venue that does it cheapest;
- consolidated walk: the greedy walk of the consolidated book that the gateway already has
  (each pool shown as its 20-level ladder of 0.1% chunks, as `gateway/venues/amm.py` publishes
  it), by fee-adjusted price, blind to gas;
- grid search: brute force over every split in steps of one lot (the exact lot-feasible
  optimum) on instances small enough for it (3 and 4 venues).

Goals (issue "Smart order routing"): p99 quote latency <= 50 ms over 10 venues; within 1 bp of
the grid's optimum at <= 0.1x its time. Prints JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import statistics
import sys
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.domain import amm
from gateway.domain.amounts import to_units
from gateway.domain.market import BookLevel
from gateway.domain.orders import Side
from gateway.routing.allocation import (
    AmmPool,
    BookVenue,
    Route,
    Venue,
    best_single_venue,
    evaluate,
    grid_search,
    route,
)

D = Decimal
MID = 200_000  # cents: 2000.00 quote per base


def book(
    rng: random.Random, side: Side, name: str, levels: int, size: tuple[int, int], lot: Decimal
) -> BookVenue:
    sign = 1 if side is Side.BUY else -1
    price = MID + sign * rng.randint(1, 150)
    ladder = []
    for _ in range(levels):
        ladder.append(BookLevel(D(price) / 100, rng.randint(*size) * lot))
        price += sign * rng.randint(1, 80)
    internal = name == "internal"
    cap = None
    if not internal and rng.random() < 0.3:  # some accounts are short of balance somewhere
        cap = D(rng.randint(20, 80)) if side is Side.SELL else D(rng.randint(40_000, 160_000))
    return BookVenue(
        name,
        tuple(ladder),
        taker_fee_bps=D(0) if internal else D(rng.choice([2, 5, 7, 10])),
        lot_size=lot,
        min_quantity=rng.choice([D(0), lot * 10]),
        balance_cap=cap,
        internal=internal,
    )


def pool(rng: random.Random, name: str, base: int, fee_bps: int, lot: Decimal) -> AmmPool:
    price = D(MID + rng.randint(-200, 200)) / 100
    return AmmPool(
        name,
        reserve_base=to_units(D(base), 18),
        reserve_quote=to_units((base * price).quantize(D("0.000001")), 6),
        base_decimals=18,
        quote_decimals=6,
        lot_size=lot,
        fee_bps=fee_bps,
        gas_quote=D(rng.randint(200, 900)) / 100,  # 110k gas at 10-40 gwei, 2000 per ETH
    )


def ten_venues(rng: random.Random, side: Side) -> list[Venue]:
    lot = D("0.001")
    names = ["internal", "binance", "okx", "bybit", "coinbase", "kraken", "deribit"]
    venues: list[Venue] = [book(rng, side, n, 50, (100, 5_000), lot) for n in names]
    venues += [
        pool(rng, "uniswap_weth_usdc", 5_000, 30, lot),
        pool(rng, "uniswap_weth_usdc_5", 1_000, 5, lot),
        pool(rng, "sushiswap", 300, 30, lot),
    ]
    return venues


def small_instance(rng: random.Random, side: Side, pools: int) -> list[Venue]:
    lot = D("0.05")
    venues: list[Venue] = [book(rng, side, name, 10, (5, 40), lot) for name in ("internal", "cex")]
    for k in range(pools):
        venues.append(pool(rng, f"pool_{k}", rng.randint(20, 150), rng.choice([5, 30]), lot))
    return venues


def signed(result: Route) -> Decimal:
    return result.quote_amount * result.side.sign


def saving_bp(ours: Route, other: Route) -> float:
    """How much better ours is than `other`, in bp of the other's all-in amount."""
    return float((signed(other) - signed(ours)) / abs(other.quote_amount) * 10_000)


def consolidated_walk(side: Side, quantity: Decimal, venues: list[Venue]) -> dict[str, Decimal]:
    """The naive router: merge fee-adjusted levels (pools as 20 chunks of 0.1%), walk greedily."""
    entries: list[tuple[Decimal, str, Decimal]] = []
    for venue in venues:
        if isinstance(venue, BookVenue):
            factor = 1 + side.sign * venue.taker_fee_bps / 10_000
            taken = D(0)
            for level in venue.levels:
                size = level.quantity
                if venue.balance_cap is not None:  # naive, but it does know its balances
                    if side is Side.SELL:
                        size = min(size, venue.balance_cap - taken)
                    else:
                        size = min(
                            size,
                            max(
                                D(0), (venue.balance_cap / (level.price * factor)) - taken
                            ).quantize(venue.lot_size, "ROUND_FLOOR"),
                        )
                if size <= 0:
                    break
                entries.append((side.sign * level.price * factor, venue.name, size))
                taken += size
        else:
            chunk = (D(venue.reserve_base).scaleb(-venue.base_decimals) / 1000).quantize(
                venue.lot_size
            )
            bids, asks = amm.book_levels(
                venue.reserve_base,
                venue.reserve_quote,
                base_decimals=venue.base_decimals,
                quote_decimals=venue.quote_decimals,
                chunk=to_units(chunk, venue.base_decimals),
                levels=20,
                fee_bps=venue.fee_bps,
            )
            for level in asks if side is Side.BUY else bids:
                entries.append((side.sign * level.price, venue.name, level.quantity))
    entries.sort()
    allocation: dict[str, Decimal] = defaultdict(Decimal)
    left = quantity
    for _key, name, size in entries:
        if left <= 0:
            break
        take = min(size, left)
        allocation[name] += take
        left -= take
    lots = {v.name: v.lot_size for v in venues}
    return {name: q.quantize(lots[name], "ROUND_FLOOR") for name, q in allocation.items()}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def latency_and_cost(quotes: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    cases = []
    for _ in range(quotes):
        side = rng.choice(list(Side))
        quantity = D(round(10 ** rng.uniform(-1, 2.7), 3)).quantize(D("0.001"))  # 0.1 .. 500
        cases.append((side, quantity, ten_venues(rng, side)))
    for side, quantity, venues in cases[:20]:  # warm-up
        route(side, quantity, venues)
    ours_ms: list[float] = []
    single_ms: list[float] = []
    vs_single: list[float] = []
    vs_walk: list[float] = []
    worse_than_single = 0
    for side, quantity, venues in cases:
        started = time.perf_counter()
        ours = route(side, quantity, venues)
        ours_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        single = best_single_venue(side, quantity, venues)
        single_ms.append((time.perf_counter() - started) * 1000)
        walk = evaluate(side, quantity, venues, consolidated_walk(side, quantity, venues))
        if single is not None and single.filled == ours.filled:
            vs_single.append(saving_bp(ours, single))
            worse_than_single += signed(ours) > signed(single)
        if walk.filled == ours.filled:
            vs_walk.append(saving_bp(ours, walk))
    return {
        "venues": 10,
        "books": 7,
        "levels_per_book": 50,
        "pools": 3,
        "quotes": quotes,
        "order_sizes_base": "0.1 .. 500, log-uniform, both sides",
        "p50_ms": round(statistics.median(ours_ms), 3),
        "p99_ms": round(percentile(ours_ms, 0.99), 3),
        "max_ms": round(max(ours_ms), 3),
        "goal_p99_ms": 50,
        "baseline_best_single_venue_p50_ms": round(statistics.median(single_ms), 3),
        "saving_vs_best_single_venue_bp": {
            "compared": len(vs_single),
            "mean": round(statistics.mean(vs_single), 3),
            "median": round(statistics.median(vs_single), 3),
            "max": round(max(vs_single), 3),
            "min": round(min(vs_single), 3),
            "routes_worse_than_single": worse_than_single,
        },
        "saving_vs_consolidated_walk_bp": {
            "compared": len(vs_walk),
            "mean": round(statistics.mean(vs_walk), 3),
            "median": round(statistics.median(vs_walk), 3),
            "max": round(max(vs_walk), 3),
            "min": round(min(vs_walk), 3),
        },
    }


def against_grid(pools: int, steps: int, instances: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    gaps: list[float] = []
    ratios: list[float] = []
    route_ms: list[float] = []
    grid_ms: list[float] = []
    skipped = 0
    splits = 0
    for _ in range(instances):
        side = rng.choice(list(Side))
        venues = small_instance(rng, side, pools)
        quantity = steps * D("0.05")
        started = time.perf_counter()
        ours = route(side, quantity, venues)
        ours_time = time.perf_counter() - started
        started = time.perf_counter()
        grid = grid_search(side, quantity, venues, steps=steps)
        grid_time = time.perf_counter() - started
        if grid is None or ours.filled != quantity:
            skipped += 1
            continue
        gaps.append(-saving_bp(ours, grid))
        splits += len(grid.legs) > 1
        ratios.append(ours_time / grid_time)
        route_ms.append(ours_time * 1000)
        grid_ms.append(grid_time * 1000)
    count = 2 + pools
    return {
        "venues": count,
        "steps_of_one_lot": steps,
        "grid_points_before_infeasible_sizes_skipped": math.comb(steps + count - 1, count - 1),
        "instances": len(gaps),
        "skipped_no_full_fill": skipped,
        "instances_where_the_optimum_splits": splits,
        "gap_bp_max": round(max(gaps), 4) + 0.0,
        "gap_bp_mean": round(statistics.mean(gaps), 4) + 0.0,
        "route_ms_median": round(statistics.median(route_ms), 3),
        "grid_ms_median": round(statistics.median(grid_ms), 3),
        "time_ratio_median": round(statistics.median(ratios), 4),
        "time_ratio_max": round(max(ratios), 4),
        "goal_gap_bp": 1,
        "goal_time_ratio": 0.1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quotes", type=int, default=1000)
    parser.add_argument("--grid-instances", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    # As timeit does: no collector pauses inside the timed calls (nothing here is cyclic).
    gc.collect()
    gc.disable()
    try:
        latency = latency_and_cost(args.quotes, args.seed)
        # The grid's cost grows as steps**(venues-1) and ours does not: two sizes each.
        grids = [
            against_grid(pools, steps, args.grid_instances, args.seed + k)
            for k, (pools, steps) in enumerate([(1, 120), (1, 300), (2, 40), (2, 80)])
        ]
    finally:
        gc.enable()
    print(
        json.dumps(
            {"benchmark": "sor", "latency_10_venues": latency, "vs_grid": grids},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
