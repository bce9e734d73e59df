"""VaR and expected shortfall against independent references.

References are written separately from the code under test: empirical quantiles with plain
Python sorting and exact fractions, portfolio values with scalar `math` formulas, the
delta-normal and lognormal closed forms, exact (non-central) chi-square laws for the
delta-gamma quadratic form, and Monte Carlo tolerances derived from standard errors.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from scipy import integrate, stats

from gateway.risk.portfolio import MarketSnapshot, PortfolioArrays, PositionKind, RiskPosition
from gateway.risk.pricing import black_scholes, black_scholes_price
from gateway.risk.var import (
    RiskMeasure,
    _quadratic_var_es,
    _QuadraticForm,
    covariance_from_vols,
    delta_gamma_var,
    ewma_covariance,
    historical_var,
    monte_carlo_var,
    scenario_losses,
    tail_measures,
)

F64 = NDArray[np.float64]
NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
SPOTS = {"BTC": 60_000.0, "ETH": 3_000.0}
VOLS = {"BTC": 0.6, "ETH": 0.8}
RATE = 0.03
UNDERLYINGS = ("BTC", "ETH")
CORR = [[1.0, 0.7], [0.7, 1.0]]
COV = covariance_from_vols([VOLS["BTC"], VOLS["ETH"]], CORR)


def market(rate: float = RATE) -> MarketSnapshot:
    return MarketSnapshot(
        NOW, {u: Decimal(str(s)) for u, s in SPOTS.items()}, dict(VOLS), rate=rate
    )


def spot(u: str, q: float, venue: str = "isthmus") -> RiskPosition:
    return RiskPosition(f"{u}/USDC", u, PositionKind.SPOT, Decimal(str(q)), venue=venue)


def linear(u: str, q: float, entry: float, venue: str = "isthmus") -> RiskPosition:
    return RiskPosition(
        f"{u}-PERP",
        u,
        PositionKind.LINEAR,
        Decimal(str(q)),
        entry_price=Decimal(str(entry)),
        venue=venue,
    )


def inverse(u: str, q: float, entry: float, size: float = 10.0) -> RiskPosition:
    return RiskPosition(
        f"{u}-INV",
        u,
        PositionKind.INVERSE,
        Decimal(str(q)),
        entry_price=Decimal(str(entry)),
        contract_size=Decimal(str(size)),
    )


def option(u: str, q: float, strike: float, days: float, call: bool) -> RiskPosition:
    return RiskPosition(
        f"{u}-{strike}-{days}-{'C' if call else 'P'}",
        u,
        PositionKind.OPTION,
        Decimal(str(q)),
        strike=Decimal(str(strike)),
        expires_at=NOW + timedelta(days=days),
        is_call=call,
    )


def book(positions: list[RiskPosition]) -> PortfolioArrays:
    return PortfolioArrays.build(positions, market())


def linear_book() -> list[RiskPosition]:
    return [
        spot("BTC", 1.5),
        linear("BTC", -0.4, 58_000.0),
        inverse("BTC", 2_000.0, 61_000.0),
        spot("ETH", -12.0),
        linear("ETH", 30.0, 3_100.0),
    ]


def mixed_book() -> list[RiskPosition]:
    return [
        *linear_book(),
        option("BTC", -2.0, 60_000.0, 30, True),
        option("BTC", 1.0, 50_000.0, 14, False),
        option("ETH", 15.0, 3_300.0, 60, True),
        option("ETH", -25.0, 2_800.0, 21, False),
    ]


# --------------------------------------------------------------------------------------------
# Independent references
# --------------------------------------------------------------------------------------------


def ref_option(s: float, k: float, t: float, r: float, v: float, call: bool) -> float:
    if t <= 0.0:
        return max(s - k, 0.0) if call else max(k - s, 0.0)
    w = 1.0 if call else -1.0
    sd = v * math.sqrt(t)
    d1 = (math.log(s / k) + (r + 0.5 * v * v) * t) / sd
    d2 = d1 - sd
    n1 = 0.5 * math.erfc(-w * d1 / math.sqrt(2.0))
    n2 = 0.5 * math.erfc(-w * d2 / math.sqrt(2.0))
    return w * (s * n1 - k * math.exp(-r * t) * n2)


def ref_value(positions: list[RiskPosition], spots: dict[str, float], elapsed: float) -> float:
    total = 0.0
    for p in positions:
        s, q = spots[p.underlying], float(p.quantity)
        if p.kind is PositionKind.SPOT:
            total += q * s
        elif p.kind is PositionKind.LINEAR:
            total += q * (s - float(p.entry_price))
        elif p.kind is PositionKind.INVERSE:
            total += q * float(p.contract_size) * (s / float(p.entry_price) - 1.0)
        else:
            assert p.expires_at is not None
            t = (p.expires_at - NOW).total_seconds() / (365 * 86_400) - elapsed
            total += q * ref_option(
                s, float(p.strike), max(t, 0.0), RATE, VOLS[p.underlying], p.is_call
            )
    return total


def ref_tail(losses: list[float], confidence: float) -> tuple[float, float]:
    """VaR = L_(ceil(n a)) ascending; ES = (1/(1-a)) integral_a^1 of the empirical quantile,
    with n a computed exactly from the decimal confidence."""
    xs = sorted(losses)
    n = len(xs)
    a = Fraction(str(confidence))
    j = max(1, math.ceil(n * a))
    var = xs[j - 1]
    # the quantile function is xs[i-1] on ((i-1)/n, i/n]; integrate it over [a, 1]
    area = Fraction(0)
    for i in range(1, n + 1):
        lo = max(Fraction(i - 1, n), a)
        hi = Fraction(i, n)
        if hi > lo:
            area += (hi - lo) * Fraction(xs[i - 1])
    return var, float(area / (1 - a))


def delta_normal(
    positions: list[RiskPosition], cov: F64, confidence: float, h: int
) -> tuple[float, float]:
    """z sd and sd n(z)/(1-a) with sd^2 = D' h Sigma D, D the dollar delta per underlying."""
    dollar = {u: 0.0 for u in UNDERLYINGS}
    for p in positions:
        q = float(p.quantity)
        if p.kind is PositionKind.INVERSE:
            d = q * float(p.contract_size) / float(p.entry_price)
        else:
            assert p.kind is not PositionKind.OPTION
            d = q
        dollar[p.underlying] += d * SPOTS[p.underlying]
    var_pnl = 0.0
    for i, ui in enumerate(UNDERLYINGS):
        for j, uj in enumerate(UNDERLYINGS):
            var_pnl += dollar[ui] * dollar[uj] * h * float(cov[i, j])
    sd = math.sqrt(var_pnl)
    z = stats.norm.ppf(confidence)
    return z * sd, sd * stats.norm.pdf(z) / (1.0 - confidence)


