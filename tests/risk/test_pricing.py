"""Option pricing against independent references: QuantLib, parity, finite differences."""

from __future__ import annotations

import itertools
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import QuantLib as ql
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from scipy.special import ndtr

from gateway.risk import (
    Greeks,
    PriceOutsideArbitrageBounds,
    black76,
    black76_implied_vol,
    black_scholes,
    implied_vol,
    pricing,
)
from gateway.risk.pricing_kernels import PARALLEL_MIN_OPTIONS, VECTOR_WIDTH, kernels

TODAY = ql.Date(25, 11, 2026)
DAYS = [1, 7, 30, 91, 365, 730, 1095]
MONEYNESS = [0.5, 0.8, 0.95, 1.0, 1.05, 1.25, 2.0]
VOLS = [0.05, 0.2, 0.8, 2.0]
CARRY = [(0.05, 0.02), (-0.01, 0.03), (0.0, 0.0)]
SPOT = 100.0
GREEKS = ("price", "delta", "gamma", "vega", "theta", "rho")


def quantlib_bsm(
    spot: float, strike: float, days: int, rate: float, div: float, vol: float, call: bool
) -> dict[str, float]:
    ql.Settings.instance().evaluationDate = TODAY
    dc = ql.Actual365Fixed()
    r_ts = ql.YieldTermStructureHandle(ql.FlatForward(TODAY, rate, dc, ql.Continuous))
    q_ts = ql.YieldTermStructureHandle(ql.FlatForward(TODAY, div, dc, ql.Continuous))
    v_ts = ql.BlackVolTermStructureHandle(ql.BlackConstantVol(TODAY, ql.NullCalendar(), vol, dc))
    process = ql.BlackScholesMertonProcess(ql.QuoteHandle(ql.SimpleQuote(spot)), q_ts, r_ts, v_ts)
    payoff = ql.PlainVanillaPayoff(ql.Option.Call if call else ql.Option.Put, strike)
    option = ql.VanillaOption(payoff, ql.EuropeanExercise(TODAY + days))
    option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    return {
        "price": option.NPV(),
        "delta": option.delta(),
        "gamma": option.gamma(),
        "vega": option.vega(),
        "theta": option.theta(),
        "rho": option.rho(),
    }


def grid() -> list[tuple[float, int, float, float, float, bool]]:
    return [
        (m, d, v, r, q, c)
        for m, d, v, (r, q), c in itertools.product(MONEYNESS, DAYS, VOLS, CARRY, [True, False])
    ]


def close(ours: NDArray[np.float64], ref: NDArray[np.float64], rtol: float, atol: float) -> None:
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol)


# --- QuantLib ---------------------------------------------------------------------------------


def test_black_scholes_matches_quantlib_on_grid() -> None:
    rows = grid()
    strikes = np.array([SPOT / m for m, *_ in rows])
    days = np.array([d for _, d, *_ in rows])
    vols = np.array([row[2] for row in rows])
    rates = np.array([row[3] for row in rows])
    divs = np.array([row[4] for row in rows])
    calls = np.array([row[5] for row in rows])
    ours = black_scholes(SPOT, strikes, days / 365.0, rates, divs, vols, calls)
    refs = [
        quantlib_bsm(SPOT, float(k), int(d), float(r), float(q), float(v), bool(c))
        for k, d, r, q, v, c in zip(strikes, days, rates, divs, vols, calls, strict=True)
    ]
    for name in GREEKS:
        ref = np.array([x[name] for x in refs])
        # Relative 1e-9; the absolute floor only matters where the value is ~0 (deep OTM,
        # 1 day, 5% vol: prices of 1e-300 where both sides are rounding noise).
        close(getattr(ours, name), ref, rtol=1e-9, atol=1e-11)
    # the grid really covers both tails and the money
    assert (ours.price > 40).any() and (ours.price < 1e-6).any()


@settings(max_examples=60, deadline=None)
@given(
    moneyness=st.floats(0.5, 2.0),
    days=st.integers(1, 3 * 365),
    vol=st.floats(0.05, 2.0),
    rate=st.floats(-0.02, 0.10),
    div=st.floats(-0.02, 0.10),
    call=st.booleans(),
)
def test_black_scholes_matches_quantlib_hypothesis(
    moneyness: float, days: int, vol: float, rate: float, div: float, call: bool
) -> None:
    strike = SPOT / moneyness
    ours = black_scholes(SPOT, strike, days / 365.0, rate, div, vol, call)
    ref = quantlib_bsm(SPOT, strike, days, rate, div, vol, call)
    for name in GREEKS:
        close(getattr(ours, name), np.array(ref[name]), rtol=1e-9, atol=1e-11)


