"""Normalisation of multi-leg strategies, so that equal strategies meet in one combo book.

A strategy is its legs (instrument, side, ratio). Two orders trade against each other in a
combo book only if they are for the same normalised strategy:

- legs are sorted by instrument (the order a client lists them in does not matter);
- the first leg's side is made BUY: if it is SELL, every leg's side is flipped, and so are the
  order's side and the sign of its net price. Buying a strategy at a net debit `p` is the same
  trade as selling its mirror image at a net credit `p`, i.e. at net price `-p`.

So "buy the iron condor at 1.20", "sell the condor at 1.10" and "buy the condor written with
every leg flipped at -1.10" all land in the same book, on the sides one expects.

Ratios are kept as given: a 2:2 strategy is a different product from a 1:1 one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.domain.orders import Leg, Side


@dataclass(frozen=True, slots=True)
class Strategy:
    """A normalised strategy: legs sorted by instrument, the first leg a BUY."""

    legs: tuple[Leg, ...]

    @property
    def key(self) -> str:
        """A stable name, also the id of the strategy's combo book."""
        return "|".join(f"{leg.side.value}:{leg.ratio}:{leg.instrument}" for leg in self.legs)


def flip_legs(legs: Sequence[Leg]) -> tuple[Leg, ...]:
    return tuple(Leg(leg.instrument, leg.side.opposite, leg.ratio) for leg in legs)


def normalise(legs: Sequence[Leg]) -> tuple[Strategy, bool]:
    """The normalised strategy and whether the order's side and price must be flipped."""
    ordered = sorted(legs, key=lambda leg: leg.instrument)
    if ordered[0].side is Side.SELL:
        return Strategy(flip_legs(ordered)), True
    return Strategy(tuple(ordered)), False
