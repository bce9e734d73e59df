"""Liquidation and margin-call prices: where equity falls to maintenance margin.

Two account styles, because the gateway sees both.

A. Cross-margin account (a CEX account, and the gateway's own risk view of a client)
----------------------------------------------------------------------------------------
Floating-point analytics in quote currency (e.g. USDC), built on `PortfolioArrays`:

    equity(S)      = collateral value(S) + sum of position values(S)
    maintenance(S) = sum of per-position maintenance(S)
    excess(S)      = equity(S) - maintenance(S)        (>= 0: safe; < 0: liquidatable)

Collateral (`CollateralHolding`): a quote amount is worth itself; an amount of another asset
is worth amount * S_underlying. Positive amounts lose their haircut (bps); a negative amount
(a loan) counts in full, a haircut never makes a debt smaller.

Position values are those of `PortfolioArrays.position_values`: spot q S, linear perp
q (S - E), inverse perp q c (1/E - 1/S) S (its coin P&L converted at S), option q times its
Black-Scholes mark at the snapshot's vol and time to expiry.

Maintenance (`MaintenanceRates`; defaults are typical lowest-tier venue rates):

* linear perp:  `linear` (0.5%) * |q| S                   (notional moves with S)
* inverse perp: `inverse` (0.5%) * |q| c                  (notional fixed in quote)
* short call:   |q| (`option` (7.5%) * S + `option_mark` (1.0) * mark(S))
* short put:    |q| (`option` (7.5%) * min(S, K) + `option_mark` (1.0) * mark(S))
  Deribit-like (its short-option maintenance is 0.075 of the underlying plus the mark
  price; the min(S, K) cap on puts is ours): the short keeps
  its mark value (already a liability in equity) once more plus a fraction of the
  underlying, so a further move of ~7.5% is absorbed before it is under water. A put's
  notional at risk is capped by its strike (it can lose at most K), so its underlying part
  uses min(S, K): otherwise a far out-of-the-money short put, nearly riskless, would need
  ever more margin as S rises, and be "liquidated" by a rally. Long options need nothing:
  their loss is the premium, which equity already counts.
* short spot (a margin loan of the asset): `spot_short` (0) * |q| S; long spot needs nothing.

The liquidation price for one underlying moves that underlying's price alone (every other
underlying stays at the snapshot) and reports the nearest S below and the nearest S above the
current price where excess(S) changes sign, searched in [S0 * search[0], S0 * search[1]]
(default [S0/1000, 1000 S0]); None where no crossing lies in that range. How: excess is
evaluated, vectorized, on a log-spaced grid (default 4001 points, 0.35% apart) to bracket the
sign changes, then each bracket is refined with `scipy.optimize.brentq` to ~1e-13 relative.
Limit: two crossings closer together than one grid step (excess dipping below zero and back
between two grid points) can be missed; excess is piecewise smooth here (option marks are
smooth before expiry, intrinsic kinks only at strikes at expiry), so this needs a dip
narrower than 0.35% of the price.

Liquidation is equity < maintenance, strictly: an account with no maintenance and no equity
(nothing left, nothing owed, or a far out-of-the-money long option whose mark underflows to 0)
is not liquidated. An account already below maintenance is reported explicitly
(`liquidatable`); its `below` / `above` are then the nearest prices where it would get back
to maintenance.

B. On-chain MarginWallet (contracts/README.md "Margin rule")
------------------------------------------------------------
On the contract mirror's state (`gateway.risk.wallet_margin.WalletState`, evaluated by its
`margin_status`, the bit-for-bit mirror of `MarginWallet.margin_status()`): `required` (quote
base units) is the sum of the series' requirements and does not depend on any price;
`available` = quote balance + (when that is short) sum over collateral tokens t (not the
quote) of `(balance_t - cover_t) * price_t // unit_t * (10000 - haircut_bps_t) // 10000`.
Only the non-quote collateral moves with its price, and each term is monotone in its price,
so for one token the wallet passes iff that token's oracle price is >= a threshold.
`wallet_margin_call` returns the continuous break-even price (an exact rational, as Decimal)
and the smallest integer oracle price at which `margin_status` passes, given the contract's
rounding. If some underlying balance is below the cover of the wallet's net short calls the
wallet fails at any price, which is reported as such.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, Decimal, localcontext
from fractions import Fraction

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq

from gateway.risk.portfolio import (
    _KIND_CODE,
    MarketSnapshot,
    PortfolioArrays,
    PositionKind,
    RiskPosition,
)
from gateway.risk.wallet_margin import (
    BPS,
    MarginReverts,
    WalletState,
    margin_status,
    requirements,
)

__all__ = [
    "DEFAULT_GRID_POINTS",
    "DEFAULT_SEARCH",
    "AccountLiquidation",
    "CollateralHolding",
    "CrossMarginAccount",
    "LiquidationPrice",
    "MaintenanceRates",
    "WalletMarginCall",
    "WalletMarginOutcome",
    "account_liquidation",
    "liquidation_price",
    "margin_curve",
    "position_liquidation_price",
    "wallet_margin_call",
    "wallet_margin_calls",
    "with_collateral_price",
]

FloatArray = NDArray[np.float64]

# Search range as multiples of the current price, and grid density over it.
DEFAULT_SEARCH: tuple[float, float] = (1e-3, 1e3)
DEFAULT_GRID_POINTS = 4001
# brentq tolerances: |x - root| <= _XTOL_REL * bracket_low + _RTOL * |x|.
_XTOL_REL = 1e-14
_RTOL = 1e-13
# PortfolioArrays.kind codes of spot, linear, inverse, option.
_KIND_CODES = tuple(
    _KIND_CODE[k]
    for k in (PositionKind.SPOT, PositionKind.LINEAR, PositionKind.INVERSE, PositionKind.OPTION)
)


# =========================================================================== A. cross margin


@dataclass(frozen=True, slots=True)
class MaintenanceRates:
    """Maintenance margin rates (fractions, not bps); see the module docstring for the rule."""

    linear: float = 0.005
    inverse: float = 0.005
    option: float = 0.075
    option_mark: float = 1.0
    spot_short: float = 0.0

    def __post_init__(self) -> None:
        for name in ("linear", "inverse", "option", "option_mark", "spot_short"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"maintenance rate {name} must be finite and >= 0, got {v}")


@dataclass(frozen=True, slots=True)
class CollateralHolding:
    """An amount held as margin: quote currency (`underlying` None) or an asset valued at the
    price of `underlying` (e.g. BTC coins as collateral of an inverse perp), less a haircut
    on positive amounts."""

    asset: str
    amount: Decimal
    underlying: str | None = None
    haircut_bps: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.haircut_bps <= BPS:
            raise ValueError(f"haircut must be within 0..{BPS} bps, got {self.haircut_bps}")


@dataclass(frozen=True, slots=True)
class CrossMarginAccount:
    """Positions and collateral that share one margin balance."""

    positions: tuple[RiskPosition, ...] = ()
    collateral: tuple[CollateralHolding, ...] = ()
    rates: MaintenanceRates = field(default_factory=MaintenanceRates)

    def underlyings(self) -> tuple[str, ...]:
        """Every underlying whose price moves this account's equity or maintenance."""
        names = {p.underlying for p in self.positions}
        names |= {c.underlying for c in self.collateral if c.underlying is not None}
        return tuple(sorted(names))


