"""A portfolio in risk terms: signed positions on underlyings, valued with numpy arrays.

Every figure here is an analytic estimate in floating point (quote currency, e.g. USDC);
nothing that settles is computed from it. Amounts that move money stay `Decimal`/int.

Value of one position at underlying price S (in quote):

* spot        q * S                               (q in underlying units)
* linear perp q * (S - entry)                     (unrealized P&L; q in underlying units)
* inverse     q * c * (S / entry - 1)             (P&L q * c * (1/entry - 1/S) in underlying,
                                                   converted at S; q contracts of c quote)
* option      q * BlackScholes(S, K, T, r, 0, vol) (q in underlying units)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from gateway.domain.instruments import EuropeanOption, Instrument, Perpetual, SpotPair
from gateway.risk.pricing import Greeks, black_scholes, black_scholes_price

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

SECONDS_PER_YEAR = 365.0 * 24 * 3600


class PositionKind(str, enum.Enum):
    SPOT = "spot"
    LINEAR = "linear"
    INVERSE = "inverse"
    OPTION = "option"


_KIND_CODE = {
    PositionKind.SPOT: 0,
    PositionKind.LINEAR: 1,
    PositionKind.INVERSE: 2,
    PositionKind.OPTION: 3,
}


@dataclass(frozen=True, slots=True)
class RiskPosition:
    """One signed holding (long > 0). `venue` says where it is held: the on-chain wallet
    (`isthmus`) or a CEX account (its venue name), so the operator's book can be summed."""

    instrument: str
    underlying: str
    kind: PositionKind
    quantity: Decimal
    entry_price: Decimal = Decimal(0)  # perps: average entry, quote per underlying
    contract_size: Decimal = Decimal(1)  # inverse perps: quote per contract
    strike: Decimal = Decimal(0)
    expires_at: datetime | None = None
    is_call: bool = True
    venue: str = "isthmus"

    def __post_init__(self) -> None:
        if self.kind is PositionKind.INVERSE and self.entry_price <= 0:
            raise ValueError("an inverse position needs a positive entry price")
        if self.kind is PositionKind.OPTION and (self.strike <= 0 or self.expires_at is None):
            raise ValueError("an option position needs a positive strike and an expiry")

    @classmethod
    def of(
        cls,
        instrument: Instrument,
        quantity: Decimal,
        *,
        entry_price: Decimal = Decimal(0),
        venue: str = "isthmus",
    ) -> RiskPosition:
        """The risk view of `quantity` of a catalogue instrument."""
        underlying = instrument.base.symbol
        if isinstance(instrument, EuropeanOption):
            return cls(
                instrument.symbol,
                underlying,
                PositionKind.OPTION,
                quantity,
                entry_price=entry_price,
                strike=instrument.strike,
                expires_at=instrument.expires_at,
                is_call=instrument.right.value == "call",
                venue=venue,
            )
        if isinstance(instrument, Perpetual):
            kind = PositionKind.INVERSE if instrument.inverse else PositionKind.LINEAR
            return cls(
                instrument.symbol,
                underlying,
                kind,
                quantity,
                entry_price=entry_price,
                contract_size=instrument.contract_size,
                venue=venue,
            )
        if isinstance(instrument, SpotPair):
            return cls(
                instrument.symbol,
                underlying,
                PositionKind.SPOT,
                quantity,
                entry_price=entry_price,
                venue=venue,
            )
        raise ValueError(f"no risk model for {instrument.symbol}")


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """Market inputs at one instant: spot per underlying, a flat implied vol per underlying
    (overridden per option instrument where its book implies one), one continuously
    compounded rate."""

    at: datetime
    spots: Mapping[str, Decimal]
    vols: Mapping[str, float]
    option_vols: Mapping[str, float] = field(default_factory=dict)
    rate: float = 0.0


