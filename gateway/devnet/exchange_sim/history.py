"""Deterministic synthetic trade history (market tape) for the simulated exchanges.

At startup each simulator seeds, for each spot/perpetual market, the public tape of the past
`days` with trades between a phantom buyer and seller (`matching.TAPE_ACCOUNT`): they exist
on the public trade endpoints (and in the 24 h ticker) but change no balance, book, order,
position or account's own trades. That gives a VWAP volume profile a venue history to learn
from.

Shape: time is cut into UTC slots of `slot_ms` (5 minutes). The expected number of trades in
a slot whose middle is `h` hours after 00:00 UTC is

    trades_per_slot_midday * (1 + (open_close_ratio - 1) * ((h - 12) / 12) ** 2)

a U over the UTC day: `open_close_ratio` (4) times as many trades around 00:00 UTC (the daily
open/close of crypto venues) as at 12:00. Counts are Poisson draws, sizes uniform in lots
between `min_quantity` and `max_quantity`, sides a coin flip. Prices are the reference price
plus a slow daily swing (`swing`, 0.5% of it) and noise (`noise`), all in whole ticks.

Determinism: every slot draws from its own `random.Random` seeded with
`(seed, symbol, slot start)`, so the tape is a pure function of the seed and the wall-clock
slots it covers: two simulators with the same seed agree on every slot both cover, whenever
they were started. Only complete slots before `now` are seeded, and none before the epoch.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from decimal import Decimal

from gateway.devnet.exchange_sim.matching import SimExchange, SimSide

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class HistoryConfig:
    """How much synthetic history to seed and its shape (see the module docstring)."""

    days: float = 2.0
    slot_ms: int = 300_000
    trades_per_slot_midday: float = 1.5
    open_close_ratio: float = 4.0
    swing: Decimal = Decimal("0.005")  # amplitude of the daily price swing, of the reference
    noise: Decimal = Decimal("0.0005")  # per-trade noise, of the reference

    def intensity(self, ms_of_day: float) -> float:
        """Expected trades in a slot centred `ms_of_day` after 00:00 UTC."""
        distance = (ms_of_day / 3_600_000 - 12) / 12
        return self.trades_per_slot_midday * (1 + (self.open_close_ratio - 1) * distance**2)


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: exact for the small means used here."""
    limit = math.exp(-mean)
    count, product = 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def seed_history(
    exchange: SimExchange,
    symbol: str,
    *,
    seed: int,
    reference_price: Decimal,
    min_quantity: Decimal,
    max_quantity: Decimal,
    now_ms: int,
    config: HistoryConfig,
) -> int:
    """Record the synthetic tape of `symbol` for the `config.days` before `now_ms`.
    Returns the number of trades recorded. Call before any live trade, so ids and
    timestamps both increase along the tape."""
    market = exchange.market(symbol)
    tick, step = market.tick_size, market.step_size
    reference_ticks = int(reference_price / tick)
    swing_ticks = int(reference_ticks * config.swing)
    noise_ticks = int(reference_ticks * config.noise)
    min_lots, max_lots = int(min_quantity / step), int(max_quantity / step)
    slot = config.slot_ms
    first_slot = max(0, -(-(now_ms - int(config.days * DAY_MS)) // slot) * slot)
    recorded = 0
    start = first_slot
    while start + slot <= now_ms:
        rng = random.Random(f"{seed}:{symbol}:{start}")
        count = _poisson(rng, config.intensity((start % DAY_MS) + slot / 2))
        offsets = sorted(rng.randrange(slot) for _ in range(count))
        for offset in offsets:
            at = start + offset
            swing = round(swing_ticks * math.sin(2 * math.pi * at / DAY_MS + seed))
            noise = rng.randint(-noise_ticks, noise_ticks)
            price_ticks = max(1, reference_ticks + swing + noise)
            exchange.record_tape_trade(
                symbol,
                tick * price_ticks,
                step * rng.randint(min_lots, max_lots),
                SimSide.BUY if rng.random() < 0.5 else SimSide.SELL,
                at,
            )
            recorded += 1
        start += slot
    return recorded