def test_black76_price_matches_quantlib_black_formula() -> None:
    rows = grid()
    forwards = np.array([SPOT * m for m, *_ in rows])
    t = np.array([d / 365.0 for _, d, *_ in rows])
    vols = np.array([row[2] for row in rows])
    rates = np.array([row[3] for row in rows])
    calls = np.array([row[5] for row in rows])
    ours = black76(forwards, SPOT, t, rates, vols, calls)
    ref = np.array(
        [
            ql.blackFormula(
                ql.Option.Call if c else ql.Option.Put,
                SPOT,
                float(f),
                float(v * math.sqrt(tt)),
                math.exp(-r * tt),
            )
            for f, tt, v, r, c in zip(forwards, t, vols, rates, calls, strict=True)
        ]
    )
    close(ours.price, ref, rtol=1e-9, atol=1e-11)


def test_black76_greeks_match_quantlib_bsm_with_forward_carry() -> None:
    """Black-76 on F = S e^{(r-q)T} is Black-Scholes: price, gamma, vega agree; delta chains."""
    rows = grid()
    strikes = np.array([SPOT / m for m, *_ in rows])
    t = np.array([d / 365.0 for _, d, *_ in rows])
    vols = np.array([row[2] for row in rows])
    rates = np.array([row[3] for row in rows])
    divs = np.array([row[4] for row in rows])
    calls = np.array([row[5] for row in rows])
    fwd = SPOT * np.exp((rates - divs) * t)
    b76 = black76(fwd, strikes, t, rates, vols, calls)
    bs = black_scholes(SPOT, strikes, t, rates, divs, vols, calls)
    dfdS = fwd / SPOT
    close(b76.price, bs.price, rtol=1e-12, atol=1e-12)
    close(b76.delta * dfdS, bs.delta, rtol=1e-12, atol=1e-14)
    close(b76.gamma * dfdS**2, bs.gamma, rtol=1e-12, atol=1e-14)
    close(b76.vega, bs.vega, rtol=1e-12, atol=1e-12)
    # theta/rho differ only by F's dependence on T and r: dV/dF dF/dT, dV/dF dF/dr.
    close(b76.theta - b76.delta * fwd * (rates - divs), bs.theta, rtol=1e-10, atol=1e-10)
    close(b76.rho + b76.delta * fwd * t, bs.rho, rtol=1e-10, atol=1e-10)


# --- parity and finite differences -------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    moneyness=st.floats(0.5, 2.0),
    t=st.floats(1 / 365, 3.0),
    vol=st.floats(0.05, 2.0),
    rate=st.floats(-0.02, 0.10),
    div=st.floats(-0.02, 0.10),
)
def test_put_call_parity(moneyness: float, t: float, vol: float, rate: float, div: float) -> None:
    strike = SPOT / moneyness
    g = black_scholes(SPOT, strike, t, rate, div, vol, np.array([True, False]))
    forward_value = SPOT * math.exp(-div * t) - strike * math.exp(-rate * t)
    scale = max(abs(forward_value), g.price[0], g.price[1])
    assert abs((g.price[0] - g.price[1]) - forward_value) <= 1e-10 * scale
    assert g.delta[0] - g.delta[1] == pytest.approx(math.exp(-div * t), rel=1e-12)
    assert g.gamma[0] == pytest.approx(g.gamma[1], rel=1e-12, abs=1e-300)
    assert g.vega[0] == pytest.approx(g.vega[1], rel=1e-12, abs=1e-300)
    b = black76(SPOT * moneyness, SPOT, t, rate, vol, np.array([True, False]))
    fwd_value = math.exp(-rate * t) * (SPOT * moneyness - SPOT)
    scale = max(abs(fwd_value), b.price[0], b.price[1])
    assert abs((b.price[0] - b.price[1]) - fwd_value) <= 1e-10 * scale