@dataclass(frozen=True)
class PortfolioArrays:
    """Positions as parallel arrays (one element per position) for vectorized valuation.

    `underlyings` orders the columns of every spot array: `values(spots)` takes spots of
    shape (..., len(underlyings)) and broadcasts over the leading scenario axes.
    """

    underlyings: tuple[str, ...]
    positions: tuple[RiskPosition, ...]
    column: IntArray  # underlying column of each position
    kind: IntArray
    quantity: FloatArray
    entry: FloatArray
    contract_size: FloatArray
    strike: FloatArray  # 1.0 where not an option (keeps the pricer in its domain)
    expiry: FloatArray  # years from the snapshot; 0 where not an option
    is_call: BoolArray
    vol: FloatArray
    rate: float
    spot: FloatArray  # the snapshot's spots, by column

    @classmethod
    def build(cls, positions: Sequence[RiskPosition], market: MarketSnapshot) -> PortfolioArrays:
        underlyings = tuple(sorted({p.underlying for p in positions}))
        missing = [u for u in underlyings if u not in market.spots]
        if missing:
            raise ValueError(f"no spot price for {', '.join(missing)}")
        col = {u: i for i, u in enumerate(underlyings)}
        n = len(positions)
        options = [p.kind is PositionKind.OPTION for p in positions]
        expiry = np.zeros(n)
        vol = np.zeros(n)
        for i, p in enumerate(positions):
            if p.kind is PositionKind.OPTION:
                assert p.expires_at is not None
                expiry[i] = max(0.0, (p.expires_at - market.at).total_seconds() / SECONDS_PER_YEAR)
                v = market.option_vols.get(p.instrument, market.vols.get(p.underlying))
                if v is None:
                    raise ValueError(f"no volatility for {p.instrument}")
                vol[i] = v
        return cls(
            underlyings=underlyings,
            positions=tuple(positions),
            column=np.array([col[p.underlying] for p in positions], dtype=np.int64),
            kind=np.array([_KIND_CODE[p.kind] for p in positions], dtype=np.int64),
            quantity=np.array([float(p.quantity) for p in positions]),
            entry=np.array([float(p.entry_price) for p in positions]),
            contract_size=np.array([float(p.contract_size) for p in positions]),
            strike=np.array(
                [float(p.strike) if o else 1.0 for p, o in zip(positions, options, strict=True)]
            ),
            expiry=expiry,
            is_call=np.array([p.is_call for p in positions], dtype=np.bool_),
            vol=vol,
            rate=market.rate,
            spot=np.array([float(market.spots[u]) for u in underlyings]),
        )

    def __len__(self) -> int:
        return len(self.positions)

    def position_values(
        self, spots: ArrayLike | None = None, *, elapsed: float = 0.0
    ) -> FloatArray:
        """Value in quote of each position: shape (..., n_positions) for spots (..., n_underlyings).

        `elapsed` years pass first: options lose that much time to expiry (floored at 0).
        """
        s_all = self.spot if spots is None else np.asarray(spots, dtype=np.float64)
        q = self.quantity
        kind = self.kind
        out = np.empty((*s_all.shape[:-1], len(self)))
        # Each kind is computed on its own columns only (scenario revaluation calls this with
        # many rows; a np.where chain would evaluate every formula on every position).
        spot = np.flatnonzero(kind == 0)
        if spot.size:
            out[..., spot] = q[spot] * s_all[..., self.column[spot]]
        lin = np.flatnonzero(kind == 1)
        if lin.size:
            out[..., lin] = q[lin] * (s_all[..., self.column[lin]] - self.entry[lin])
        inv = np.flatnonzero(kind == 2)
        if inv.size:
            s = s_all[..., self.column[inv]]
            out[..., inv] = q[inv] * self.contract_size[inv] * (s / self.entry[inv] - 1.0)
        opt = np.flatnonzero(kind == 3)
        if opt.size:
            t = np.maximum(self.expiry[opt] - elapsed, 0.0)
            price = black_scholes_price(
                s_all[..., self.column[opt]],
                self.strike[opt],
                t,
                self.rate,
                0.0,
                self.vol[opt],
                self.is_call[opt],
            )
            out[..., opt] = q[opt] * price
        return out

    def value(self, spots: ArrayLike | None = None, *, elapsed: float = 0.0) -> FloatArray:
        """Total value in quote, shape (...) for spots (..., n_underlyings)."""
        total: FloatArray = self.position_values(spots, elapsed=elapsed).sum(axis=-1)
        return total

    def position_greeks(self) -> Greeks:
        """Greeks of each position (quantity included) at the snapshot, in quote:
        delta per 1 quote of underlying move, vega per 1.0 of vol, theta per year."""
        s = self.spot[self.column]
        q = self.quantity
        n = len(self)
        delta = np.where(self.kind == 0, q, 0.0)
        delta = np.where(self.kind == 1, q, delta)
        safe_entry = np.where(self.entry > 0, self.entry, 1.0)
        delta = np.where(self.kind == 2, q * self.contract_size / safe_entry, delta)
        price = self.position_values()
        gamma, vega, theta, rho = (np.zeros(n) for _ in range(4))
        opt = self.kind == 3
        if opt.any():
            g = black_scholes(
                s[opt],
                self.strike[opt],
                self.expiry[opt],
                self.rate,
                0.0,
                self.vol[opt],
                self.is_call[opt],
            )
            qo = q[opt]
            delta[opt] = qo * g.delta
            gamma[opt] = qo * g.gamma
            vega[opt] = qo * g.vega
            theta[opt] = qo * g.theta
            rho[opt] = qo * g.rho
        return Greeks(price, delta, gamma, vega, theta, rho)

    def greeks_by_underlying(self) -> dict[str, Greeks]:
        """Position Greeks summed per underlying (each field a 0-d array)."""
        per = self.position_greeks()
        out: dict[str, Greeks] = {}
        for i, u in enumerate(self.underlyings):
            m = self.column == i
            out[u] = Greeks(
                *(np.asarray(getattr(per, f)[m].sum()) for f in Greeks.__dataclass_fields__)
            )
        return out
