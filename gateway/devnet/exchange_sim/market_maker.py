"""A seeded random-walk market maker that keeps liquidity around a moving mid.

The walk is in whole ticks drawn from `random.Random(seed)`, so the mid after `n` steps is a
pure function of `(seed, n)`; no float ever touches a price. Each `step()` cancels the maker's
resting orders and re-quotes `levels` price levels per side around the new mid in every quoted
market. Re-quoting can trade against other accounts' resting orders that the new quotes cross
(that is how a resting client limit order gets filled when the market moves).

Stepping on a timer (for `make up`) is `SimVenueBase.start_stepping`, which takes the venue's
lock and publishes book changes.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from gateway.devnet.exchange_sim.matching import (
    SimError,
    SimExchange,
    SimOrderType,
    SimSide,
)

MAKER_ACCOUNT = "__market_maker__"


@dataclass(frozen=True, slots=True)
class QuoteRule:
    """How to quote one market: its fair price from the underlying mid, spread and sizes."""

    symbol: str
    fair_price: Callable[[Decimal], Decimal]
    half_spread_ticks: int = 1
    level_gap_ticks: int = 1
    level_size: Decimal = Decimal(1)
    levels: int = 5


class RandomWalk:
    """A mid price moving by a whole number of ticks per step, deterministic in its seed."""

    def __init__(
        self, seed: int, start: Decimal, tick: Decimal, max_ticks_per_step: int = 10
    ) -> None:
        self.seed = seed
        self.start = start
        self.tick = tick
        self.max_ticks = max_ticks_per_step
        self._rng = random.Random(seed)
        self.mid = start
        self.steps = 0

    def step(self) -> Decimal:
        move = self._rng.randint(-self.max_ticks, self.max_ticks)
        candidate = self.mid + self.tick * move
        if candidate > self.tick * 10:  # never walk to zero or below
            self.mid = candidate
        self.steps += 1
        return self.mid


def round_to_tick(price: Decimal, tick: Decimal, *, down: bool = False) -> Decimal:
    rounding = ROUND_DOWN if down else ROUND_HALF_UP
    return (price / tick).quantize(Decimal(1), rounding=rounding) * tick


class MarketMaker:
    """Quotes every rule's market in `exchange` around a random-walk mid."""

    def __init__(
        self,
        exchange: SimExchange,
        walk: RandomWalk,
        rules: list[QuoteRule],
        *,
        account: str = MAKER_ACCOUNT,
    ) -> None:
        self.exchange = exchange
        self.walk = walk
        self.rules = rules
        self.account = account

    @property
    def mid(self) -> Decimal:
        return self.walk.mid

    def fund(self, amounts: dict[str, Decimal]) -> None:
        for asset, amount in amounts.items():
            self.exchange.deposit(self.account, asset, amount)

    def refresh(self) -> None:
        """Cancel the maker's quotes and quote again around the current mid."""
        self.exchange.cancel_all(self.account)
        for rule in self.rules:
            market = self.exchange.market(rule.symbol)
            tick = market.tick_size
            fair = round_to_tick(rule.fair_price(self.walk.mid), tick)
            for level in range(rule.levels):
                offset = tick * (rule.half_spread_ticks + level * rule.level_gap_ticks)
                for side, price in ((SimSide.BUY, fair - offset), (SimSide.SELL, fair + offset)):
                    if price <= 0:
                        continue
                    with contextlib.suppress(SimError):  # out of funds or filters: skip level
                        self.exchange.submit(
                            self.account,
                            rule.symbol,
                            side,
                            SimOrderType.LIMIT,
                            rule.level_size,
                            price,
                        )

    def step(self) -> Decimal:
        """Advance the walk one step and re-quote. Returns the new mid."""
        mid = self.walk.step()
        self.refresh()
        return mid