@settings(max_examples=60, deadline=None)
@given(
    moneyness=st.floats(0.6, 1.7),
    t=st.floats(0.05, 3.0),
    vol=st.floats(0.1, 1.5),
    rate=st.floats(-0.02, 0.10),
    div=st.floats(-0.02, 0.10),
    call=st.booleans(),
)
def test_greeks_match_central_differences(
    moneyness: float, t: float, vol: float, rate: float, div: float, call: bool
) -> None:
    k = SPOT / moneyness

    def bs(s: float = SPOT, tt: float = t, r: float = rate, v: float = vol) -> float:
        return float(black_scholes(s, k, tt, r, div, v, call).price)

    g = black_scholes(SPOT, k, t, rate, div, vol, call)
    hs, hv, ht, hr = 1e-4 * SPOT, 1e-6, 1e-6, 1e-6
    fd = {
        "delta": (bs(s=SPOT + hs) - bs(s=SPOT - hs)) / (2 * hs),
        "gamma": (bs(s=SPOT + hs) - 2 * bs() + bs(s=SPOT - hs)) / hs**2,
        "vega": (bs(v=vol + hv) - bs(v=vol - hv)) / (2 * hv),
        "theta": -(bs(tt=t + ht) - bs(tt=t - ht)) / (2 * ht),
        "rho": (bs(r=rate + hr) - bs(r=rate - hr)) / (2 * hr),
    }
    for name, value in fd.items():
        assert float(getattr(g, name)) == pytest.approx(value, rel=1e-5, abs=1e-6), name


# --- edge limits -------------------------------------------------------------------------------


def test_zero_expiry_and_zero_vol_limits_are_finite_intrinsic() -> None:
    strikes = np.array([50.0, 100.0, 200.0])
    for t, vol in ((0.0, 0.3), (1.0, 0.0), (0.0, 0.0)):
        for call in (True, False):
            g = black_scholes(SPOT, strikes, t, 0.05, 0.02, vol, call)
            for name in GREEKS:
                assert np.isfinite(getattr(g, name)).all(), (t, vol, call, name)
            w = 1.0 if call else -1.0
            fwd = SPOT * math.exp(-0.02 * t)
            disc_k = strikes * math.exp(-0.05 * t)
            np.testing.assert_allclose(g.price, np.maximum(w * (fwd - disc_k), 0.0), atol=1e-12)
            assert (g.gamma == 0).all()
    g = black_scholes(SPOT, strikes, 0.0, 0.05, 0.02, 0.3, True)
    np.testing.assert_array_equal(g.delta, [1.0, 0.5, 0.0])
    np.testing.assert_array_equal(g.vega, [0.0, 0.0, 0.0])
    g = black_scholes(SPOT, strikes, 0.0, 0.05, 0.02, 0.3, False)
    np.testing.assert_array_equal(g.delta, [0.0, -0.5, -1.0])
    # sigma -> 0 with T > 0: the limit of the continuous formula
    tiny = black_scholes(SPOT, strikes, 1.0, 0.05, 0.02, 1e-9, True)
    zero = black_scholes(SPOT, strikes, 1.0, 0.05, 0.02, 0.0, True)
    for name in ("price", "delta", "theta", "rho"):
        np.testing.assert_allclose(getattr(zero, name), getattr(tiny, name), rtol=1e-9)
    b = black76(np.array([50.0, 100.0, 200.0]), 100.0, 0.0, 0.05, 0.3, True)
    np.testing.assert_array_equal(b.price, [0.0, 0.0, 100.0])
    np.testing.assert_array_equal(b.delta, [0.0, 0.5, 1.0])


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_extreme_inputs_stay_finite() -> None:
    rng = np.random.default_rng(7)
    n = 20_000
    s = np.exp(rng.uniform(-300, 300, n))
    k = np.exp(rng.uniform(-300, 300, n))
    t = np.where(rng.random(n) < 0.3, 0.0, np.exp(rng.uniform(-700, 5, n)))
    v = np.where(rng.random(n) < 0.3, 0.0, np.exp(rng.uniform(-300, 3, n)))
    r, q = rng.uniform(-0.1, 0.2, n), rng.uniform(-0.1, 0.2, n)
    c = rng.random(n) < 0.5
    for g in (black_scholes(s, k, t, r, q, v, c), black76(s, k, t, r, v, c)):
        for name in GREEKS:
            assert np.isfinite(getattr(g, name)).all(), name
        assert (g.price >= 0).all() and (g.gamma >= 0).all() and (g.vega >= 0).all()