@dataclass(frozen=True, slots=True)
class LiquidationPrice:
    """Where excess = equity - maintenance crosses zero when `underlying` alone moves.

    `scope` is "account" for all positions together, else the instrument of the one position
    (isolated view: that position alone with the account's collateral). `below` / `above` are
    the nearest crossings on either side of `current` within `search_range` (None if none).
    `equity` and `maintenance` are at the current price.
    """

    underlying: str
    scope: str
    current: float
    below: float | None
    above: float | None
    equity: float
    maintenance: float
    search_range: tuple[float, float]

    @property
    def liquidatable(self) -> bool:
        """Already below maintenance at the current price."""
        return self.equity < self.maintenance

    @property
    def margin_ratio(self) -> float:
        """maintenance / equity: liquidatable iff > 1 (inf when equity <= 0 with something
        owed, 0 when both are 0)."""
        if self.equity > 0:
            return self.maintenance / self.equity
        return 0.0 if self.equity == 0 and self.maintenance <= 0 else math.inf

    @property
    def nearest(self) -> float | None:
        """The crossing closest (in log distance) to the current price."""
        found = [p for p in (self.below, self.above) if p is not None]
        if not found:
            return None
        return min(found, key=lambda p: abs(math.log(p / self.current)))

    @property
    def distance(self) -> float | None:
        """|nearest - current| / current: the relative move that reaches the crossing."""
        p = self.nearest
        return None if p is None else abs(p - self.current) / self.current


