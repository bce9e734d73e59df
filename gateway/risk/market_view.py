"""Market inputs for risk, read from reference prices (the consolidated book's mids).

Spot of an underlying: the mid of its spot pair against the quote currency, else of its
perpetual. Volatility of an option: implied from its own mid where that mid is inside the
no-arbitrage bounds, else the underlying's default. A rolling history of spot mids feeds
historical VaR.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np

from gateway.domain.instruments import EuropeanOption, InstrumentCatalogue, InstrumentKind
from gateway.risk.portfolio import SECONDS_PER_YEAR, FloatArray, MarketSnapshot
from gateway.risk.pretrade import ReferencePrices
from gateway.risk.pricing import PriceOutsideArbitrageBounds, implied_vol


@dataclass(frozen=True, slots=True)
class VolatilityDefaults:
    default_vol: float = 0.6  # annualized, used where no option mid implies one
    rate: float = 0.0
    min_vol: float = 0.05
    max_vol: float = 5.0


class MarketView:
    def __init__(
        self,
        catalogue: InstrumentCatalogue,
        prices: ReferencePrices,
        defaults: VolatilityDefaults | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.prices = prices
        self.defaults = defaults or VolatilityDefaults()
        self._spot_sources: dict[str, list[str]] = {}
        for instrument in catalogue:
            if instrument.kind in (InstrumentKind.SPOT, InstrumentKind.PERPETUAL):
                sources = self._spot_sources.setdefault(instrument.base.symbol, [])
                if instrument.kind is InstrumentKind.SPOT:
                    sources.insert(0, instrument.symbol)
                else:
                    sources.append(instrument.symbol)

    def underlyings(self) -> list[str]:
        return sorted(self._spot_sources)

    def spot(self, underlying: str) -> Decimal | None:
        for symbol in self._spot_sources.get(underlying, ()):
            mid = self.prices.mid(symbol)
            if mid is not None:
                return mid
        return None

    def snapshot(self, at: datetime, underlyings: Iterable[str] | None = None) -> MarketSnapshot:
        """Spots for the underlyings that have a mid; option vols implied where possible."""
        wanted = self.underlyings() if underlyings is None else sorted(set(underlyings))
        spots = {u: s for u in wanted if (s := self.spot(u)) is not None}
        vols = {u: self.defaults.default_vol for u in spots}
        option_vols: dict[str, float] = {}
        for instrument in self.catalogue:
            if not isinstance(instrument, EuropeanOption) or instrument.base.symbol not in spots:
                continue
            mid = self.prices.mid(instrument.symbol)
            years = (instrument.expires_at - at).total_seconds() / SECONDS_PER_YEAR
            if mid is None or years <= 0:
                continue
            try:
                vol = float(
                    implied_vol(
                        float(mid),
                        float(spots[instrument.base.symbol]),
                        float(instrument.strike),
                        years,
                        self.defaults.rate,
                        0.0,
                        instrument.right.value == "call",
                    )
                )
            except PriceOutsideArbitrageBounds:
                continue  # a stale or crossed quote: fall back to the default
            if self.defaults.min_vol <= vol <= self.defaults.max_vol:
                option_vols[instrument.symbol] = vol
        return MarketSnapshot(at, spots, vols, option_vols, self.defaults.rate)


class PriceHistory:
    """Spot mids sampled at a fixed interval; returns rescaled to one day for VaR."""

    def __init__(self, interval_seconds: float, capacity: int = 10_000) -> None:
        if interval_seconds <= 0:
            raise ValueError("the sampling interval must be positive")
        self.interval_seconds = interval_seconds
        self._samples: deque[tuple[datetime, dict[str, Decimal]]] = deque(maxlen=capacity)

    def record(self, at: datetime, spots: dict[str, Decimal]) -> bool:
        """Keep a sample if an interval has passed since the last one."""
        if self._samples:
            last = self._samples[-1][0]
            if (at - last).total_seconds() < self.interval_seconds:
                return False
        self._samples.append((at, dict(spots)))
        return True

    def __len__(self) -> int:
        return len(self._samples)

    def daily_log_returns(self, underlyings: list[str]) -> FloatArray:
        """(n, len(underlyings)) log returns between consecutive samples that quote every
        underlying, scaled by sqrt(one day / interval) (i.i.d. returns assumed), so they
        stand for one-day moves."""
        rows = [
            [float(spots[u]) for u in underlyings]
            for _, spots in self._samples
            if all(u in spots for u in underlyings)
        ]
        if len(rows) < 2:
            return np.zeros((0, len(underlyings)))
        levels = np.log(np.array(rows))
        scale = math.sqrt(86_400.0 / self.interval_seconds)
        returns: FloatArray = np.diff(levels, axis=0) * scale
        return returns