def test_broadcasting_over_portfolio_shapes() -> None:
    strikes = np.linspace(60, 160, 12).reshape(3, 4)
    calls = np.array([True, False, True, False])
    g = black_scholes(SPOT, strikes, np.array([[0.1], [1.0], [2.0]]), 0.03, 0.01, 0.25, calls)
    assert g.price.shape == (3, 4)
    one = black_scholes(SPOT, strikes[1, 3], 1.0, 0.03, 0.01, 0.25, False)
    assert g.price[1, 3] == pytest.approx(float(one.price), rel=1e-15)


def test_invalid_inputs_raise() -> None:
    with pytest.raises(ValueError, match="expiry"):
        black_scholes(SPOT, 100.0, -1.0, 0.0, 0.0, 0.2, True)
    with pytest.raises(ValueError, match="vol"):
        black76(SPOT, 100.0, 1.0, 0.0, -0.2, True)
    with pytest.raises(ValueError, match="strike"):
        black_scholes(SPOT, 0.0, 1.0, 0.0, 0.0, 0.2, True)


# --- implied volatility ------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    moneyness=st.floats(0.5, 2.0),
    t=st.sampled_from([1 / 365, 7 / 365, 0.25, 1.0, 3.0, 10.0]) | st.floats(1 / 365, 10.0),
    vol=st.floats(0.01, 5.0),
    rate=st.floats(-0.02, 0.10),
    div=st.floats(-0.02, 0.10),
    call=st.booleans(),
)
def test_implied_vol_round_trip(
    moneyness: float, t: float, vol: float, rate: float, div: float, call: bool
) -> None:
    k = SPOT / moneyness
    price = float(black_scholes(SPOT, k, t, rate, div, vol, call).price)
    df, qdf = math.exp(-rate * t), math.exp(-div * t)
    lower = max((SPOT * qdf - k * df) * (1 if call else -1), 0.0)
    upper = SPOT * qdf if call else k * df
    # a closed-form price can only leave the bounds by rounding; within a few ulps of a bound
    # it may land on either side of it
    lo_margin = 8e-16 * (SPOT * qdf + k * df) if lower > 0 else 0.0
    up_margin = 8e-16 * upper
    assert lower - lo_margin <= price <= upper + up_margin
    if not lower + lo_margin < price < upper - up_margin:
        try:
            iv = float(implied_vol(price, SPOT, k, t, rate, div, call))
        except PriceOutsideArbitrageBounds:
            assert not lower < price < upper or price - lower <= lo_margin
            return
    else:
        iv = float(implied_vol(price, SPOT, k, t, rate, div, call))
    assert math.isfinite(iv)
    repriced = float(black_scholes(SPOT, k, t, rate, div, iv, call).price)
    # the closed form itself is accurate to ~1e-16 (S + K) absolute
    assert repriced == pytest.approx(price, rel=1e-9, abs=1e-12)
    # and the vol itself, to within what the price's rounding (~1e-16 (S + K)) determines
    vega = float(black_scholes(SPOT, k, t, rate, div, vol, call).vega)
    if vega > 0:
        assert abs(iv - vol) <= 1e-7 * vol + 1e-12 * (SPOT + k) / vega


@settings(max_examples=150, deadline=None)
@given(
    moneyness=st.floats(0.5, 2.0),
    t=st.floats(1 / 365, 30.0),
    frac=st.floats(1e-12, 1 - 1e-12) | st.sampled_from([1e-300, 1e-100, 1e-15, 1 - 1e-15]),
    rate=st.floats(-0.02, 0.10),
    div=st.floats(-0.02, 0.10),
    call=st.booleans(),
)
def test_implied_vol_finite_for_every_price_inside_bounds(
    moneyness: float, t: float, frac: float, rate: float, div: float, call: bool
) -> None:
    """Any price strictly between the bounds, however close to one, gives a finite vol."""
    k = SPOT / moneyness
    df, qdf = math.exp(-rate * t), math.exp(-div * t)
    lower = max((SPOT * qdf - k * df) * (1 if call else -1), 0.0)
    upper = SPOT * qdf if call else k * df
    price = lower + frac * (upper - lower)
    ulps = 8e-16 * max(SPOT * qdf, k * df)  # bounds computed another way differ by ulps
    price = min(max(price, lower + ulps), upper - ulps)
    iv = float(implied_vol(price, SPOT, k, t, rate, div, call))
    assert math.isfinite(iv) and iv >= 0.0
    repriced = float(black_scholes(SPOT, k, t, rate, div, iv, call).price)
    assert repriced == pytest.approx(price, rel=1e-9, abs=1e-12)