def returns(n: int, seed: int, scale: float = 1.0) -> F64:
    """Fat-tailed daily log returns (Student t, 4 dof) with the COV correlation."""
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(COV)
    t = rng.standard_t(4, size=(n, 2)) / math.sqrt(2.0)
    out: F64 = scale * t @ chol.T
    return out


# --------------------------------------------------------------------------------------------
# Empirical quantile convention
# --------------------------------------------------------------------------------------------


def test_tail_convention_on_a_known_sample() -> None:
    losses = [float(x) for x in range(1, 101)]  # 1..100, shuffled order does not matter
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(losses)
    assert tail_measures(shuffled, 0.95) == (95.0, 98.0)  # ES = mean(96..100)
    assert tail_measures(shuffled, 0.99) == (99.0, 100.0)
    # n a = 97.5 is not an integer: VaR = L_(98), ES = (0.5 * 98 + 99 + 100) / 2.5
    var, es = tail_measures(shuffled, 0.975)
    assert var == 98.0
    assert es == pytest.approx((0.5 * 98 + 99 + 100) / 2.5, rel=1e-15)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=400),
    st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999, 0.3]),
)
def test_tail_measures_match_sorting_reference(losses: list[float], confidence: float) -> None:
    var, es = tail_measures(losses, confidence)
    ref_var, ref_es = ref_tail(losses, confidence)
    assert var == ref_var
    assert es == pytest.approx(ref_es, rel=1e-9, abs=1e-9)
    assert es >= var


# --------------------------------------------------------------------------------------------
# Historical simulation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("confidence", [0.95, 0.99, 0.975])
def test_historical_var_linear_matches_empirical_quantile(confidence: float) -> None:
    positions = linear_book()
    r = returns(500, seed=1)
    result = historical_var(book(positions), r, confidence=confidence)
    base = ref_value(positions, SPOTS, 0.0)
    losses = [
        base
        - ref_value(
            positions,
            {u: SPOTS[u] * math.exp(float(row[i])) for i, u in enumerate(UNDERLYINGS)},
            1 / 365,
        )
        for row in r
    ]
    ref_var, ref_es = ref_tail(losses, confidence)
    assert result.method == "historical"
    assert result.scenarios == 500
    assert result.var == pytest.approx(ref_var, rel=1e-9)
    assert result.expected_shortfall == pytest.approx(ref_es, rel=1e-9)
    assert result.expected_shortfall >= result.var > 0


