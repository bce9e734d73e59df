"""The on-chain margin rule, mirrored bit for bit (see contracts/lib/margin.vy).

For the options of one series (underlying, quote, expiry) the payoff at expiry is piecewise
linear in the price with kinks at the strikes. Net short calls must be covered by
underlying held in the wallet (otherwise the loss is unbounded); with that cover the
slope beyond the last strike is non-negative, so the worst case lies at price 0 or at a
strike. All in integers: prices in quote units per whole underlying, sizes in underlying
base units, `unit` = 10**underlying_decimals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_SERIES_POSITIONS = 16  # contracts/lib/margin.vy


@dataclass(frozen=True, slots=True)
class OptionPosition:
    strike: int  # quote units per whole underlying
    is_call: bool
    size: int  # underlying base units; long > 0, short < 0


@dataclass(frozen=True, slots=True)
class SeriesRequirement:
    quote_required: int  # quote units the wallet must hold for this series
    underlying_cover: int  # underlying units it must hold to cover net short calls


def payoff_at(positions: Sequence[OptionPosition], cover: int, price: int) -> int:
    """Sum of size * intrinsic(price) plus cover * price, in quote * unit (not divided)."""
    total = cover * price
    for p in positions:
        if p.is_call:
            if price > p.strike:
                total += p.size * (price - p.strike)
        elif p.strike > price:
            total += p.size * (p.strike - price)
    return total


def series_requirement(positions: Sequence[OptionPosition], unit: int) -> SeriesRequirement:
    """What the contract's `margin.series_requirement` returns, for the same positions."""
    if len(positions) > MAX_SERIES_POSITIONS:
        raise ValueError(f"a series holds at most {MAX_SERIES_POSITIONS} positions")
    net_calls = sum(p.size for p in positions if p.is_call)
    cover = max(0, -net_calls)
    worst = min(
        [payoff_at(positions, cover, 0)]
        + [payoff_at(positions, cover, p.strike) for p in positions]
    )
    if worst >= 0:
        return SeriesRequirement(0, cover)
    return SeriesRequirement((-worst + unit - 1) // unit, cover)