def test_implied_vol_vectorized_over_extremes() -> None:
    strikes = np.array([50.0, 80.0, 100.0, 125.0, 200.0, 400.0, 25.0])
    t = np.array([[1 / 365], [0.5], [3.0], [30.0]])
    vols = np.array([[0.05], [0.3], [1.0], [4.0]])
    calls = np.array([True, False, True, False, True, False, False])
    prices = black_scholes(SPOT, strikes, t, 0.03, 0.01, vols, calls).price
    df, qdf = np.exp(-0.03 * t), np.exp(-0.01 * t)
    lower = np.maximum(np.where(calls, 1.0, -1.0) * (SPOT * qdf - strikes * df), 0.0)
    upper = np.where(calls, SPOT * qdf, strikes * df)
    inside = (prices > lower) & (prices < upper)
    # 1 day at 5% vol rounds far OTM to 0 / ITM to intrinsic; 30 years at 400% vol onto the
    # upper bound: those are rejected, and a mid-bound price stands in for them
    assert 5 <= (~inside).sum() <= 14
    with pytest.raises(PriceOutsideArbitrageBounds) as info:
        implied_vol(prices, SPOT, strikes, t, 0.03, 0.01, calls)
    assert info.value.indices == [tuple(i) for i in np.argwhere(~inside).tolist()]
    target = np.where(inside, prices, 0.5 * (lower + upper))
    iv = implied_vol(target, SPOT, strikes, t, 0.03, 0.01, calls)
    assert iv.shape == prices.shape and np.isfinite(iv).all()
    repriced = black_scholes(SPOT, strikes, t, 0.03, 0.01, iv, calls).price
    np.testing.assert_allclose(repriced, target, rtol=1e-9, atol=1e-12)
    informative = inside & (prices - lower > 1e-6 * prices)
    vol_grid = np.broadcast_to(vols, prices.shape)
    np.testing.assert_allclose(iv[informative], vol_grid[informative], rtol=1e-7)


def test_black76_implied_vol_round_trip() -> None:
    forwards = np.array([60.0, 90.0, 100.0, 110.0, 250.0])
    t = np.array([[0.05], [1.0], [5.0]])
    vols = np.array([0.6, 0.4, 0.9, 0.25, 1.2])
    calls = np.array([False, True, False, True, False])
    prices = black76(forwards, 100.0, t, 0.04, vols, calls).price
    iv = black76_implied_vol(prices, forwards, 100.0, t, 0.04, calls)
    np.testing.assert_allclose(iv, np.broadcast_to(vols, iv.shape), rtol=1e-8)


def test_prices_outside_bounds_raise_with_indices() -> None:
    strikes = np.array([100.0, 100.0, 100.0, 80.0, 100.0])
    calls = np.array([True, True, False, True, False])
    df, qdf = float(np.exp(-0.05)), float(np.exp(-0.02))
    prices = np.array(
        [
            10.0,  # fine
            SPOT * qdf,  # call at its upper bound
            100.0 * df + 1.0,  # put above K e^{-rT}
            SPOT * qdf - 80.0 * df - 1e-6,  # call below discounted intrinsic
            -1.0,  # negative
        ]
    )
    with pytest.raises(PriceOutsideArbitrageBounds) as info:
        implied_vol(prices, SPOT, strikes, 1.0, 0.05, 0.02, calls)
    assert info.value.indices == [(1,), (2,), (3,), (4,)]
    assert isinstance(info.value, ValueError)
    assert "1, 2, 3, 4" in str(info.value)
    with pytest.raises(PriceOutsideArbitrageBounds):
        black76_implied_vol(0.0, 100.0, 100.0, 1.0, 0.0, True)
    with pytest.raises(PriceOutsideArbitrageBounds):
        implied_vol(np.nan, SPOT, 100.0, 1.0, 0.0, 0.0, True)
    # the valid one alone solves
    assert np.isfinite(implied_vol(prices[0], SPOT, 100.0, 1.0, 0.05, 0.02, True))


# --- fused numba kernels (fast path) against the numpy path -------------------------------------