def test_historical_multi_day_uses_overlapping_sums_and_time_decay() -> None:
    positions = mixed_book()
    r = returns(60, seed=2)
    h = 5
    result = historical_var(book(positions), r, confidence=0.9, horizon_days=h)
    base = ref_value(positions, SPOTS, 0.0)
    losses = []
    for start in range(len(r) - h + 1):
        shock = [sum(float(r[start + d, i]) for d in range(h)) for i in range(2)]
        moved = {u: SPOTS[u] * math.exp(shock[i]) for i, u in enumerate(UNDERLYINGS)}
        losses.append(base - ref_value(positions, moved, h / 365))
    ref_var, ref_es = ref_tail(losses, 0.9)
    assert result.scenarios == 56
    assert result.var == pytest.approx(ref_var, rel=1e-9)
    assert result.expected_shortfall == pytest.approx(ref_es, rel=1e-9)


def test_options_lose_time_value_over_the_horizon() -> None:
    # A long call with no price move loses exactly its h-day time decay.
    positions = [option("BTC", 1.0, 60_000.0, 10, True)]
    zero = np.zeros((3, 1))
    loss = scenario_losses(book(positions), zero, horizon_days=3)
    expected = ref_value(positions, SPOTS, 0.0) - ref_value(positions, SPOTS, 3 / 365)
    assert expected > 0
    np.testing.assert_allclose(loss, expected, rtol=1e-9)


# --------------------------------------------------------------------------------------------
# Delta-normal / delta-gamma
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["convolution", "saddlepoint", "cornish_fisher"])
@pytest.mark.parametrize(("confidence", "h"), [(0.99, 1), (0.95, 10), (0.999, 3)])
def test_delta_gamma_without_gamma_is_the_delta_normal_closed_form(
    method: str, confidence: float, h: int
) -> None:
    positions = linear_book()
    result = delta_gamma_var(
        book(positions),
        COV,
        confidence=confidence,
        horizon_days=h,
        method=method,  # type: ignore[arg-type]
    )
    var, es = delta_normal(positions, COV, confidence, h)
    assert result.var == pytest.approx(var, rel=1e-12)
    assert result.expected_shortfall == pytest.approx(es, rel=1e-12)
    assert result.scenarios == 0


@pytest.mark.parametrize(("lam", "b"), [(1.0, 0.0), (1.0, 0.5), (2.0, 3.0), (-1.0, 0.3)])
@pytest.mark.parametrize("confidence", [0.95, 0.99, 0.999])
def test_quadratic_form_quantile_against_noncentral_chi_square(
    lam: float, b: float, confidence: float
) -> None:
    # L = b Z + lam Z^2 / 2 = lam/2 (Z + b/lam)^2 - b^2/(2 lam): a shifted, scaled ncx2(1).
    shift, nc = -b * b / (2 * lam), (b / lam) ** 2
    law = stats.ncx2(1, nc) if nc else stats.chi2(1)
    if lam > 0:
        x = law.ppf(confidence)
        lo, hi = x, np.inf
    else:
        x = law.ppf(1.0 - confidence)
        lo, hi = 0.0, x
    var_ref = lam / 2 * x + shift
    es_ref = integrate.quad(
        lambda y: (lam / 2 * y + shift) * law.pdf(y), lo, hi, epsabs=1e-13, limit=200
    )[0]
    es_ref /= 1.0 - confidence
    sd = math.sqrt(b * b + lam * lam / 2)
    form = _QuadraticForm(0.0, np.array([b]), np.array([lam]))
    # Convolution: exact up to its grid (~1e-4 sd, in practice far better).
    var, es = _quadratic_var_es(form, confidence, "convolution")
    assert var == pytest.approx(var_ref, abs=1e-4 * sd)
    assert es == pytest.approx(es_ref, abs=1e-4 * sd)
    # Lugannani-Rice: asymptotic; within 2.5% of the sd-scaled quantile for one chi-square factor.
    var, es = _quadratic_var_es(form, confidence, "saddlepoint")
    assert var == pytest.approx(var_ref, abs=0.025 * sd * abs(var_ref / sd) + 1e-3 * sd)
    assert es == pytest.approx(es_ref, abs=0.025 * sd * abs(es_ref / sd) + 1e-3 * sd)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_quadratic_form_two_factors_exponential(sign: float) -> None:
    # lam/2 (Z1^2 + Z2^2) is exponential with mean lam: VaR = -lam ln(1-a), ES = VaR + lam.
    lam = 3.0
    form = _QuadraticForm(0.7, np.zeros(2), np.array([lam, lam]) * sign)
    for a in (0.9, 0.99, 0.999):
        var, es = _quadratic_var_es(form, a, "convolution")
        if sign > 0:
            assert var == pytest.approx(0.7 - lam * math.log(1 - a), abs=1e-4 * lam)
            assert es == pytest.approx(0.7 - lam * math.log(1 - a) + lam, abs=1e-4 * lam)
        else:  # -Exp(lam): P(-E > x) = 1 - exp(x / lam) for x < 0
            q = lam * math.log(a)
            assert var == pytest.approx(0.7 + q, abs=1e-4 * lam)
            # E[-E | -E > q] = (mean of E below -q) negated
            tail = (lam - (-q + lam) * math.exp(q / lam)) / (1 - math.exp(q / lam))
            assert es == pytest.approx(0.7 - tail, abs=1e-4 * lam)


