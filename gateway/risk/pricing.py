"""Vectorized European option prices, Greeks and implied volatility (Black-Scholes, Black-76).

Every function takes array-likes that broadcast against each other (scalars, per-option
arrays of a whole portfolio) and works in one pass of numpy operations, with no Python loop
over options; ``black_scholes`` / ``black_scholes_price`` on a 1-D portfolio run instead one
fused compiled kernel (``pricing_kernels``, numba + glibc libmvec) with the same formulas and
limits. These are floating-point analytics, not money: amounts that settle are Decimal/int
elsewhere.

Conventions
-----------
* ``expiry`` is T in years, ``rate`` r and ``dividend`` q are continuously compounded.
* ``delta`` is dV/dS (Black-Scholes) or dV/dF (Black-76); ``gamma`` its second derivative.
* ``vega`` is dV/dsigma per 1.0 of volatility (divide by 100 for "per vol point").
* ``theta`` is dV/dt per year of calendar time, i.e. -dV/dT (usually negative for a long
  option); divide by 365 for "per day".
* ``rho`` is dV/dr per 1.0 of rate. For Black-Scholes the forward moves with r
  (rho = w K T e^{-rT} N(w d2)); for Black-76 the forward is an input held fixed, so
  rho = -T V.
* Same conventions as QuantLib's AnalyticEuropeanEngine and blackFormula.

Edge behaviour (no NaN for valid inputs)
----------------------------------------
Let the total standard deviation be s = sigma * sqrt(T). When s < 1e-100 (in particular
T == 0 or sigma == 0) the option is valued at its s -> 0 limit:

* price = discounted intrinsic value e^{-rT} max(w (F - K), 0);
* delta is a step: e^{-qT} w (Black-Scholes) or e^{-rT} w (Black-76) in the money, 0 out of
  the money and half of that exactly at the forward (the sigma -> 0 limit of N(d1));
* gamma = 0 (at the forward the true limit diverges; 0 is returned);
* vega = e^{-rT} F n(0) sqrt(T) at the forward, 0 elsewhere (the sigma -> 0 limit; 0 at T == 0);
* theta keeps only its carry terms: the diffusion term -e^{-rT} F n(d1) sigma / (2 sqrt T) is
  0 (its limit everywhere except at the forward at T == 0, where it diverges);
* rho follows from the step N(w d2) and is 0 at T == 0.

Inputs must satisfy spot/forward > 0, strike > 0, expiry >= 0, vol >= 0 (ValueError
otherwise, NaN included). Accuracy: the closed forms match QuantLib to ~1e-12 relative; a
price is accurate to ~1e-16 (S + K) absolute, so far-out-of-the-money prices far below that
carry only relative accuracy of the cdf tails.

Implied volatility
------------------
``implied_vol`` / ``black76_implied_vol`` accept any price strictly inside the no-arbitrage
bounds and return a finite vol (expiry must be > 0); prices on or outside the bounds (or NaN)
raise PriceOutsideArbitrageBounds (a ValueError) listing every offending index. The solver
works on the out-of-the-money (time-value) price normalised by sqrt(F K) - put-call parity
in undiscounted form, so deep in-the-money options are as well conditioned as their time
value allows - with safeguarded Newton on ln(price) in s = sigma sqrt(T) over the bracket
[1e-300, 80], falling back to geometric bisection, to 1e-12 relative in the time value. A
price within rounding of intrinsic value returns 0.0; one within rounding of the upper bound
returns a large vol (at most 80 / sqrt(T)).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import erfcx, ndtr

__all__ = [
    "Greeks",
    "PriceOutsideArbitrageBounds",
    "black76",
    "black76_implied_vol",
    "black_scholes",
    "black_scholes_price",
    "implied_vol",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

_log = logging.getLogger(__name__)

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# Below this total standard deviation the degenerate (intrinsic) limit is used, which keeps
# 1/s finite.
_MIN_STDEV = 1e-100
# Implied-vol search range for the total standard deviation s = sigma sqrt(T). At s = 80 the
# normalised out-of-the-money price equals its upper bound to double precision.
_S_LO = 1e-300
_S_HI = 80.0


@dataclass(frozen=True, slots=True)
class Greeks:
    """Price and first-order Greeks (plus gamma), one array element per option."""

    price: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray
    rho: FloatArray


class PriceOutsideArbitrageBounds(ValueError):
    """Some prices are not strictly inside the no-arbitrage bounds; no volatility fits them."""

    def __init__(self, indices: list[tuple[int, ...]]) -> None:
        self.indices = indices
        shown = ", ".join(str(i if len(i) != 1 else i[0]) for i in indices[:20])
        more = f" (+{len(indices) - 20} more)" if len(indices) > 20 else ""
        super().__init__(
            f"{len(indices)} price(s) outside the no-arbitrage bounds at indices: {shown}{more}"
        )


def _broadcast(
    is_call: ArrayLike, *values: ArrayLike, copy: bool = True
) -> tuple[FloatArray, list[FloatArray]]:
    """Inputs as float arrays and w = +1.0 (call) / -1.0 (put).

    With copy=True all come back broadcast to the common shape (contiguous copies); with
    copy=False they keep their own shapes (numpy broadcasts them inside the arithmetic,
    which avoids slow zero-stride loops) and only w has the common shape.
    """
    calls = np.asarray(is_call, dtype=np.bool_)
    arrays = [np.asarray(v, dtype=np.float64) for v in values]
    shape = np.broadcast_shapes(calls.shape, *(a.shape for a in arrays))
    w = np.broadcast_to(calls, shape).astype(np.float64) * 2.0 - 1.0
    if not copy:
        return w, arrays
    return w, [np.array(np.broadcast_to(a, shape), dtype=np.float64) for a in arrays]


def _full(shape: tuple[int, ...], *arrays: FloatArray) -> list[FloatArray]:
    return [a if a.shape == shape else np.broadcast_to(a, shape).copy() for a in arrays]


def _check(name: str, ok: BoolArray) -> None:
    if not np.all(ok):
        raise ValueError(f"{name} out of domain at {np.argwhere(~ok).tolist()[:20]}")


@dataclass(frozen=True, slots=True)
class _Core:
    """Shared pieces of the Black formula: N(w d1), N(w d2), n(d1), sqrt(T) and the
    diffusion factors n(d1)/s and n(d1) sigma / (2 sqrt T), the latter two 0 when s == 0."""

    cdf1: FloatArray
    cdf2: FloatArray
    pdf1: FloatArray
    sqrt_t: FloatArray
    pdf1_over_stdev: FloatArray
    theta_factor: FloatArray


@dataclass(frozen=True, slots=True)
class _D:
    """d1, d2 and what they were computed from; `degenerate` is None when no option is."""

    sqrt_t: FloatArray
    safe: FloatArray  # s = sigma sqrt(T), 1.0 where degenerate (keeps 1/s finite)
    degenerate: BoolArray | None
    d1: FloatArray
    d2: FloatArray


def _d1_d2(forward: FloatArray, strike: FloatArray, expiry: FloatArray, vol: FloatArray) -> _D:
    sqrt_t = np.sqrt(expiry)
    stdev = vol * sqrt_t
    degenerate = stdev < _MIN_STDEV
    any_degenerate = bool(degenerate.any())
    safe = np.where(degenerate, 1.0, stdev) if any_degenerate else stdev
    log_moneyness = np.log(forward / strike)
    d1 = log_moneyness / safe + 0.5 * safe
    d2 = d1 - safe
    if any_degenerate:
        # s -> 0 limit: d1, d2 -> +inf / -inf / 0 as F > K / F < K / F == K.
        limit = np.where(log_moneyness > 0.0, np.inf, np.where(log_moneyness < 0.0, -np.inf, 0.0))
        d1 = np.where(degenerate, limit, d1)
        d2 = np.where(degenerate, limit, d2)
    return _D(sqrt_t, safe, degenerate if any_degenerate else None, d1, d2)


def _core(
    forward: FloatArray, strike: FloatArray, expiry: FloatArray, vol: FloatArray, w: FloatArray
) -> _Core:
    d = _d1_d2(forward, strike, expiry, vol)
    sqrt_t, safe, degenerate, d1, d2 = d.sqrt_t, d.safe, d.degenerate, d.d1, d.d2
    pdf1 = _INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)
    pdf1_over_stdev = pdf1 / safe
    if degenerate is not None:
        pdf1_over_stdev = np.where(degenerate, 0.0, pdf1_over_stdev)
        theta_factor = np.where(degenerate, 0.0, pdf1_over_stdev * vol * vol * 0.5)
    else:
        theta_factor = pdf1_over_stdev * vol * vol * 0.5  # n(d1) sigma / (2 sqrt T)
    return _Core(
        cdf1=ndtr(w * d1),
        cdf2=ndtr(w * d2),
        pdf1=pdf1,
        sqrt_t=sqrt_t,
        pdf1_over_stdev=pdf1_over_stdev,
        theta_factor=theta_factor,
    )


def black_scholes(
    spot: ArrayLike,
    strike: ArrayLike,
    expiry: ArrayLike,
    rate: ArrayLike,
    dividend: ArrayLike,
    vol: ArrayLike,
    is_call: ArrayLike,
) -> Greeks:
    """Black-Scholes-Merton price and Greeks with continuous dividend/borrow yield q.

    A portfolio - inputs that are 1-D arrays of one common length n, or scalars - goes
    through the fused numba kernel of ``pricing_kernels`` (same formulas and edge limits,
    agrees with the numpy path to a few ulps per transcendental). Other shapes, and
    out-of-domain inputs (to raise the ValueError), take the numpy path
    ``_black_scholes_numpy``.
    """
    fast = _black_scholes_fused(spot, strike, expiry, rate, dividend, vol, is_call)
    if fast is not None:
        return fast
    return _black_scholes_numpy(spot, strike, expiry, rate, dividend, vol, is_call)


@functools.cache
def _fused_kernel() -> Callable[..., bool] | None:
    """``pricing_kernels.black_scholes_into``, imported on first use (numba adds ~0.5 s).

    None (numpy path only, logged once) if numba cannot load, e.g. no writable cache dir for
    ``cache=True`` (set NUMBA_CACHE_DIR).
    """
    try:
        from gateway.risk.pricing_kernels import black_scholes_into
    except (ImportError, OSError, RuntimeError):
        _log.warning("fused Black-Scholes kernels unavailable; numpy path only", exc_info=True)
        return None
    return black_scholes_into


def _fused_inputs(
    is_call: ArrayLike, *values: ArrayLike
) -> tuple[int, BoolArray, list[FloatArray]] | None:
    """(n, calls, values) as contiguous 1-D arrays of length n or 1, when the broadcast shape
    is (n,) with some input of shape (n,) and every other of shape () or (1,); else None."""
    calls = np.asarray(is_call, dtype=np.bool_)
    arrays = [np.asarray(a, dtype=np.float64) for a in values]
    n = 0
    for a in (calls, *arrays):
        if a.ndim > 1:
            return None
        if a.ndim == 1 and a.shape[0] != 1:
            if n and a.shape[0] != n:
                return None
            n = a.shape[0]
    if n == 0:  # all scalars / length 1: result shape () or (1,), numpy path
        return None
    return (
        n,
        np.ascontiguousarray(calls.reshape(-1)),
        [np.ascontiguousarray(a.reshape(-1)) for a in arrays],
    )


def _black_scholes_fused(
    spot: ArrayLike,
    strike: ArrayLike,
    expiry: ArrayLike,
    rate: ArrayLike,
    dividend: ArrayLike,
    vol: ArrayLike,
    is_call: ArrayLike,
    *,
    parallel: bool | None = None,
    simd: bool | None = None,
) -> Greeks | None:
    """The fused-kernel fast path, or None when it does not apply (shape, invalid input)."""
    prepared = _fused_inputs(is_call, spot, strike, expiry, rate, dividend, vol)
    if prepared is None:
        return None
    kernel = _fused_kernel()
    if kernel is None:
        return None
    n, calls, (s, k, t, r, q, v) = prepared
    out = np.empty((6, n), dtype=np.float64)
    if not kernel(out, s, k, t, r, q, v, calls, parallel=parallel, simd=simd):
        return None
    return Greeks(out[0], out[1], out[2], out[3], out[4], out[5])


def _black_scholes_numpy(
    spot: ArrayLike,
    strike: ArrayLike,
    expiry: ArrayLike,
    rate: ArrayLike,
    dividend: ArrayLike,
    vol: ArrayLike,
    is_call: ArrayLike,
) -> Greeks:
    """Black-Scholes-Merton in numpy operations: any broadcastable shapes; validates."""
    w, (s, k, t, r, q, v) = _broadcast(
        is_call, spot, strike, expiry, rate, dividend, vol, copy=False
    )
    _check("spot", s > 0)
    _check("strike", k > 0)
    _check("expiry", t >= 0)
    _check("vol", v >= 0)
    df = np.exp(-r * t)
    div_df = np.exp(-q * t)
    forward = s * div_df / df
    core = _core(forward, k, t, v, w)
    s_term = s * div_df * core.cdf1  # S e^{-qT} N(w d1)
    k_term = k * df * core.cdf2  # K e^{-rT} N(w d2)
    price = w * (s_term - k_term)
    return Greeks(
        *_full(
            w.shape,
            price,
            w * div_df * core.cdf1,
            div_df * core.pdf1_over_stdev / s,
            s * div_df * core.pdf1 * core.sqrt_t,
            w * (q * s_term - r * k_term) - s * div_df * core.theta_factor,
            w * t * k_term,
        )
    )


def black_scholes_price(
    spot: ArrayLike,
    strike: ArrayLike,
    expiry: ArrayLike,
    rate: ArrayLike,
    dividend: ArrayLike,
    vol: ArrayLike,
    is_call: ArrayLike,
) -> FloatArray:
    """Black-Scholes-Merton price only: bit-for-bit ``black_scholes(...).price``.

    Scenario revaluation (VaR, stress) prices the same options under many spots and needs no
    Greeks. This skips the density and the Greeks, keeps the call/put sign w at the shape of
    ``is_call`` (numpy broadcasts it), and skips the multiplication by e^{-qT} when every q
    is 0 (it is exactly 1.0 then). The remaining arithmetic is the same sequence of floating
    point operations as ``black_scholes`` / ``_core``, so the two prices are identical,
    degenerate (s -> 0) limits included. 1-D portfolios take the fused kernel here as in
    ``black_scholes`` (and so stay identical to it).
    """
    fast = _black_scholes_fused(spot, strike, expiry, rate, dividend, vol, is_call)
    if fast is not None:
        return fast.price.copy()  # not a view keeping the five Greeks alive
    calls = np.asarray(is_call, dtype=np.bool_)
    s, k, t, r, q, v = (
        np.asarray(a, dtype=np.float64) for a in (spot, strike, expiry, rate, dividend, vol)
    )
    shape = np.broadcast_shapes(calls.shape, s.shape, k.shape, t.shape, r.shape, q.shape, v.shape)
    w = calls.astype(np.float64) * 2.0 - 1.0
    _check("spot", s > 0)
    _check("strike", k > 0)
    _check("expiry", t >= 0)
    _check("vol", v >= 0)
    df = np.exp(-r * t)
    carry = bool(np.any(q))
    div_df = np.exp(-q * t)
    s_div = s * div_df if carry else s  # s * 1.0 == s exactly
    forward = s_div / df
    d = _d1_d2(forward, k, t, v)
    d1, d2 = d.d1, d.d2
    s_term = s_div * ndtr(w * d1)
    k_term = k * df * ndtr(w * d2)
    price: FloatArray = np.asarray(w * (s_term - k_term), dtype=np.float64)
    return price if price.shape == shape else np.broadcast_to(price, shape).copy()


def black76(
    forward: ArrayLike,
    strike: ArrayLike,
    expiry: ArrayLike,
    rate: ArrayLike,
    vol: ArrayLike,
    is_call: ArrayLike,
) -> Greeks:
    """Black-76 price and Greeks of an option on a forward/future F, discounted at r.

    delta/gamma are with respect to F; rho holds F fixed (rho = -T V).
    """
    w, (f, k, t, r, v) = _broadcast(is_call, forward, strike, expiry, rate, vol, copy=False)
    _check("forward", f > 0)
    _check("strike", k > 0)
    _check("expiry", t >= 0)
    _check("vol", v >= 0)
    df = np.exp(-r * t)
    core = _core(f, k, t, v, w)
    price = w * df * (f * core.cdf1 - k * core.cdf2)
    return Greeks(
        *_full(
            w.shape,
            price,
            w * df * core.cdf1,
            df * core.pdf1_over_stdev / f,
            df * f * core.pdf1 * core.sqrt_t,
            r * price - df * f * core.theta_factor,
            -t * price,
        )
    )


# ---------------------------------------------------------------------------------------------
# Implied volatility
# ---------------------------------------------------------------------------------------------


_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(12)  # type: ignore[no-untyped-call]
_QUADRATURE_BELOW = 0.5


def _otm_price(x: FloatArray, s: FloatArray) -> FloatArray:
    """Undiscounted Black price of the out-of-the-money option, normalised by sqrt(F K).

    x = ln(F/K), s = sigma sqrt(T). By symmetry it is the OTM call at -|x|:
    b = e^{x/2} N(d1) - e^{-x/2} N(d2), d1,2 = x/s +- s/2, x <= 0.
    For s < 0.5 the two terms nearly cancel, so b is computed as
    b = m (Y(d1) - Y(d2)) = m * integral_{d2}^{d1} (1 + h Y(h)) dh with m = e^{x/2} n(d1) and
    Y = N/n (12-point Gauss-Legendre; the integrand is smooth and positive), which keeps full
    relative precision for tiny time values.
    """
    x = -np.abs(x)
    with np.errstate(over="ignore"):
        d1 = x / s + 0.5 * s
        d2 = d1 - s
        direct = np.exp(0.5 * x) * ndtr(d1) - np.exp(-0.5 * x) * ndtr(d2)
    small = s < _QUADRATURE_BELOW
    if not np.any(small):
        return np.asarray(direct, dtype=np.float64)
    xs, ds1, ss = x[small], d1[small], s[small]
    h = (ds1 - 0.5 * ss)[:, None] + (0.5 * ss)[:, None] * _GL_NODES[None, :]
    y = math.sqrt(0.5 * math.pi) * erfcx(-h / math.sqrt(2.0))
    integral = 0.5 * ss * ((1.0 + h * y) @ _GL_WEIGHTS)
    with np.errstate(over="ignore"):
        m = np.exp(0.5 * xs - 0.5 * ds1 * ds1) * _INV_SQRT_2PI
    out = np.array(direct, dtype=np.float64)
    out[small] = m * integral
    return out


def _solve_stdev(
    x: FloatArray, target: FloatArray, tol: float, max_iter: int
) -> tuple[FloatArray, int]:
    """Total standard deviation s with _otm_price(x, s) == target, for 0 < target < bound.

    Safeguarded Newton on ln(price) (well scaled from deep OTM to near the upper bound),
    falling back to geometric bisection on the bracket [_S_LO, _S_HI] whenever a step would
    leave the bracket. The bracket shrinks every iteration, so the search always terminates
    with a finite answer.
    """
    shape = x.shape
    x = np.array(x, dtype=np.float64).ravel()
    target = np.array(target, dtype=np.float64).ravel()
    ln_target = np.log(target)
    lo = np.full_like(x, _S_LO)
    hi = np.full_like(x, _S_HI)
    # Start at the inflection point sqrt(2|x|) (from which Newton on the price converges
    # monotonically); near the money use the Brenner-Subrahmanyam guess sqrt(2 pi) b.
    guess = np.where(np.abs(x) > 1e-3, np.sqrt(2.0 * np.abs(x)), math.sqrt(2.0 * math.pi) * target)
    s = np.array(np.clip(guess, _S_LO, 10.0), dtype=np.float64)
    active = np.ones(x.shape, dtype=np.bool_)
    iterations = 0
    while iterations < max_iter and np.any(active):
        iterations += 1
        idx = np.flatnonzero(active)
        xs, ss, lt = x[idx], s[idx], ln_target[idx]
        lo_i, hi_i = lo[idx], hi[idx]
        price = _otm_price(xs, ss)
        with np.errstate(divide="ignore"):
            g = np.log(price) - lt
        below = g < 0.0
        lo_i = np.where(below, ss, lo_i)
        hi_i = np.where(below, hi_i, ss)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            d1 = -np.abs(xs) / ss + 0.5 * ss
            vega = np.exp(-0.5 * d1 * d1 - 0.5 * np.abs(xs)) * _INV_SQRT_2PI  # d price / d s
            step = g * price / vega
            newton = ss - step
        ok = np.isfinite(newton) & (newton > lo_i) & (newton < hi_i) & (price > 0.0)
        bisect = np.sqrt(lo_i) * np.sqrt(hi_i)  # geometric; lo * hi may underflow
        s_new = np.where(ok, newton, bisect)
        done = (np.abs(g) <= tol) | (hi_i - lo_i <= 4e-16 * hi_i)
        s_new = np.where(done, ss, s_new)
        s[idx] = s_new
        lo[idx] = lo_i
        hi[idx] = hi_i
        active[idx] = ~done
    return s.reshape(shape), iterations


def _implied_from_forward(
    price: FloatArray,
    forward: FloatArray,
    strike: FloatArray,
    expiry: FloatArray,
    df: FloatArray,
    lower: FloatArray,
    upper: FloatArray,
    tol: float,
    max_iter: int,
) -> FloatArray:
    inside = (price > lower) & (price < upper) & np.isfinite(price)
    if not np.all(inside):
        bad = [tuple(int(j) for j in i) for i in np.argwhere(~inside)]
        raise PriceOutsideArbitrageBounds(bad)
    x = np.log(forward / strike)
    scale = np.sqrt(forward * strike)
    # Time value = price of the OTM option at the same strike (put-call parity, undiscounted).
    time_value = (price - lower) / (df * scale)
    # OTM bound: e^{x/2} for an OTM call (x <= 0), e^{-x/2} for an OTM put.
    bound = np.exp(-0.5 * np.abs(x))
    # Rounding in the subtraction can put a price within an ulp of a bound outside it.
    at_floor = time_value <= 0.0
    target = np.clip(time_value, np.finfo(np.float64).tiny, bound)
    stdev, _ = _solve_stdev(x, target, tol, max_iter)
    stdev = np.where(at_floor, 0.0, stdev)
    return np.asarray(stdev / np.sqrt(expiry), dtype=np.float64)


def implied_vol(
    price: ArrayLike,
    spot: ArrayLike,
    strike: ArrayLike,
    expiry: ArrayLike,
    rate: ArrayLike,
    dividend: ArrayLike,
    is_call: ArrayLike,
    *,
    tol: float = 1e-12,
    max_iter: int = 200,
) -> FloatArray:
    """Black-Scholes implied volatility, vectorized.

    Valid prices are strictly inside the no-arbitrage bounds
    max(w (S e^{-qT} - K e^{-rT}), 0) < price < S e^{-qT} (call) or K e^{-rT} (put);
    others raise PriceOutsideArbitrageBounds listing their (broadcast) indices.
    ``tol`` is the relative tolerance on the out-of-the-money (time-value) price.
    expiry must be > 0. A price within rounding of intrinsic value returns 0.
    """
    w, (p, s, k, t, r, q) = _broadcast(is_call, price, spot, strike, expiry, rate, dividend)
    _check("spot", s > 0)
    _check("strike", k > 0)
    _check("expiry", t > 0)
    df = np.exp(-r * t)
    div_df = np.exp(-q * t)
    forward = s * div_df / df
    lower = np.maximum(w * (s * div_df - k * df), 0.0)
    upper = np.where(w > 0, s * div_df, k * df)
    return _implied_from_forward(p, forward, k, t, df, lower, upper, tol, max_iter)


def black76_implied_vol(
    price: ArrayLike,
    forward: ArrayLike,
    strike: ArrayLike,
    expiry: ArrayLike,
    rate: ArrayLike,
    is_call: ArrayLike,
    *,
    tol: float = 1e-12,
    max_iter: int = 200,
) -> FloatArray:
    """Black-76 implied volatility; bounds max(w e^{-rT}(F - K), 0) < price < e^{-rT} F or K."""
    w, (p, f, k, t, r) = _broadcast(is_call, price, forward, strike, expiry, rate)
    _check("forward", f > 0)
    _check("strike", k > 0)
    _check("expiry", t > 0)
    df = np.exp(-r * t)
    lower = np.maximum(w * (df * f - df * k), 0.0)
    upper = np.where(w > 0, df * f, df * k)
    return _implied_from_forward(p, f, k, t, df, lower, upper, tol, max_iter)
