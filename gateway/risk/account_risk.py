"""One account's (or the operator's whole book's) risk at one instant.

Assembles the analytics of this package: Greeks by underlying, VaR and expected shortfall by
three methods, cross-margin equity and maintenance with liquidation prices, and, for an
on-chain wallet, the contract's own margin figures. Pure: positions, collateral, the market
snapshot and the return history come in; a report goes out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from gateway.domain.instruments import InstrumentCatalogue
from gateway.domain.positions import Position
from gateway.risk.liquidation import (
    AccountLiquidation,
    CollateralHolding,
    CrossMarginAccount,
    MaintenanceRates,
    WalletMarginCall,
    account_liquidation,
)
from gateway.risk.portfolio import FloatArray, MarketSnapshot, PortfolioArrays, RiskPosition
from gateway.risk.pricing import Greeks
from gateway.risk.var import (
    RiskMeasure,
    covariance_from_vols,
    delta_gamma_var,
    historical_var,
    monte_carlo_var,
)
from gateway.risk.wallet_margin import MarginStatus


@dataclass(frozen=True, slots=True)
class RiskSettings:
    confidence: float = 0.99
    horizon_days: int = 1
    monte_carlo_paths: int = 20_000
    seed: int = 7  # fixed: the same inputs give the same figures (auditable, cacheable)
    min_history: int = 30  # daily returns needed before historical VaR is reported
    correlation: float = 0.8  # between underlyings, when no history estimates it
    rates: MaintenanceRates = field(default_factory=MaintenanceRates)


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A figure that cannot be computed now, and why."""

    method: str
    reason: str


@dataclass(frozen=True, slots=True)
class PositionRisk:
    position: RiskPosition
    value: float
    greeks: Greeks  # 0-d arrays, quantity included


@dataclass(frozen=True, slots=True)
class AccountRiskReport:
    market: MarketSnapshot
    positions: tuple[PositionRisk, ...]
    unpriced: tuple[str, ...]  # instruments held whose underlying has no price now
    greeks: Mapping[str, Greeks]
    measures: tuple[RiskMeasure | Unavailable, ...]
    liquidation: AccountLiquidation
    onchain: MarginStatus | None
    # per collateral token (by symbol): the oracle price at which the wallet's margin fails
    margin_calls: Mapping[str, WalletMarginCall] = field(default_factory=dict)

    @property
    def equity(self) -> float:
        return self.liquidation.equity

    @property
    def maintenance(self) -> float:
        return self.liquidation.maintenance


def risk_positions(
    positions: Mapping[str, Position], catalogue: InstrumentCatalogue, venue: str = "isthmus"
) -> list[RiskPosition]:
    """The risk view of an account's open positions (flat ones left out)."""
    out = []
    for symbol, held in sorted(positions.items()):
        quantity = held.quantity
        if quantity == 0 or symbol not in catalogue:
            continue
        entry = held.average_price or Decimal(0)
        out.append(RiskPosition.of(catalogue.get(symbol), quantity, entry_price=entry, venue=venue))
    return out


def _covariance(
    underlyings: Sequence[str], market: MarketSnapshot, settings: RiskSettings
) -> FloatArray:
    vols = np.array([market.vols[u] for u in underlyings])
    n = len(underlyings)
    correlation = np.full((n, n), settings.correlation)
    np.fill_diagonal(correlation, 1.0)
    return covariance_from_vols(vols, correlation)


def account_risk(
    positions: Sequence[RiskPosition],
    collateral: Sequence[CollateralHolding],
    market: MarketSnapshot,
    *,
    history: FloatArray | None = None,
    history_columns: Sequence[str] = (),
    onchain: MarginStatus | None = None,
    settings: RiskSettings | None = None,
) -> AccountRiskReport:
    """The report for these positions and collateral under `market`.

    `history` holds daily log returns with columns named by `history_columns`.
    """
    settings = settings or RiskSettings()
    priced = [p for p in positions if p.underlying in market.spots]
    unpriced = tuple(sorted({p.instrument for p in positions if p.underlying not in market.spots}))
    usable_collateral = tuple(
        c for c in collateral if c.underlying is None or c.underlying in market.spots
    )
    arrays = PortfolioArrays.build(priced, market)
    per = arrays.position_greeks()
    position_risks = tuple(
        PositionRisk(
            p,
            float(per.price[i]),
            Greeks(*(np.asarray(getattr(per, f)[i]) for f in Greeks.__dataclass_fields__)),
        )
        for i, p in enumerate(priced)
    )
    measures: list[RiskMeasure | Unavailable] = []
    if priced:
        covariance = _covariance(arrays.underlyings, market, settings)
        kwargs = {"confidence": settings.confidence, "horizon_days": settings.horizon_days}
        measures.append(delta_gamma_var(arrays, covariance, **kwargs))  # type: ignore[arg-type]
        measures.append(
            monte_carlo_var(
                arrays,
                covariance,
                paths=settings.monte_carlo_paths,
                seed=settings.seed,
                **kwargs,  # type: ignore[arg-type]
            )
        )
        missing = [u for u in arrays.underlyings if u not in history_columns]
        rows = 0 if history is None else history.shape[0]
        if missing or history is None or rows < settings.min_history:
            have = "no history of " + ", ".join(missing) if missing else f"{rows} returns"
            measures.append(
                Unavailable(
                    "historical",
                    f"needs {settings.min_history} daily returns of every underlying ({have})",
                )
            )
        else:
            measures.append(
                historical_var(arrays, history, columns=list(history_columns), **kwargs)  # type: ignore[arg-type]
            )
    liquidation = account_liquidation(
        CrossMarginAccount(tuple(priced), usable_collateral, settings.rates), market
    )
    return AccountRiskReport(
        market,
        position_risks,
        unpriced,
        arrays.greeks_by_underlying() if priced else {},
        tuple(measures),
        liquidation,
        onchain,
    )