def _fused_tolerance(
    s: NDArray[np.float64],
    k: NDArray[np.float64],
    t: NDArray[np.float64],
    r: NDArray[np.float64],
    q: NDArray[np.float64],
    v: NDArray[np.float64],
    c: NDArray[np.bool_],
    ref: Greeks,
) -> dict[str, NDArray[np.float64]]:
    """Allowed |fused - numpy| per Greek, relative to the size of its terms.

    The paths differ by a few ulps per exp/log/erfc. Relative to the terms S e^{-qT} N(w d1)
    and K e^{-rT} N(w d2) that is ~1e-15, except that exp(-d^2/2) (and the cdf tails) turn an
    ulp of d into d^2 ulps of the result (1e-13 near the money, ~1e-11 at |d| ~ 35), and an
    ulp of F/K moves d by ~1e-16 / s, a lot for tiny s = sigma sqrt(T). Degenerate options
    (s == 0) within rounding of the forward are not compared (inf).
    """
    w = np.where(c, 1.0, -1.0)
    sqrt_t = np.sqrt(t)
    stdev = v * sqrt_t
    ok = stdev >= 1e-100
    safe = np.where(ok, stdev, 1.0)
    lm = np.log(s * np.exp(-q * t) / np.exp(-r * t) / k)
    d1 = np.where(ok, lm / safe + 0.5 * safe, 0.0)
    d2 = np.where(ok, d1 - safe, 0.0)
    s_term = s * np.exp(-q * t) * ndtr(w * d1)
    k_term = k * np.exp(-r * t) * ndtr(w * d2)
    diffusion = np.where(t > 0, ref.vega * v / (2.0 * np.where(t > 0, t, 1.0)), 0.0)
    scales = {
        "price": s_term + k_term,
        "delta": np.abs(ref.delta),
        "gamma": ref.gamma,
        "vega": ref.vega,
        "theta": np.abs(q) * s_term + np.abs(r) * k_term + diffusion,
        "rho": t * k_term,
    }
    # an ulp of F/K moves d by ~1e-16 / s (short-dated, low-vol options)
    moves_d = np.where(ok, 1e-15 * (1.0 + np.abs(lm)) / safe, 0.0)
    conditioning = 1e-14 * (4.0 + d1 * d1 + d2 * d2) + (2.0 + np.abs(d1) + np.abs(d2)) * moves_d
    # s == 0 with F == K up to the rounding of F = S e^{-qT} / e^{-rT}: the step (delta, vega,
    # rho, theta) sits where that rounding puts it, which differs between exp implementations
    knife_edge = ~ok & (np.abs(lm) < 1e-15)
    return {
        name: np.where(knife_edge, np.inf, conditioning * scale + 1e-300)
        for name, scale in scales.items()
    }


def _random_book(
    seed: int, n: int, scalars: list[bool]
) -> tuple[list[float | NDArray[np.float64]], NDArray[np.bool_]]:
    """spot, strike, expiry, rate, dividend, vol (each a scalar where scalars[i]) and calls.

    A share of expiries and vols are exactly 0 (degenerate limits) and some options sit
    exactly at the forward (F == K: S == K, r == q).
    """
    rng = np.random.default_rng(seed)
    s = np.exp(rng.uniform(-3.0, 9.0, n))
    k = s * np.exp(rng.uniform(-1.5, 1.5, n))
    t = np.where(rng.random(n) < 0.15, 0.0, np.exp(rng.uniform(np.log(1 / 8760), np.log(10), n)))
    v = np.where(rng.random(n) < 0.15, 0.0, rng.uniform(0.01, 3.0, n))
    r = rng.uniform(-0.05, 0.15, n)
    q = rng.uniform(-0.05, 0.15, n)
    at_forward = rng.random(n) < 0.1
    k = np.where(at_forward, s, k)
    q = np.where(at_forward, r, q)
    c = rng.random(n) < 0.5
    values: list[float | NDArray[np.float64]] = [
        float(a[0]) if scalar else a for a, scalar in zip((s, k, t, r, q, v), scalars, strict=True)
    ]
    return values, c


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 300),
    scalars=st.lists(st.booleans(), min_size=6, max_size=6),
    simd=st.booleans(),
    threads=st.booleans(),
)
def test_fused_kernels_agree_with_numpy_path(
    seed: int, n: int, scalars: list[bool], simd: bool, threads: bool
) -> None:
    values, c = _random_book(seed, n, scalars)
    ref = pricing._black_scholes_numpy(*values, c)
    fused = pricing._black_scholes_fused(*values, c, parallel=False, simd=simd)
    assert fused is not None
    if threads:  # the prange kernel on the same inputs (any n)
        n_, calls, arrays = pricing._fused_inputs(c, *values) or (0, c, [])
        out = np.empty((6, n_))
        steps = np.array([0 if a.shape[0] == 1 else 1 for a in (*arrays, calls)], np.int64)
        assert kernels(simd=simd and VECTOR_WIDTH > 0)[1](*arrays, calls, steps, out) == 0
        fused = Greeks(*out)
    full = [np.broadcast_to(np.asarray(a, dtype=np.float64), (n,)) for a in values]
    tol = _fused_tolerance(*full, c, ref)
    expired = full[2] == 0.0
    for name in GREEKS:
        got, want = getattr(fused, name), getattr(ref, name)
        assert got.shape == want.shape == (n,) and got.dtype == np.float64
        assert np.isfinite(got).all(), name
        assert (np.abs(got - want) <= tol[name]).all(), (name, np.max(np.abs(got - want)))
        # at T == 0 both paths do exactly the same arithmetic on exact values
        np.testing.assert_array_equal(got[expired], want[expired], err_msg=name)