def test_delta_gamma_matches_a_sample_of_its_own_quadratic_form() -> None:
    # Independent check of the diagonalization: sample dX ~ N(0, h Sigma) and evaluate
    # -theta - D.dX - 1/2 sum(G dX^2) directly (Greeks from black_scholes at t + h).
    positions = [
        option("BTC", -1.0, 60_000.0, 30, True),
        option("BTC", -1.0, 60_000.0, 30, False),
        option("ETH", -20.0, 3_000.0, 30, True),
        option("ETH", 10.0, 2_700.0, 30, False),
        spot("ETH", 5.0),
    ]
    p = book(positions)
    h = 2
    el = h / 365
    theta = ref_value(positions, SPOTS, el) - ref_value(positions, SPOTS, 0.0)
    dollar_delta, dollar_gamma = np.zeros(2), np.zeros(2)
    for pos in positions:
        i = UNDERLYINGS.index(pos.underlying)
        s = SPOTS[pos.underlying]
        if pos.kind is PositionKind.OPTION:
            assert pos.expires_at is not None
            t = (pos.expires_at - NOW).total_seconds() / (365 * 86_400) - el
            g = black_scholes(s, float(pos.strike), t, RATE, 0.0, VOLS[pos.underlying], pos.is_call)
            dollar_delta[i] += float(pos.quantity) * float(g.delta) * s
            dollar_gamma[i] += float(pos.quantity) * float(g.gamma) * s * s
        else:
            dollar_delta[i] += float(pos.quantity) * s
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1_000_000, 2)) @ np.linalg.cholesky(h * COV).T
    losses = -theta - x @ dollar_delta - 0.5 * (x * x) @ dollar_gamma
    ref_var, ref_es = tail_measures(losses, 0.99)
    result = delta_gamma_var(p, COV, confidence=0.99, horizon_days=h)
    # 1M samples: standard error of the 99% quantile ~0.3% here; 4 SE.
    assert result.var == pytest.approx(ref_var, rel=0.012)
    assert result.expected_shortfall == pytest.approx(ref_es, rel=0.012)


# --------------------------------------------------------------------------------------------
# Monte Carlo
# --------------------------------------------------------------------------------------------


def normal_standard_errors(sd: float, confidence: float, n: int) -> tuple[float, float]:
    """Asymptotic standard errors of the empirical VaR and ES of N(0, sd^2) from n draws:
    sqrt(a(1-a)/n)/f(q) and sqrt((Var(L | L > q) + a (ES - q)^2) / (n (1-a)))."""
    z = stats.norm.ppf(confidence)
    se_var = math.sqrt(confidence * (1 - confidence) / n) / (stats.norm.pdf(z) / sd)
    lam = stats.norm.pdf(z) / (1 - confidence)
    tail_var = 1 + z * lam - lam * lam
    se_es = sd * math.sqrt((tail_var + confidence * (lam - z) ** 2) / (n * (1 - confidence)))
    return se_var, se_es


@pytest.mark.parametrize("h", [1, 10])
def test_monte_carlo_linear_single_underlying_matches_lognormal_closed_form(h: int) -> None:
    # Long q BTC: loss = q S (1 - e^X), X ~ N(0, s^2) with s = sigma sqrt(h/365): exact
    # VaR = q S (1 - e^{-z s}), ES = q S (1 - e^{s^2/2} N(-z - s) / (1 - a)).
    q, a, n = 2.0, 0.99, 200_000
    cov = covariance_from_vols([0.6], [[1.0]])
    s = math.sqrt(h * float(cov[0, 0]))
    z = stats.norm.ppf(a)
    notional = q * SPOTS["BTC"]
    var_ref = notional * (1 - math.exp(-z * s))
    es_ref = notional * (1 - math.exp(0.5 * s * s) * stats.norm.cdf(-z - s) / (1 - a))
    result = monte_carlo_var(
        book([spot("BTC", q)]), cov, confidence=a, horizon_days=h, paths=n, seed=7
    )
    se_var, se_es = normal_standard_errors(notional * s, a, n)
    assert result.scenarios == n
    assert abs(result.var - var_ref) < 4 * se_var
    assert abs(result.expected_shortfall - es_ref) < 4 * se_es