@dataclass(frozen=True, slots=True)
class AccountLiquidation:
    """Liquidation prices of a whole account: per underlying (all positions together) and
    per position (isolated with the account's collateral, in the order of the positions)."""

    by_underlying: Mapping[str, LiquidationPrice]
    by_position: tuple[LiquidationPrice, ...]
    equity: float
    maintenance: float

    @property
    def liquidatable(self) -> bool:
        return self.equity < self.maintenance


class _Model:
    """Equity and maintenance of positions plus collateral as vectorized functions of one
    underlying's price (the other underlyings fixed at the snapshot)."""

    def __init__(
        self,
        positions: Sequence[RiskPosition],
        collateral: Sequence[CollateralHolding],
        rates: MaintenanceRates,
        market: MarketSnapshot,
        underlying: str,
    ) -> None:
        self.arrays = PortfolioArrays.build(positions, market) if positions else None
        names = {p.underlying for p in positions}
        names |= {c.underlying for c in collateral if c.underlying is not None}
        names.add(underlying)
        missing = sorted(u for u in names if u not in market.spots)
        if missing:
            raise ValueError(f"no spot price for {', '.join(missing)}")
        self.underlyings = tuple(sorted(names))
        col = {u: i for i, u in enumerate(self.underlyings)}
        self.base = np.array([float(market.spots[u]) for u in self.underlyings])
        if np.any(~(self.base > 0)) or not np.all(np.isfinite(self.base)):
            raise ValueError("spot prices must be finite and > 0")
        self.moving = col[underlying]
        self.current = float(self.base[self.moving])
        # Collateral: value = amount * factor * (1 or S of its column).
        amounts = np.array([float(c.amount) for c in collateral])
        haircut = np.array([c.haircut_bps / BPS for c in collateral])
        self.coll_factor = amounts * np.where(amounts > 0, 1.0 - haircut, 1.0)
        self.coll_column = np.array(
            [-1 if c.underlying is None else col[c.underlying] for c in collateral],
            dtype=np.int64,
        )
        if self.arrays is not None:
            a = self.arrays
            self.pos_columns = np.array([col[u] for u in a.underlyings], dtype=np.int64)
            q_abs = np.abs(a.quantity)
            short = a.quantity < 0
            # maintenance = mm_per_s * S + mm_const + mm_mark * |option value|
            spot, linear, inverse, option = (a.kind == c for c in _KIND_CODES)
            self.mm_per_s = np.select(
                [linear, option & short, spot & short],
                [rates.linear * q_abs, rates.option * q_abs, rates.spot_short * q_abs],
                0.0,
            )
            self.mm_const = np.where(inverse, rates.inverse * q_abs * a.contract_size, 0.0)
            self.mm_mark = np.where(option & short, rates.option_mark, 0.0)
            # a short put's notional at risk is capped by its strike
            self.mm_cap = np.where(option & short & ~a.is_call, a.strike, np.inf)

    def evaluate(self, prices: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """(equity, maintenance), each of the shape of `prices` (of the moving underlying)."""
        p = np.asarray(prices, dtype=np.float64)
        spots = np.broadcast_to(self.base, (*p.shape, len(self.base))).copy()
        spots[..., self.moving] = p
        coll_s = np.where(self.coll_column >= 0, spots[..., np.maximum(self.coll_column, 0)], 1.0)
        equity: FloatArray = (coll_s * self.coll_factor).sum(axis=-1)
        maintenance: FloatArray = np.zeros(p.shape)
        if self.arrays is not None:
            pos_spots = spots[..., self.pos_columns]
            values = self.arrays.position_values(pos_spots)
            s = pos_spots[..., self.arrays.column]
            equity = equity + values.sum(axis=-1)
            per_position = (
                self.mm_per_s * np.minimum(s, self.mm_cap)
                + self.mm_const
                + self.mm_mark * np.abs(values)
            )
            maintenance = per_position.sum(axis=-1)
        return equity, maintenance

    def excess(self, prices: ArrayLike) -> FloatArray:
        equity, maintenance = self.evaluate(prices)
        out: FloatArray = equity - maintenance
        return out


def _scalar(model: _Model) -> Callable[[float], float]:
    def f(x: float) -> float:
        return float(model.excess(np.array([x]))[0])

    return f


def _solve(
    model: _Model,
    underlying: str,
    scope: str,
    search: tuple[float, float],
    grid_points: int,
) -> LiquidationPrice:
    lo_mult, hi_mult = search
    if not (0 < lo_mult < 1 < hi_mult and math.isfinite(hi_mult)):
        raise ValueError(f"search range must satisfy 0 < low < 1 < high, got {search}")
    if grid_points < 3:
        raise ValueError("grid_points must be >= 3")
    s0 = model.current
    grid = np.unique(np.append(np.geomspace(s0 * lo_mult, s0 * hi_mult, grid_points), s0))
    k = int(np.searchsorted(grid, s0))
    equity, maintenance = model.evaluate(grid)
    excess = equity - maintenance
    if not np.all(np.isfinite(excess)):
        raise ValueError(f"equity is not finite on the search range of {underlying}")
    safe = excess >= 0
    safe0 = bool(safe[k])
    f = _scalar(model)

    def root(a: float, b: float) -> float:
        """The boundary of the safe region (excess >= 0) in [a, b], one end safe."""
        fa, fb = f(a), f(b)
        if (fa >= 0) == (fb >= 0):  # a sign change rounding does not repeat: take the end
            return a if abs(fa) <= abs(fb) else b
        x = float(brentq(f, a, b, xtol=_XTOL_REL * a, rtol=_RTOL))
        if f(x) != 0:
            return x
        # brentq stops at any exact zero, which may lie inside a flat stretch of zero excess
        # (e.g. an option mark that underflowed): bisect on "safe" for where it ends
        safe_end, unsafe_end = x, (a if fa < 0 else b)
        for _ in range(200):
            if abs(unsafe_end - safe_end) <= _RTOL * safe_end:
                break
            mid = 0.5 * (safe_end + unsafe_end)
            if f(mid) >= 0:
                safe_end = mid
            else:
                unsafe_end = mid
        return safe_end

    below: float | None = None
    flips = np.nonzero(safe[:k] != safe0)[0]
    if flips.size:
        j = int(flips[-1])
        below = root(float(grid[j]), float(grid[j + 1]))
    above: float | None = None
    flips = np.nonzero(safe[k + 1 :] != safe0)[0]
    if flips.size:
        j = k + 1 + int(flips[0])
        above = root(float(grid[j - 1]), float(grid[j]))
    return LiquidationPrice(
        underlying=underlying,
        scope=scope,
        current=s0,
        below=below,
        above=above,
        equity=float(equity[k]),
        maintenance=float(maintenance[k]),
        search_range=(float(grid[0]), float(grid[-1])),
    )


def margin_curve(
    account: CrossMarginAccount,
    market: MarketSnapshot,
    underlying: str,
    prices: ArrayLike,
) -> tuple[FloatArray, FloatArray]:
    """(equity, maintenance) of the whole account at each of `prices` of `underlying`, the
    other underlyings at the snapshot: the curve a chart or a scan draws."""
    model = _Model(account.positions, account.collateral, account.rates, market, underlying)
    return model.evaluate(prices)


def liquidation_price(
    account: CrossMarginAccount,
    market: MarketSnapshot,
    underlying: str,
    *,
    search: tuple[float, float] = DEFAULT_SEARCH,
    grid_points: int = DEFAULT_GRID_POINTS,
) -> LiquidationPrice:
    """Liquidation prices of the whole account (all positions, all collateral) when
    `underlying` alone moves."""
    model = _Model(account.positions, account.collateral, account.rates, market, underlying)
    return _solve(model, underlying, "account", search, grid_points)


def position_liquidation_price(
    account: CrossMarginAccount,
    market: MarketSnapshot,
    index: int,
    *,
    search: tuple[float, float] = DEFAULT_SEARCH,
    grid_points: int = DEFAULT_GRID_POINTS,
) -> LiquidationPrice:
    """Isolated view of `account.positions[index]`: that position alone (its value and its
    maintenance) with all of the account's collateral, moving its own underlying."""
    position = account.positions[index]
    model = _Model([position], account.collateral, account.rates, market, position.underlying)
    return _solve(model, position.underlying, position.instrument, search, grid_points)


def account_liquidation(
    account: CrossMarginAccount,
    market: MarketSnapshot,
    *,
    search: tuple[float, float] = DEFAULT_SEARCH,
    grid_points: int = DEFAULT_GRID_POINTS,
) -> AccountLiquidation:
    """Per underlying (every underlying of a position or of collateral) and per position."""
    by_underlying = {
        u: liquidation_price(account, market, u, search=search, grid_points=grid_points)
        for u in account.underlyings()
    }
    by_position = tuple(
        position_liquidation_price(account, market, i, search=search, grid_points=grid_points)
        for i in range(len(account.positions))
    )
    if by_underlying:
        first = next(iter(by_underlying.values()))
        equity, maintenance = first.equity, first.maintenance
    else:  # quote collateral only
        equity = float(
            sum(
                c.amount * (1 - Decimal(c.haircut_bps) / BPS) if c.amount > 0 else c.amount
                for c in account.collateral
            )
        )
        maintenance = 0.0
    return AccountLiquidation(by_underlying, by_position, equity, maintenance)


# =========================================================================== B. on-chain wallet


class WalletMarginOutcome(str, enum.Enum):
    """How the wallet's margin depends on one collateral token's price."""

    NO_REQUIREMENT = "no_requirement"  # no quote required and covers held: passes at any price
    ALWAYS_PASSES = "always_passes"  # other holdings cover the requirement alone
    PASSES_ABOVE = "passes_above"  # passes iff price >= threshold
    FAILS_AT_ANY_PRICE = "fails_at_any_price"  # this token cannot close the shortfall
    COVER_SHORTFALL = "cover_shortfall"  # an underlying balance < cover: fails at any price


@dataclass(frozen=True, slots=True)
class WalletMarginCall:
    """The margin-call price of `token` for one wallet, other prices fixed.

    `price` is the exact break-even of the continuous rule
    fixed_available + free * P / unit * (1 - haircut) = required (rational, given as a
    Decimal to 60 significant digits, rounded up); `threshold` the smallest integer oracle
    price at which the contract, with its floor divisions, passes (>= ceil(price)). Both None
    unless `outcome` is PASSES_ABOVE. `cover_shortfall` lists underlyings held below their
    cover (base units missing). `current_price` is None when the oracle read of `token`
    reverts now; `passes_now` is `margin_status(state).ok`, False where it reverts.
    """

    token: str
    outcome: WalletMarginOutcome
    required: int
    fixed_available: int  # what the contract counts without `token` (its price at 0)
    free_balance: int  # balance of `token` minus its cover
    current_price: int | None
    passes_now: bool
    price: Decimal | None
    threshold: int | None
    cover_shortfall: Mapping[str, int]


def with_collateral_price(state: WalletState, token: str, price: int | None) -> WalletState:
    """`state` with the oracle price of collateral `token` replaced (every other input kept)."""
    key = token.lower()
    collateral = tuple(replace(c, price=price) if c.token == key else c for c in state.collateral)
    return replace(state, collateral=collateral)


def _passes(state: WalletState) -> bool:
    """`margin_status(state).ok`, a revert counting as a failure."""
    try:
        return margin_status(state).ok
    except MarginReverts:
        return False


def wallet_margin_call(state: WalletState, token: str) -> WalletMarginCall:
    """The oracle price of collateral `token` below which the wallet fails its margin rule.

    `state` is the contract mirror's `gateway.risk.wallet_margin.WalletState`; the price of
    `token` moves, every other input stays. Everything but `token`'s own term is read off
    `margin_status` itself: `required`, and `fixed_available` = its `available` with the price
    of `token` at 0. Then, with x the free balance (balance - cover) and h the haircut, the
    shortfall D = required - fixed_available must come from
    floor(floor(x P / unit) (10000 - h) / 10000), which holds iff floor(x P / unit) >= V =
    ceil(10000 D / (10000 - h)), iff x P >= V unit, iff P >= ceil(V unit / x). The threshold
    is checked against `margin_status`; where the contract reverts there (uint256 overflow) it
    passes at no price. (At prices so large that x P overflows uint256, > 2**256 / x, the
    contract reverts too; no threshold is anywhere near.)

    Raises ValueError when `token` is not a (non-quote) collateral token of the state or is
    listed twice or with a haircut outside 0..10000 bps (the Settlement allows neither), and
    what `margin_status` raises where the rule fails whatever the price of `token`
    (`MarginReverts`: another token's oracle read reverts, a checked overflow;
    `MissingState`: a balance or decimals missing from the state).
    """
    key = token.lower()
    entries = [c for c in state.collateral if c.token == key]
    if not entries or key == state.option_quote:
        raise ValueError(f"{token} is not a (non-quote) collateral token")
    if len(entries) > 1:
        raise ValueError(f"{token} is listed twice as collateral")
    entry = entries[0]
    if not 0 <= entry.haircut_bps <= BPS:
        raise ValueError(f"haircut must be within 0..{BPS} bps, got {entry.haircut_bps}")
    covers = requirements(state)[1]
    shortfall = {
        u: need - state.balance(u) for u, need in covers.items() if state.balance(u) < need
    }
    free = state.balance(key) - covers.get(key, 0)
    if shortfall:
        required, fixed = margin_status(state).required, state.balance(state.option_quote)
    else:
        required, fixed, _ok = margin_status(with_collateral_price(state, key, 0))

    def result(
        outcome: WalletMarginOutcome, price: Decimal | None = None, threshold: int | None = None
    ) -> WalletMarginCall:
        return WalletMarginCall(
            token=key,
            outcome=outcome,
            required=required,
            fixed_available=fixed,
            free_balance=free,
            current_price=entry.price,
            passes_now=_passes(state),
            price=price,
            threshold=threshold,
            cover_shortfall=shortfall,
        )

    if shortfall:
        return result(WalletMarginOutcome.COVER_SHORTFALL)
    if required == 0:
        return result(WalletMarginOutcome.NO_REQUIREMENT)
    deficit = required - fixed
    if deficit <= 0:
        return result(WalletMarginOutcome.ALWAYS_PASSES)
    keep = BPS - entry.haircut_bps
    if free <= 0 or keep == 0 or entry.unit == 0:
        return result(WalletMarginOutcome.FAILS_AT_ANY_PRICE)
    exact = Fraction(deficit * entry.unit * BPS, free * keep)
    value_needed = -(-deficit * BPS // keep)
    threshold = -(-value_needed * entry.unit // free)
    try:
        at_threshold = margin_status(with_collateral_price(state, key, threshold))
    except MarginReverts:
        return result(WalletMarginOutcome.FAILS_AT_ANY_PRICE)
    if not at_threshold.ok:  # pragma: no cover - the closed form is exact
        raise AssertionError(f"margin call of {token}: the contract fails at {threshold}")
    return result(WalletMarginOutcome.PASSES_ABOVE, _decimal_ceil(exact), threshold)


def wallet_margin_calls(state: WalletState) -> dict[str, WalletMarginCall]:
    """`wallet_margin_call` for every collateral token of the registry but the option quote,
    keyed by its (lower-case) address."""
    return {
        c.token: wallet_margin_call(state, c.token)
        for c in state.collateral
        if c.token != state.option_quote
    }


def _decimal_ceil(x: Fraction) -> Decimal:
    """x as a Decimal of 60 significant digits, rounded up (exact when it fits)."""
    with localcontext() as ctx:
        ctx.prec = 60
        ctx.rounding = ROUND_CEILING
        return Decimal(x.numerator) / Decimal(x.denominator)
