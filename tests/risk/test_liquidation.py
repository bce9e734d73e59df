"""Liquidation prices against closed forms and independent brute-force scans; wallet
margin-call prices against the contract-verified mirror of its margin rule
(`gateway.risk.wallet_margin.margin_status`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from scipy.special import ndtr

from gateway.risk.liquidation import (
    AccountLiquidation,
    CollateralHolding,
    CrossMarginAccount,
    LiquidationPrice,
    MaintenanceRates,
    WalletMarginOutcome,
    account_liquidation,
    liquidation_price,
    margin_curve,
    position_liquidation_price,
    wallet_margin_call,
    wallet_margin_calls,
    with_collateral_price,
)
from gateway.risk.portfolio import MarketSnapshot, PositionKind, RiskPosition
from gateway.risk.wallet_margin import (
    CollateralToken,
    MarginReverts,
    MarginStatus,
    SeriesPosition,
    WalletState,
    margin_status,
)

FloatArray = NDArray[np.float64]
NOW = datetime(2026, 1, 1, tzinfo=UTC)
YEAR = 365.0 * 24 * 3600
REL = 1e-9


def market(
    btc: float = 50_000.0, eth: float = 3_000.0, vol: float = 0.6, rate: float = 0.0
) -> MarketSnapshot:
    return MarketSnapshot(
        NOW,
        {"BTC": Decimal(repr(btc)), "ETH": Decimal(repr(eth))},
        {"BTC": vol, "ETH": vol},
        rate=rate,
    )


def linear(q: float, entry: float, underlying: str = "BTC") -> RiskPosition:
    return RiskPosition(
        f"{underlying}-PERP",
        underlying,
        PositionKind.LINEAR,
        Decimal(repr(q)),
        entry_price=Decimal(repr(entry)),
    )


def inverse(q: float, entry: float, contract: float = 100.0) -> RiskPosition:
    return RiskPosition(
        "BTC-USD-INV",
        "BTC",
        PositionKind.INVERSE,
        Decimal(repr(q)),
        entry_price=Decimal(repr(entry)),
        contract_size=Decimal(repr(contract)),
    )


def option(q: float, strike: float, days: float, is_call: bool) -> RiskPosition:
    return RiskPosition(
        f"BTC-{strike:g}-{'C' if is_call else 'P'}",
        "BTC",
        PositionKind.OPTION,
        Decimal(repr(q)),
        strike=Decimal(repr(strike)),
        expires_at=NOW + timedelta(days=days),
        is_call=is_call,
    )


def spot(q: float, underlying: str = "BTC") -> RiskPosition:
    return RiskPosition(f"{underlying}/USDC", underlying, PositionKind.SPOT, Decimal(repr(q)))


def usdc(amount: float) -> CollateralHolding:
    return CollateralHolding("USDC", Decimal(repr(amount)))


def linear_root(a: float, b: float, lp: LiquidationPrice) -> tuple[float | None, float | None]:
    """Expected (below, above) for excess(S) = a + b S: one root at -a/b, if in range."""
    if b == 0:
        return None, None
    root = -a / b
    lo, hi = lp.search_range
    if not lo < root < hi:
        return None, None
    return (root, None) if root < lp.current else (None, root)


def assert_close(got: float | None, want: float | None, rel: float = REL) -> None:
    if want is None:
        assert got is None
    else:
        assert got is not None
        assert got == pytest.approx(want, rel=rel)


# ------------------------------------------------------------------ independent reference


def bs_price(s: FloatArray, k: float, t: float, r: float, vol: float, call: bool) -> FloatArray:
    """Textbook Black-Scholes (no dividend), written independently of gateway.risk.pricing."""
    if t <= 0:
        return np.maximum(s - k, 0.0) if call else np.maximum(k - s, 0.0)
    sd = vol * math.sqrt(t)
    d1 = (np.log(s / k) + (r + 0.5 * vol * vol) * t) / sd
    d2 = d1 - sd
    out: FloatArray
    if call:
        out = s * ndtr(d1) - k * math.exp(-r * t) * ndtr(d2)
    else:
        out = k * math.exp(-r * t) * ndtr(-d2) - s * ndtr(-d1)
    return out


@dataclass
class Ref:
    """Independent equity - maintenance of a BTC account (quote and ETH collateral fixed)."""

    fixed: float  # quote collateral plus everything not moving with BTC
    btc_coins: float = 0.0  # BTC collateral (already haircut)
    linears: Sequence[tuple[float, float]] = ()  # (q, entry)
    options: Sequence[tuple[float, float, float, bool]] = ()  # (q, strike, days, call)
    rates: MaintenanceRates = field(default_factory=MaintenanceRates)
    vol: float = 0.6
    rate: float = 0.0

    def excess(self, s: FloatArray) -> FloatArray:
        out = self.fixed + self.btc_coins * s
        for q, e in self.linears:
            out = out + q * (s - e) - self.rates.linear * abs(q) * s
        for q, k, days, call in self.options:
            mark = bs_price(s, k, days * 86400 / YEAR, self.rate, self.vol, call)
            out = out + q * mark
            if q < 0:
                base = s if call else np.minimum(s, k)
                out = out - abs(q) * (self.rates.option * base + self.rates.option_mark * mark)
        return out


def scan(
    f: Callable[[FloatArray], FloatArray], s0: float, lo: float = 1e-3, hi: float = 1e3
) -> tuple[float | None, float | None]:
    """Nearest sign changes of f around s0 on a 10^6-point grid, refined by bisection."""
    grid = np.geomspace(s0 * lo, s0 * hi, 1_000_001)
    safe = f(grid) > 0
    safe0 = bool(f(np.array([s0]))[0] > 0)

    def bisect(a: float, b: float) -> float:
        fa = f(np.array([a]))[0] > 0
        for _ in range(200):
            m = 0.5 * (a + b)
            if (f(np.array([m]))[0] > 0) == fa:
                a = m
            else:
                b = m
            if b - a <= 1e-15 * b:
                break
        return 0.5 * (a + b)

    idx = int(np.searchsorted(grid, s0))
    flips_below = np.nonzero(safe[:idx] != safe0)[0]
    flips_above = np.nonzero(safe[idx:] != safe0)[0]
    below = above = None
    if flips_below.size:
        j = int(flips_below[-1])
        below = bisect(float(grid[j]), float(grid[j + 1]))
    if flips_above.size:
        j = idx + int(flips_above[0])
        above = bisect(float(grid[j - 1]), float(grid[j]))
    return below, above


# ------------------------------------------------------------------ A. closed forms


@pytest.mark.parametrize(
    ("q", "entry", "collateral"),
    [
        (1.0, 50_000.0, 10_000.0),  # long 1 BTC, 10k margin: liquidated below
        (2.5, 48_000.0, 30_000.0),
        (-1.0, 50_000.0, 10_000.0),  # short: liquidated above
        (-3.0, 52_000.0, 5_000.0),
        (0.1, 50_000.0, 100_000.0),  # over-collateralized long: no crossing above 0
    ],
)
def test_linear_closed_form(q: float, entry: float, collateral: float) -> None:
    """C + q (S - E) = m |q| S  =>  S = (q E - C) / (q - m |q|)."""
    m = 0.005
    account = CrossMarginAccount((linear(q, entry),), (usdc(collateral),))
    lp = liquidation_price(account, market(), "BTC")
    want = (q * entry - collateral) / (q - m * abs(q))
    expect_below, expect_above = linear_root(collateral - q * entry, q - m * abs(q), lp)
    assert_close(lp.below, expect_below)
    assert_close(lp.above, expect_above)
    if q < 0:
        assert lp.above == pytest.approx(want, rel=REL)
    elif want > 50.0:
        assert lp.below == pytest.approx(want, rel=REL)
    else:
        assert lp.below is None
    assert not lp.liquidatable


@settings(max_examples=80, deadline=None)
@given(
    q=st.floats(-50, 50).filter(lambda x: abs(x) > 1e-3),
    entry=st.floats(100, 100_000),
    collateral=st.floats(-1e5, 1e6),
    s0=st.floats(100, 100_000),
    m=st.floats(0, 0.1),
)
def test_linear_closed_form_property(
    q: float, entry: float, collateral: float, s0: float, m: float
) -> None:
    account = CrossMarginAccount(
        (linear(q, entry),), (usdc(collateral),), MaintenanceRates(linear=m)
    )
    lp = liquidation_price(account, market(btc=s0), "BTC")
    a, b = collateral - q * entry, q - m * abs(q)
    # keep the root away from the ends of the search range and from s0 itself
    root = -a / b if b else math.inf
    assume(not (0.99 < root / lp.search_range[0] < 1.01 or 0.99 < root / lp.search_range[1] < 1.01))
    assume(abs(root / s0 - 1) > 1e-9)
    expect_below, expect_above = linear_root(a, b, lp)
    assert_close(lp.below, expect_below)
    assert_close(lp.above, expect_above)
    assert lp.liquidatable == (a + b * s0 < 0)


@pytest.mark.parametrize(
    ("q", "coins", "entry"),
    [
        (500.0, 1.0, 50_000.0),  # long 50k USD of contracts on 1 BTC: levered 2x, liquidates below
        (-500.0, 0.5, 50_000.0),  # short 50k USD on 0.5 BTC: liquidates above
        (-500.0, 1.0, 50_000.0),  # short exactly hedges the coin: never liquidated
        (-250.0, 2.0, 45_000.0),  # over-hedged short: never liquidated
        (200.0, 0.1, 60_000.0),
    ],
)
def test_inverse_closed_form_with_coin_collateral(q: float, coins: float, entry: float) -> None:
    """B S + q c (S / E - 1) = m |q| c  =>  S = c (q + m |q|) / (B + q c / E)."""
    m, c = 0.005, 100.0
    account = CrossMarginAccount(
        (inverse(q, entry, c),), (CollateralHolding("BTC", Decimal(repr(coins)), "BTC"),)
    )
    lp = liquidation_price(account, market(), "BTC")
    slope = coins + q * c / entry
    expect_below, expect_above = linear_root(-c * (q + m * abs(q)), slope, lp)
    assert_close(lp.below, expect_below)
    assert_close(lp.above, expect_above)
    if q > 0:
        assert lp.below == pytest.approx(c * (q + m * abs(q)) / slope, rel=REL)
    elif slope < 0:
        assert lp.above == pytest.approx(c * (q + m * abs(q)) / slope, rel=REL)
    else:
        assert lp.below is None and lp.above is None


@settings(max_examples=60, deadline=None)
@given(
    q=st.floats(-5_000, 5_000).filter(lambda x: abs(x) > 1),
    coins=st.floats(0, 20),
    entry=st.floats(1_000, 100_000),
    haircut=st.integers(0, 5_000),
    s0=st.floats(1_000, 100_000),
)
def test_inverse_closed_form_property(
    q: float, coins: float, entry: float, haircut: int, s0: float
) -> None:
    m, c = 0.005, 10.0
    account = CrossMarginAccount(
        (inverse(q, entry, c),),
        (CollateralHolding("BTC", Decimal(repr(coins)), "BTC", haircut),),
    )
    lp = liquidation_price(account, market(btc=s0), "BTC")
    b_eff = float(Decimal(repr(coins)) * (1 - Decimal(haircut) / 10_000))
    slope, const = b_eff + q * c / entry, -c * (q + m * abs(q))
    root = -const / slope if slope else math.inf
    assume(not (0.99 < root / lp.search_range[0] < 1.01 or 0.99 < root / lp.search_range[1] < 1.01))
    assume(abs(root / s0 - 1) > 1e-9)
    expect_below, expect_above = linear_root(const, slope, lp)
    assert_close(lp.below, expect_below)
    assert_close(lp.above, expect_above)


@pytest.mark.parametrize(
    ("q", "strike", "collateral", "is_call"),
    [
        (-1.0, 45_000.0, 12_000.0, False),  # short put: liquidated on a fall
        (-2.0, 50_000.0, 30_000.0, False),
        (-1.0, 55_000.0, 15_000.0, True),  # short call: liquidated on a rally
        (-3.0, 60_000.0, 40_000.0, True),
    ],
)
def test_short_option_against_brute_force_scan(
    q: float, strike: float, collateral: float, is_call: bool
) -> None:
    account = CrossMarginAccount((option(q, strike, 30, is_call),), (usdc(collateral),))
    lp = liquidation_price(account, market(rate=0.03), "BTC")
    ref = Ref(collateral, options=[(q, strike, 30, is_call)], rate=0.03)
    below, above = scan(ref.excess, 50_000.0)
    assert_close(lp.below, below)
    assert_close(lp.above, above)
    assert not lp.liquidatable
    assert (lp.above if is_call else lp.below) is not None
    if not is_call:  # a put's margin is capped by its strike: a rally never liquidates it
        assert lp.above is None


def test_mixed_account_against_brute_force_scan() -> None:
    """Long perp, short strangle, ETH collateral with a haircut: both sides cross."""
    positions = (
        linear(0.5, 49_000.0),
        option(-1.5, 42_000.0, 20, False),
        option(-1.0, 58_000.0, 45, True),
        option(0.5, 65_000.0, 45, True),
    )
    collateral = (usdc(15_000.0), CollateralHolding("ETH", Decimal(4), "ETH", 1_500))
    account = CrossMarginAccount(positions, collateral)
    lp = liquidation_price(account, market(), "BTC")
    ref = Ref(
        15_000.0 + 4 * 3_000.0 * 0.85,
        linears=[(0.5, 49_000.0)],
        options=[
            (-1.5, 42_000.0, 20, False),
            (-1.0, 58_000.0, 45, True),
            (0.5, 65_000.0, 45, True),
        ],
    )
    below, above = scan(ref.excess, 50_000.0)
    assert below is not None and above is not None
    assert_close(lp.below, below)
    assert_close(lp.above, above)
    equity, maintenance = margin_curve(account, market(), "BTC", [50_000.0])
    assert lp.equity == pytest.approx(float(equity[0]))
    assert lp.maintenance == pytest.approx(float(maintenance[0]))
    assert lp.equity - lp.maintenance == pytest.approx(float(ref.excess(np.array([5e4]))[0]))
    assert 0 < lp.margin_ratio < 1
    assert lp.distance == pytest.approx(
        min(50_000.0 - below, above - 50_000.0) / 50_000.0, rel=1e-6
    )


def test_collateral_only_underlying_is_reported() -> None:
    """An account whose only ETH exposure is its ETH collateral is liquidated by ETH falling."""
    account = CrossMarginAccount(
        (linear(1.0, 50_000.0),),
        (usdc(-2_000.0), CollateralHolding("ETH", Decimal(2), "ETH", 1_000)),
    )
    result = account_liquidation(account, market())
    assert set(result.by_underlying) == {"BTC", "ETH"}
    eth = result.by_underlying["ETH"]
    # -2000 + 2 * 0.9 * S_eth + 0 (perp at entry) = 0.005 * 50000
    assert eth.below == pytest.approx((2_000.0 + 250.0) / 1.8, rel=REL)
    assert eth.above is None
    btc = result.by_underlying["BTC"]
    # -2000 + 5400 + (S - 50000) = 0.005 S
    assert btc.below == pytest.approx((50_000.0 - 3_400.0) / 0.995, rel=REL)


def test_isolated_positions_use_the_whole_collateral() -> None:
    positions = (linear(1.0, 50_000.0), linear(-2.0, 51_000.0), option(-1.0, 45_000.0, 30, False))
    account = CrossMarginAccount(positions, (usdc(20_000.0),))
    result = account_liquidation(account, market())
    assert isinstance(result, AccountLiquidation)
    assert [p.scope for p in result.by_position] == [p.instrument for p in positions]
    assert result.by_underlying["BTC"].scope == "account"
    # the long perp alone with 20k: 20000 + (S - 50000) = 0.005 S
    assert result.by_position[0].below == pytest.approx(30_000.0 / 0.995, rel=REL)
    assert result.by_position[0].above is None
    # the short perp alone: 20000 - 2 (S - 51000) = 0.01 S
    assert result.by_position[1].above == pytest.approx(122_000.0 / 2.01, rel=REL)
    for i, p in enumerate(positions):
        alone = liquidation_price(CrossMarginAccount((p,), account.collateral), market(), "BTC")
        by_index = position_liquidation_price(account, market(), i)
        assert by_index == result.by_position[i]
        assert (by_index.below, by_index.above) == (alone.below, alone.above)
        assert by_index.scope == p.instrument and alone.scope == "account"
    assert result.equity == result.by_underlying["BTC"].equity
    assert not result.liquidatable


def test_already_liquidatable_is_explicit() -> None:
    """Long 1 BTC from 60k with 5k margin at S = 50k: equity -5k. It is liquidatable, and
    `above` is where it would be back above maintenance: 5000 + S - 60000 = 0.005 S."""
    account = CrossMarginAccount((linear(1.0, 60_000.0),), (usdc(5_000.0),))
    lp = liquidation_price(account, market(), "BTC")
    assert lp.liquidatable
    assert lp.equity == pytest.approx(-5_000.0)
    assert lp.margin_ratio == math.inf
    assert lp.below is None
    assert lp.above == pytest.approx(55_000.0 / 0.995, rel=REL)
    assert account_liquidation(account, market()).liquidatable
    # equity positive but under maintenance: ratio > 1
    thin = CrossMarginAccount((linear(10.0, 50_000.0),), (usdc(2_000.0),))
    lp = liquidation_price(thin, market(), "BTC")
    assert lp.liquidatable and lp.margin_ratio == pytest.approx(2_500.0 / 2_000.0)


def test_fully_collateralized_long_spot_never_crosses() -> None:
    account = CrossMarginAccount((spot(2.0), spot(10.0, "ETH")), (usdc(1_000.0),))
    result = account_liquidation(account, market())
    for lp in (*result.by_underlying.values(), *result.by_position):
        assert lp.below is None and lp.above is None
        assert lp.nearest is None and lp.distance is None
        assert not lp.liquidatable
        assert lp.margin_ratio == 0.0
    assert result.by_underlying["BTC"].search_range == pytest.approx((50.0, 50_000_000.0))
    # a margin loan of quote against the spot does cross: 2 S - 60000 = 0
    levered = CrossMarginAccount((spot(2.0),), (usdc(-60_000.0),))
    assert liquidation_price(levered, market(), "BTC").below == pytest.approx(30_000.0)


def test_zero_excess_is_not_liquidation_and_flat_stretches_end_at_the_boundary() -> None:
    """A far out-of-the-money long put alone: its mark underflows to exactly 0 on a rally, with
    nothing owed; that is not a liquidation. An expired short call with no underlying charge
    has excess exactly 0 up to its strike and < 0 above: the crossing is the strike itself,
    not some point of the flat stretch where brentq happens to stop."""
    put_only = CrossMarginAccount((option(1.0, 30_000.0, 1.0, False),))
    lp = liquidation_price(put_only, market(vol=1.0), "BTC")
    assert (lp.below, lp.above, lp.liquidatable) == (None, None, False)
    expired_call = CrossMarginAccount(
        (option(-1.0, 60_000.0, 0.0, True),), rates=MaintenanceRates(option=0.0)
    )
    lp = liquidation_price(expired_call, market(), "BTC")
    assert lp.equity == 0.0 and lp.margin_ratio == 0.0 and not lp.liquidatable
    assert lp.below is None
    assert lp.above == pytest.approx(60_000.0, rel=1e-12)


def test_collateral_only_and_empty_accounts() -> None:
    result = account_liquidation(CrossMarginAccount((), (usdc(100.0),)), market())
    assert result.by_underlying == {} and result.by_position == ()
    assert result.equity == 100.0 and not result.liquidatable
    haircut = CrossMarginAccount((), (CollateralHolding("USDT", Decimal(100), None, 100),))
    assert account_liquidation(haircut, market()).equity == pytest.approx(99.0)


def test_search_range_and_inputs_are_validated() -> None:
    account = CrossMarginAccount((linear(1.0, 50_000.0),), (usdc(10_000.0),))
    with pytest.raises(ValueError, match="search range"):
        liquidation_price(account, market(), "BTC", search=(2.0, 10.0))
    with pytest.raises(ValueError, match="grid_points"):
        liquidation_price(account, market(), "BTC", grid_points=2)
    with pytest.raises(ValueError, match="no spot price"):
        liquidation_price(account, market(), "SOL")
    with pytest.raises(ValueError, match="haircut"):
        CollateralHolding("ETH", Decimal(1), "ETH", 10_001)
    with pytest.raises(ValueError, match="rate"):
        MaintenanceRates(linear=-0.1)
    # a narrower search range hides a far crossing
    lp = liquidation_price(account, market(), "BTC", search=(0.9, 1.1))
    assert lp.below is None and lp.search_range == pytest.approx((45_000.0, 55_000.0))


# ------------------------------------------------------------------ A. properties


@dataclass(frozen=True)
class Spec:
    perp: float
    entry: float
    options: list[tuple[float, float, float, bool]]
    collateral: float
    eth: float
    vol: float


ACCOUNTS = st.builds(
    Spec,
    perp=st.floats(-5, 5),
    entry=st.floats(30_000, 70_000),
    options=st.lists(
        st.tuples(
            st.floats(-3, 3).filter(lambda x: abs(x) > 0.01),
            st.floats(30_000, 80_000),
            st.floats(1, 120),
            st.booleans(),
        ),
        max_size=3,
    ),
    collateral=st.floats(0, 300_000),
    eth=st.floats(0, 20),
    vol=st.floats(0.2, 1.5),
)


def build(spec: Spec, extra: float = 0.0) -> tuple[CrossMarginAccount, Ref]:
    positions = (
        linear(spec.perp, spec.entry),
        *(option(q, k, d, c) for q, k, d, c in spec.options),
    )
    collateral = spec.collateral + extra
    account = CrossMarginAccount(
        positions,
        (usdc(collateral), CollateralHolding("ETH", Decimal(repr(spec.eth)), "ETH", 2_000)),
    )
    ref = Ref(
        collateral + spec.eth * 3_000.0 * 0.8,
        linears=[(spec.perp, spec.entry)],
        options=spec.options,
        vol=spec.vol,
    )
    return account, ref


@settings(max_examples=60, deadline=None)
@given(spec=ACCOUNTS, extra=st.floats(1.0, 50_000))
def test_liquidation_price_properties(spec: Spec, extra: float) -> None:
    account, ref = build(spec)
    mkt = market(vol=ref.vol)
    lp = liquidation_price(account, mkt, "BTC")
    s0 = lp.current
    scale = 1.0 + abs(ref.fixed) + sum(abs(q) * (s0 + k) for q, k, _, _ in ref.options)
    scale += abs(ref.linears[0][0]) * (s0 + ref.linears[0][1])
    assert lp.equity - lp.maintenance == pytest.approx(
        float(ref.excess(np.array([s0]))[0]), abs=1e-9 * scale
    )
    assume(not lp.liquidatable)
    for p in (lp.below, lp.above):
        if p is None:
            continue
        # at the returned price equity == maintenance (independent reference)
        assert abs(float(ref.excess(np.array([p]))[0])) <= 1e-8 * scale * max(1.0, p / s0)
        # strictly safe everywhere between the current price and the crossing
        between = np.geomspace(p, s0, 3_002)[1:-1]
        equity, maintenance = margin_curve(account, mkt, "BTC", between)
        assert np.all(equity >= maintenance)
        assert np.all(ref.excess(between) >= -1e-12 * scale)
    # no crossing at all on the side that reports None
    lo, hi = lp.search_range
    if lp.below is None:
        assert np.all(ref.excess(np.geomspace(lo, s0, 5_000)) >= -1e-12 * scale)
    if lp.above is None:
        assert np.all(ref.excess(np.geomspace(s0, hi, 5_000)) >= -1e-12 * scale)
    # more collateral moves the liquidation prices further away (or removes them)
    richer, _ = build(spec, extra)
    lp2 = liquidation_price(richer, mkt, "BTC")
    assert not lp2.liquidatable
    if lp.below is None:
        assert lp2.below is None
    elif lp2.below is not None:
        assert lp2.below < lp.below
    if lp.above is None:
        assert lp2.above is None
    elif lp2.above is not None:
        assert lp2.above > lp.above


# ------------------------------------------------------------------ B. on-chain wallet

USDC = 10**6
WETH = 10**18
WBTC = 10**8
QUOTE_T = "0x" + "a0" * 20  # USDC, the option quote
WETH_T = "0x" + "e0" * 20
WBTC_T = "0x" + "b0" * 20
EXPIRY = 1_790_000_000


def registry(
    weth_price: int | None = 3_000 * USDC,
    wbtc_price: int | None = 60_000 * USDC,
    *,
    wbtc_unit: int = WBTC,
    wbtc_haircut: int = 1_000,
    quote: bool = True,
) -> tuple[CollateralToken, ...]:
    """The Settlement's collateral: WETH at 20% haircut, WBTC at 10% (and the quote itself,
    which the rule skips)."""
    tokens = (
        CollateralToken(WETH_T, weth_price, WETH, 2_000),
        CollateralToken(WBTC_T, wbtc_price, wbtc_unit, wbtc_haircut),
    )
    return ((CollateralToken(QUOTE_T, USDC, USDC, 0),) if quote else ()) + tokens


def ok_at(state: WalletState, prices: Mapping[str, int | None]) -> bool:
    """The contract mirror's verdict with these oracle prices (the others as in the state);
    a revert fails."""
    collateral = tuple(replace(c, price=prices.get(c.token, c.price)) for c in state.collateral)
    try:
        return margin_status(replace(state, collateral=collateral)).ok
    except MarginReverts:
        return False


def weth_series(*legs: tuple[int, bool, int]) -> tuple[SeriesPosition, ...]:
    """Legs (strike in USDC, is_call, size in WETH base units) of one WETH series."""
    return tuple(SeriesPosition(WETH_T, EXPIRY, k * USDC, call, size) for k, call, size in legs)


def wallet(
    quote: int,
    weth: int,
    positions: tuple[SeriesPosition, ...],
    *,
    wbtc: int = 0,
    price: int = 3_000,
    collateral: tuple[CollateralToken, ...] | None = None,
) -> WalletState:
    return WalletState(
        QUOTE_T,
        {QUOTE_T: quote, WETH_T: weth, WBTC_T: wbtc},
        {WETH_T: 18},
        positions,
        registry(price * USDC) if collateral is None else collateral,
    )


def assert_threshold_exact(state: WalletState, token: str, threshold: int | None) -> None:
    """`margin_status` passes at the threshold and fails one quote unit below it."""
    assert threshold is not None and threshold >= 1
    assert ok_at(state, {token: threshold})
    assert not ok_at(state, {token: threshold - 1})
    assert margin_status(with_collateral_price(state, token, threshold)).ok
    assert not margin_status(with_collateral_price(state, token, threshold - 1)).ok


def test_wallet_short_put_margin_call() -> None:
    """Short 1 put at 3000 needs 3000 USDC; 1000 USDC + 1 WETH at 80% covers it from 2500."""
    state = wallet(1_000 * USDC, WETH, weth_series((3_000, False, -WETH)))
    call = wallet_margin_call(state, WETH_T)
    assert call.outcome is WalletMarginOutcome.PASSES_ABOVE
    assert call.required == 3_000 * USDC and call.fixed_available == 1_000 * USDC
    assert call.price == Decimal(2_500 * USDC) and call.threshold == 2_500 * USDC
    assert call.passes_now and call.free_balance == WETH
    assert call.current_price == 3_000 * USDC and call.token == WETH_T
    assert_threshold_exact(state, WETH_T, call.threshold)
    # the contract mirror's own figures at the threshold and one unit below
    at = margin_status(with_collateral_price(state, WETH_T, 2_500 * USDC))
    assert at == MarginStatus(3_000 * USDC, 3_000 * USDC, True)
    below = margin_status(with_collateral_price(state, WETH_T, 2_500 * USDC - 1))
    assert below == MarginStatus(3_000 * USDC, 3_000 * USDC - 1, False)
    # a checksummed (mixed-case) address names the same token
    assert wallet_margin_call(state, WETH_T.upper().replace("0X", "0x")) == call


def test_wallet_cover_and_special_outcomes() -> None:
    """The README examples (1 unit, strike 3000) and what each leaves to the WETH price."""
    straddle = weth_series((3_000, True, -WETH), (3_000, False, -WETH))
    # short straddle: 1 WETH + 3000. With 2 WETH, 1 is locked as cover of the short call:
    # only 1 WETH moves available
    state = wallet(1_000 * USDC, 2 * WETH, straddle)
    call = wallet_margin_call(state, WETH_T)
    assert call.free_balance == WETH and call.threshold == 2_500 * USDC
    assert_threshold_exact(state, WETH_T, call.threshold)
    # exactly the cover: the rest must come from elsewhere, at no WETH price
    state = wallet(1_000 * USDC, WETH, straddle)
    call = wallet_margin_call(state, WETH_T)
    assert call.outcome is WalletMarginOutcome.FAILS_AT_ANY_PRICE and call.threshold is None
    assert not call.passes_now
    for p in (0, 1, 3_000 * USDC, 10**30):
        assert not ok_at(state, {WETH_T: p})
    # ... unless WBTC covers it: 0.05 WBTC at 60000 * 0.9 = 2700 > 2000 missing
    state = wallet(1_000 * USDC, WETH, straddle, wbtc=5 * WBTC // 100)
    call = wallet_margin_call(state, WETH_T)
    assert call.outcome is WalletMarginOutcome.ALWAYS_PASSES
    assert call.fixed_available == 1_000 * USDC + 2_700 * USDC
    for p in (0, 1, 3_000 * USDC):
        assert ok_at(state, {WETH_T: p})
    wbtc = wallet_margin_call(state, WBTC_T)
    assert wbtc.outcome is WalletMarginOutcome.PASSES_ABOVE
    assert_threshold_exact(state, WBTC_T, wbtc.threshold)
    # a lone short call leg without the coin: refused at any price
    state = wallet(10**6 * USDC, WETH // 2, weth_series((3_000, True, -WETH)))
    call = wallet_margin_call(state, WETH_T)
    assert call.outcome is WalletMarginOutcome.COVER_SHORTFALL
    assert call.cover_shortfall == {WETH_T: WETH // 2} and not call.passes_now
    assert call.fixed_available == 10**6 * USDC and call.free_balance == -(WETH // 2)
    for p in (1, 3_000 * USDC, 10**12 * USDC):
        assert not ok_at(state, {WETH_T: p, WBTC_T: p})
    # covered call: cover 1 WETH, nothing required
    state = wallet(0, WETH, weth_series((3_000, True, -WETH)))
    call = wallet_margin_call(state, WETH_T)
    assert call.outcome is WalletMarginOutcome.NO_REQUIREMENT and call.passes_now
    assert margin_status(state).required == 0
    # short iron condor 2800/2900/3100/3200: 100 USDC required, held in quote
    condor = weth_series(
        (2_800, False, WETH), (2_900, False, -WETH), (3_100, True, -WETH), (3_200, True, WETH)
    )
    state = wallet(100 * USDC, 0, condor)
    assert margin_status(state).required == 100 * USDC
    calls = wallet_margin_calls(state)
    assert set(calls) == {WETH_T, WBTC_T}
    assert all(c.outcome is WalletMarginOutcome.ALWAYS_PASSES for c in calls.values())
    with pytest.raises(ValueError, match="collateral"):
        wallet_margin_call(state, QUOTE_T)
    with pytest.raises(ValueError, match="collateral"):
        wallet_margin_call(state, "0x" + "cd" * 20)
    # a wallet with no open position passes at any price
    empty = wallet_margin_call(wallet(0, 0, ()), WETH_T)
    assert empty.outcome is WalletMarginOutcome.NO_REQUIREMENT and empty.passes_now


def test_wallet_margin_call_where_the_oracle_or_the_arithmetic_reverts() -> None:
    short_put = weth_series((3_000, False, -WETH))
    # a stale WETH feed: the margin call is still known, the wallet fails now (the read reverts)
    state = wallet(1_000 * USDC, WETH, short_put, collateral=registry(weth_price=None))
    call = wallet_margin_call(state, WETH_T)
    assert call.current_price is None and not call.passes_now
    assert call.threshold == 2_500 * USDC
    assert_threshold_exact(state, WETH_T, call.threshold)
    # ... but not when the quote alone suffices (the contract never reads the price)
    rich = wallet(3_000 * USDC, WETH, short_put, collateral=registry(weth_price=None))
    assert wallet_margin_call(rich, WETH_T).passes_now
    # a stale WBTC feed with WBTC held: the contract reverts whatever the WETH price
    stale = wallet(1_000 * USDC, WETH, short_put, wbtc=WBTC, collateral=registry(wbtc_price=None))
    with pytest.raises(MarginReverts):
        wallet_margin_call(stale, WETH_T)
    # a threshold beyond uint256 arithmetic: the contract reverts before it ever passes
    # (a loss of 2**254 quote units * unit, one WETH base unit held at a 90% haircut)
    huge = (SeriesPosition(WETH_T, EXPIRY, 2**194, False, -(2**60)),)
    state = wallet(0, 1, huge, collateral=(CollateralToken(WETH_T, 1, WETH, 9_000),))
    call = wallet_margin_call(state, WETH_T)
    assert call.outcome is WalletMarginOutcome.FAILS_AT_ANY_PRICE and call.threshold is None
    assert not ok_at(state, {WETH_T: 2**255})
    # registries the Settlement cannot hold
    twice = (*registry(), CollateralToken(WETH_T, 1, WETH, 0))
    with pytest.raises(ValueError, match="twice"):
        wallet_margin_call(wallet(0, WETH, short_put, collateral=twice), WETH_T)
    with pytest.raises(ValueError, match="haircut"):
        wallet_margin_call(
            wallet(0, WETH, short_put, collateral=registry(wbtc_haircut=10_001)), WBTC_T
        )


def test_with_collateral_price_changes_one_price_only() -> None:
    state = wallet(1_000 * USDC, WETH, weth_series((3_000, False, -WETH)))
    moved = with_collateral_price(state, WETH_T.upper().replace("0X", "0x"), 7)
    assert [c.price for c in moved.collateral] == [USDC, 7, 60_000 * USDC]
    assert replace(moved, collateral=state.collateral) == state


@settings(max_examples=300, deadline=None)
@given(
    quote=st.integers(0, 50_000 * USDC),
    weth=st.integers(0, 30 * WETH),
    topped=st.booleans(),
    wbtc=st.integers(0, 2 * WBTC),
    haircut=st.integers(0, 9_999),
    decimals=st.sampled_from([0, 6, 8, 18]),
    legs=st.lists(
        st.tuples(
            st.integers(1, 6_000),
            st.booleans(),
            st.integers(-10 * WETH, 10 * WETH).filter(bool),
        ),
        min_size=1,
        max_size=6,
        unique_by=lambda leg: (leg[0], leg[1]),
    ),
    wbtc_price=st.integers(1, 100_000 * USDC),
)
def test_wallet_threshold_is_exact_under_contract_rounding(
    quote: int,
    weth: int,
    topped: bool,
    wbtc: int,
    haircut: int,
    decimals: int,
    legs: list[tuple[int, bool, int]],
    wbtc_price: int,
) -> None:
    """Passes at the threshold, fails one quote unit below; the continuous break-even lies
    at or below the threshold and every price below it fails (all by `margin_status`).
    `topped`: the WETH balance is on top of the cover of the net short calls."""
    if topped:
        weth += max(0, -sum(size for _, is_call, size in legs if is_call))
    state = wallet(
        quote,
        weth,
        weth_series(*legs),
        wbtc=wbtc,
        collateral=registry(
            wbtc_price=wbtc_price, wbtc_unit=10**decimals, wbtc_haircut=haircut, quote=False
        ),
    )
    call = wallet_margin_call(state, WBTC_T)
    assert call.passes_now == ok_at(state, {})
    assert call.required == margin_status(state).required
    if call.outcome is WalletMarginOutcome.PASSES_ABOVE:
        assert call.threshold is not None and call.price is not None
        assert_threshold_exact(state, WBTC_T, call.threshold)
        assert call.price <= call.threshold
        below = math.ceil(call.price) - 1
        if below >= 0:
            assert not ok_at(state, {WBTC_T: below})
        assert call.passes_now == (wbtc_price >= call.threshold)
        # the continuous rule at the break-even: fixed + free * P / unit * keep = required
        breakeven = Fraction(call.fixed_available) + Fraction(call.free_balance) * Fraction(
            call.price
        ) / 10**decimals * Fraction(10_000 - haircut, 10_000)
        assert breakeven >= call.required
        assert breakeven - call.required <= Fraction(call.required, 10**50)
    elif call.outcome is WalletMarginOutcome.ALWAYS_PASSES:
        assert ok_at(state, {WBTC_T: 0}) and ok_at(state, {WBTC_T: 1})
    elif call.outcome is WalletMarginOutcome.NO_REQUIREMENT:
        assert call.required == 0 and ok_at(state, {WBTC_T: 1})
    else:
        assert not ok_at(state, {WBTC_T: 10**40})