@pytest.mark.parametrize("antithetic", [False, True])
def test_monte_carlo_linear_converges_to_delta_normal(antithetic: bool) -> None:
    # Low vols (2% and 3% a year) make e^X - 1 = X to within ~0.1% at the 99% tail, so the
    # only material difference is sampling error. Antithetic pairs land in opposite tails, so
    # the tail estimate has the i.i.d. standard error. Tolerance: 4 SE + 0.3% bias allowance.
    cov = covariance_from_vols([0.02, 0.03], CORR)
    positions = linear_book()
    n, a = 200_000, 0.99
    var_ref, es_ref = delta_normal(positions, cov, a, 1)
    sd = var_ref / stats.norm.ppf(a)
    se_var, se_es = normal_standard_errors(sd, a, n)
    result = monte_carlo_var(
        book(positions), cov, confidence=a, paths=n, seed=3, antithetic=antithetic
    )
    assert abs(result.var - var_ref) < 4 * se_var + 0.003 * var_ref
    assert abs(result.expected_shortfall - es_ref) < 4 * se_es + 0.003 * es_ref


def test_antithetic_paths_are_exactly_symmetric() -> None:
    # Long spot loses exactly when X < 0; with X paired with -X exactly half the paths lose,
    # so the median loss L_(n/2) is a gain and the next order statistic is a loss.
    p = book([spot("BTC", 1.0)])
    cov = COV[:1, :1]
    kw = {"paths": 1_000, "seed": 21, "antithetic": True}
    assert monte_carlo_var(p, cov, confidence=0.5, **kw).var < 0.0  # type: ignore[arg-type]
    assert monte_carlo_var(p, cov, confidence=0.501, **kw).var > 0.0  # type: ignore[arg-type]


def test_delta_gamma_agrees_with_monte_carlo_for_a_short_straddle() -> None:
    # One-day horizon, short ATM straddle (gamma-dominated, strongly skewed loss).
    # Tolerance 4%: measured model error of the delta-gamma expansion (dS = S dX instead of
    # S (e^dX - 1), third-order terms) is ~1.5-2.5% here, plus 4 MC standard errors (~1.5%).
    positions = [option("BTC", -1.0, 60_000.0, 30, True), option("BTC", -1.0, 60_000.0, 30, False)]
    p = book(positions)
    cov = COV[:1, :1]
    mc = monte_carlo_var(p, cov, confidence=0.99, paths=200_000, seed=5)
    dg = delta_gamma_var(p, cov, confidence=0.99)
    assert dg.var == pytest.approx(mc.var, rel=0.04)
    assert dg.expected_shortfall == pytest.approx(mc.expected_shortfall, rel=0.04)
    # A skewed loss: the ES/VaR ratio is well above the Gaussian 1.145.
    assert mc.expected_shortfall / mc.var > 1.25


def test_monte_carlo_is_deterministic_per_seed_and_chunking_bounds_memory() -> None:
    p = book(mixed_book())
    a = monte_carlo_var(p, COV, confidence=0.99, paths=20_000, seed=42, chunk_size=3_000)
    b = monte_carlo_var(p, COV, confidence=0.99, paths=20_000, seed=42, chunk_size=3_000)
    c = monte_carlo_var(p, COV, confidence=0.99, paths=20_000, seed=43, chunk_size=3_000)
    assert a == b
    assert a.var != c.var
    # Same draws in one chunk or many: chunking does not change the answer.
    d = monte_carlo_var(p, COV, confidence=0.99, paths=20_000, seed=42, chunk_size=20_000)
    assert d.var == pytest.approx(a.var, rel=1e-12)
    assert d.expected_shortfall == pytest.approx(a.expected_shortfall, rel=1e-12)


def test_monte_carlo_handles_a_singular_covariance() -> None:
    # Perfectly correlated underlyings (rank 1, Cholesky fails): long BTC and short the same
    # dollar amount of ETH with the same vol is a perfect hedge.
    cov = covariance_from_vols([0.6, 0.6], [[1.0, 1.0], [1.0, 1.0]])
    hedge = [spot("BTC", 1.0), spot("ETH", -20.0)]
    result = monte_carlo_var(book(hedge), cov, confidence=0.99, paths=10_000, seed=1)
    assert abs(result.var) < 1e-6
    assert abs(result.expected_shortfall) < 1e-6
    # and a one-sided book has the 2-underlying delta-normal risk of a single asset
    one_side = [spot("BTC", 1.0), spot("ETH", 20.0)]
    result = monte_carlo_var(book(one_side), cov, confidence=0.99, paths=10_000, seed=1)
    single = monte_carlo_var(
        book([spot("BTC", 2.0)]), cov[:1, :1], confidence=0.99, paths=10_000, seed=1
    )
    assert result.var == pytest.approx(single.var, rel=0.05)