def test_fused_path_routing_and_validation() -> None:
    k = np.array([80.0, 100.0, 125.0])
    # 1-D portfolios (with scalars broadcast) take the fused path, others the numpy path
    assert pricing._black_scholes_fused(SPOT, k, 1.0, 0.03, 0.01, 0.25, True) is not None
    assert pricing._black_scholes_fused(SPOT, 100.0, 1.0, 0.03, 0.01, 0.25, True) is None
    assert pricing._black_scholes_fused(SPOT, k[:1], 1.0, 0.03, 0.01, 0.25, True) is None
    assert pricing._black_scholes_fused(SPOT, k.reshape(3, 1), 1.0, 0.0, 0.0, 0.2, True) is None
    assert pricing._black_scholes_fused(SPOT, k, np.ones(2), 0.0, 0.0, 0.2, True) is None
    assert black_scholes(SPOT, 100.0, 1.0, 0.03, 0.01, 0.25, True).price.shape == ()
    assert black_scholes(SPOT, k[:1], 1.0, 0.03, 0.01, 0.25, True).price.shape == (1,)
    with pytest.raises(ValueError, match="shape mismatch"):
        black_scholes(SPOT, k, np.ones(2), 0.0, 0.0, 0.2, True)
    # out-of-domain inputs: the fused path declines, the numpy path raises the same error
    for bad, name in (
        ((np.array([SPOT, -1.0, SPOT]), k, 1.0, 0.0, 0.0, 0.2), "spot"),
        ((SPOT, np.array([80.0, np.nan, 1.0]), 1.0, 0.0, 0.0, 0.2), "strike"),
        ((SPOT, k, np.array([1.0, 1.0, -1e-300]), 0.0, 0.0, 0.2), "expiry"),
        ((SPOT, k, 1.0, 0.0, 0.0, np.array([0.2, np.nan, 0.2])), "vol"),
    ):
        assert pricing._black_scholes_fused(*bad, True) is None
        with pytest.raises(ValueError, match=name) as info:
            black_scholes(*bad, True)
        with pytest.raises(ValueError) as numpy_info:
            pricing._black_scholes_numpy(*bad, True)
        assert str(info.value) == str(numpy_info.value)


def test_fused_path_concurrent_callers_agree() -> None:
    """Threads calling at once: one gets the prange kernel, the others the serial one."""
    n = PARALLEL_MIN_OPTIONS + 3
    values, c = _random_book(11, n, [False] * 6)
    ref = pricing._black_scholes_fused(*values, c, parallel=False)
    assert ref is not None
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(lambda _: pricing._black_scholes_fused(*values, c, parallel=True), range(8))
        )
    for got in results:
        assert got is not None
        for name in GREEKS:
            np.testing.assert_array_equal(getattr(got, name), getattr(ref, name))


def test_price_only_pricer_is_bitwise_the_fused_pricer_on_portfolios() -> None:
    values, c = _random_book(5, 1_000, [True, False, False, False, False, False])
    full = black_scholes(*values, c).price
    fast = pricing.black_scholes_price(*values, c)
    assert fast.shape == full.shape == (1_000,) and fast.base is None
    np.testing.assert_array_equal(fast, full)