# --------------------------------------------------------------------------------------------
# Invariants
# --------------------------------------------------------------------------------------------


def scaled(positions: list[RiskPosition], k: float) -> list[RiskPosition]:
    from dataclasses import replace

    return [replace(p, quantity=p.quantity * Decimal(str(k))) for p in positions]


def all_methods(positions: list[RiskPosition], r: F64) -> list[RiskMeasure]:
    p = book(positions)
    return [
        historical_var(p, r, confidence=0.99),
        delta_gamma_var(p, COV, confidence=0.99),
        monte_carlo_var(p, COV, confidence=0.99, paths=20_000, seed=9),
    ]


def test_homogeneity_and_es_above_var() -> None:
    r = returns(400, seed=4)
    base = all_methods(mixed_book(), r)
    triple = all_methods(scaled(mixed_book(), 3.0), r)
    for one, three in zip(base, triple, strict=True):
        assert one.expected_shortfall >= one.var > 0
        assert three.var == pytest.approx(3 * one.var, rel=1e-9)
        assert three.expected_shortfall == pytest.approx(3 * one.expected_shortfall, rel=1e-9)


def test_fully_hedged_book_has_no_risk() -> None:
    # Long 2 BTC spot, short 2 BTC linear perp: value 2 * entry whatever the price.
    hedged = [spot("BTC", 2.0), linear("BTC", -2.0, 59_000.0)]
    r = returns(300, seed=5)[:, :1]
    p = book(hedged)
    cov = COV[:1, :1]
    for m in (
        historical_var(p, r, confidence=0.99, horizon_days=3),
        delta_gamma_var(p, cov, confidence=0.99),
        monte_carlo_var(p, cov, confidence=0.99, paths=10_000, seed=1),
    ):
        assert abs(m.var) < 1e-7 * 120_000
        assert abs(m.expected_shortfall) < 1e-7 * 120_000


def test_empty_portfolio_has_zero_risk() -> None:
    p = book([])
    assert p.underlyings == ()
    for m in (
        historical_var(p, np.zeros((10, 0)), confidence=0.99),
        delta_gamma_var(p, np.zeros((0, 0)), confidence=0.99),
        monte_carlo_var(p, np.zeros((0, 0)), confidence=0.99, paths=1_000, seed=1),
    ):
        assert m.var == 0.0
        assert m.expected_shortfall == 0.0


position_spec = st.tuples(
    st.sampled_from(["spot", "linear", "inverse", "call", "put"]),
    st.sampled_from(UNDERLYINGS),
    st.floats(-5.0, 5.0, allow_nan=False).filter(lambda q: abs(q) > 1e-3),
    st.floats(0.8, 1.25),
    st.integers(3, 90),
)


def make(spec: tuple[str, str, float, float, int]) -> RiskPosition:
    kind, u, q, m, days = spec
    s = SPOTS[u]
    scale = 1.0 if u == "BTC" else 20.0
    if kind == "spot":
        return spot(u, q * scale)
    if kind == "linear":
        return linear(u, q * scale, round(s * m, 2))
    if kind == "inverse":
        return inverse(u, round(q * 1_000), round(s * m, 2))
    return option(u, q * scale, round(s * m, 2), days, kind == "call")


SCENARIOS = returns(250, seed=6)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(position_spec, min_size=1, max_size=6), st.lists(position_spec, min_size=1, max_size=6)
)
def test_expected_shortfall_is_subadditive(
    a_spec: list[tuple[str, str, float, float, int]],
    b_spec: list[tuple[str, str, float, float, int]],
) -> None:
    a, b = [make(s) for s in a_spec], [make(s) for s in b_spec]
    cols = {"columns": UNDERLYINGS}
    es_a = historical_var(book(a), SCENARIOS, confidence=0.975, **cols).expected_shortfall  # type: ignore[arg-type]
    es_b = historical_var(book(b), SCENARIOS, confidence=0.975, **cols).expected_shortfall  # type: ignore[arg-type]
    both = historical_var(book(a + b), SCENARIOS, confidence=0.975, columns=UNDERLYINGS)
    assert both.expected_shortfall <= es_a + es_b + 1e-9 * (abs(es_a) + abs(es_b) + 1.0)
    assert both.expected_shortfall >= both.var


def test_accounts_combine_by_concatenation_and_diversify() -> None:
    # Two venues' books: risk of the union is computed on the concatenated positions.
    cex = [linear("BTC", 1.0, 60_000.0, venue="binance"), option("ETH", -10.0, 3_000.0, 20, True)]
    chain = [spot("BTC", -0.8), spot("ETH", 8.0)]
    both = cex + chain
    assert {p.venue for p in both} == {"binance", "isthmus"}
    seed = 12
    m_cex = monte_carlo_var(book(cex), COV, confidence=0.99, paths=50_000, seed=seed)
    m_chain = monte_carlo_var(book(chain), COV, confidence=0.99, paths=50_000, seed=seed)
    m_both = monte_carlo_var(book(both), COV, confidence=0.99, paths=50_000, seed=seed)
    # common draws (every book spans both underlyings): ES subadditivity holds exactly
    assert m_both.expected_shortfall <= m_cex.expected_shortfall + m_chain.expected_shortfall
    assert m_both.var < m_cex.var  # the on-chain book offsets part of the CEX risk


def test_mixed_portfolio_methods_roughly_agree() -> None:
    # Spot, linear, inverse and options on two underlyings: the parametric delta-gamma and the
    # full-revaluation Monte Carlo describe the same model, up to the expansion error.
    p = book(mixed_book())
    mc = monte_carlo_var(p, COV, confidence=0.99, paths=100_000, seed=2)
    dg = delta_gamma_var(p, COV, confidence=0.99)
    assert dg.var == pytest.approx(mc.var, rel=0.08)
    assert dg.expected_shortfall == pytest.approx(mc.expected_shortfall, rel=0.08)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def test_covariance_from_vols() -> None:
    cov = covariance_from_vols([0.6, 0.8], CORR)
    assert cov[0, 0] == pytest.approx(0.36 / 365, rel=1e-15)
    assert cov[1, 1] == pytest.approx(0.64 / 365, rel=1e-15)
    assert cov[0, 1] == pytest.approx(0.7 * 0.6 * 0.8 / 365, rel=1e-15)
    assert cov[1, 0] == cov[0, 1]


def test_ewma_covariance_matches_the_riskmetrics_recursion() -> None:
    r = returns(120, seed=8)
    lam = 0.94
    # recursion S_t = lam S_{t-1} + (1 - lam) r_t r_t', from S_0 = r_0 r_0', then the weights
    # normalized: the recursion's weights sum to 1 - lam^(n-1) + lam^(n-1) = 1 as well.
    s = np.outer(r[0], r[0])
    for row in r[1:]:
        s = lam * s + (1 - lam) * np.outer(row, row)
    # our weights are lam^age / sum: compare with an explicit sum
    w = np.array([lam ** (len(r) - 1 - i) for i in range(len(r))])
    explicit = sum(wi * np.outer(ri, ri) for wi, ri in zip(w / w.sum(), r, strict=True))
    got = ewma_covariance(r, lam)
    np.testing.assert_allclose(got, explicit, rtol=1e-12)
    # and it tracks the recursion closely once the start-up weight has decayed
    np.testing.assert_allclose(got, s, rtol=0.01)


def test_columns_select_from_a_wider_market() -> None:
    p = book([spot("ETH", 10.0)])
    wide = np.array([[1e-3, 0.0, 1e-5], [0.0, 4e-3, 2e-4], [1e-5, 2e-4, 9e-4]])
    names = ("SOL", "ETH", "BTC")
    got = delta_gamma_var(p, wide, confidence=0.99, columns=names)
    direct = delta_gamma_var(p, wide[1:2, 1:2], confidence=0.99)
    assert got.var == direct.var
    r = returns(50, seed=1)
    wide_r = np.column_stack([r[:, 0] * 2, r[:, 1], r[:, 0]])
    assert historical_var(p, wide_r, confidence=0.9, columns=names) == historical_var(
        p, r[:, 1:2], confidence=0.9
    )
    with pytest.raises(ValueError, match="no market data column for ETH"):
        delta_gamma_var(p, wide[:1, :1], confidence=0.99, columns=("SOL",))


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_rejects_bad_confidence(confidence: float) -> None:
    p = book(linear_book())
    with pytest.raises(ValueError, match="confidence"):
        historical_var(p, returns(10, 1), confidence=confidence)
    with pytest.raises(ValueError, match="confidence"):
        delta_gamma_var(p, COV, confidence=confidence)
    with pytest.raises(ValueError, match="confidence"):
        monte_carlo_var(p, COV, confidence=confidence, paths=1_000)


def test_rejects_bad_inputs() -> None:
    p = book(linear_book())
    with pytest.raises(ValueError, match="horizon_days must be >= 1"):
        delta_gamma_var(p, COV, confidence=0.99, horizon_days=0)
    with pytest.raises(ValueError, match="horizon_days must be an integer"):
        monte_carlo_var(p, COV, confidence=0.99, horizon_days=1.5, paths=1_000)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="horizon_days must be an integer"):
        historical_var(p, returns(10, 1), confidence=0.99, horizon_days=True)
    with pytest.raises(ValueError, match="log_returns must have shape"):
        historical_var(p, returns(10, 1)[:, :1], confidence=0.99)
    with pytest.raises(ValueError, match="at least horizon_days=20"):
        historical_var(p, returns(10, 1), confidence=0.99, horizon_days=20)
    with pytest.raises(ValueError, match="finite"):
        historical_var(p, np.full((10, 2), np.nan), confidence=0.99)
    with pytest.raises(ValueError, match="covariance must have shape"):
        delta_gamma_var(p, np.eye(3), confidence=0.99)
    with pytest.raises(ValueError, match="symmetric"):
        delta_gamma_var(p, [[1e-3, 1e-4], [0.0, 1e-3]], confidence=0.99)
    with pytest.raises(ValueError, match="positive semi-definite"):
        monte_carlo_var(p, [[1e-3, 2e-3], [2e-3, 1e-3]], confidence=0.99, paths=1_000)
    with pytest.raises(ValueError, match="paths must be >= 1000"):
        monte_carlo_var(p, COV, confidence=0.99, paths=999)
    with pytest.raises(ValueError, match="even number of paths"):
        monte_carlo_var(p, COV, confidence=0.99, paths=1_001, antithetic=True)
    with pytest.raises(ValueError, match="method"):
        delta_gamma_var(p, COV, confidence=0.99, method="exact")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unit diagonal"):
        covariance_from_vols([0.5, 0.5], [[1.0, 0.2], [0.2, 0.9]])
    with pytest.raises(ValueError, match="positive semi-definite"):
        covariance_from_vols([0.5, 0.5, 0.5], [[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]])
    with pytest.raises(ValueError, match="decay"):
        ewma_covariance(returns(10, 1), decay=1.0)


# --------------------------------------------------------------------------------------------
# The price-only pricer used by scenario revaluation
# --------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    st.floats(1.0, 1e5),
    st.floats(0.2, 5.0),
    st.floats(0.0, 3.0),
    st.floats(-0.05, 0.1),
    st.floats(0.0, 0.05),
    st.floats(0.0, 3.0),
    st.booleans(),
)
def test_black_scholes_price_is_bitwise_the_full_pricer(
    s: float, moneyness: float, t: float, r: float, q: float, v: float, call: bool
) -> None:
    spots = np.array([[s], [s * 0.9], [s * 1.1]])
    k = np.array([s * moneyness, s])
    full = black_scholes(spots, k, t, r, q, v, call).price
    fast = black_scholes_price(spots, k, t, r, q, v, call)
    assert fast.shape == full.shape == (3, 2)
    np.testing.assert_array_equal(fast, full)


def test_position_values_use_the_same_prices() -> None:
    positions = mixed_book()
    p = book(positions)
    moved = {"BTC": 55_000.0, "ETH": 3_300.0}
    got = float(p.value(np.array([55_000.0, 3_300.0]), elapsed=2 / 365))
    assert got == pytest.approx(ref_value(positions, moved, 2 / 365), rel=1e-12)


def test_position_values_bitwise_as_the_original_where_chain() -> None:
    # The per-kind rewrite of PortfolioArrays.position_values must not change any number:
    # compare with the original np.where formulation (full pricer), over scenario axes.
    p = book(mixed_book())
    rng = np.random.default_rng(3)
    spots = p.spot * np.exp(0.05 * rng.standard_normal((4, 7, 2)))
    for elapsed in (0.0, 3 / 365, 1.0):
        s = spots[..., p.column]
        q = p.quantity
        out = np.where(p.kind == 0, q * s, 0.0)
        out = np.where(p.kind == 1, q * (s - p.entry), out)
        safe_entry = np.where(p.entry > 0, p.entry, 1.0)
        out = np.where(p.kind == 2, q * p.contract_size * (s / safe_entry - 1.0), out)
        opt = p.kind == 3
        t = np.maximum(p.expiry[opt] - elapsed, 0.0)
        price = black_scholes(
            s[..., opt], p.strike[opt], t, p.rate, 0.0, p.vol[opt], p.is_call[opt]
        )
        out[..., opt] = q[opt] * price.price
        np.testing.assert_array_equal(p.position_values(spots, elapsed=elapsed), out)
    assert p.position_values().shape == (len(p),)
    assert p.position_values(p.spot).tolist() == p.position_values().tolist()
