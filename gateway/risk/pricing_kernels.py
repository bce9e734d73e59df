"""Fused numba kernels behind ``gateway.risk.pricing.black_scholes`` (fast path).

Two kernels compute the price and the five Greeks of a 1-D portfolio in one call, no numpy
temporaries, with the same formulas and the same degenerate s = sigma sqrt(T) < 1e-100 limits
as the numpy path of ``pricing.py`` (``_core`` / ``_black_scholes_numpy``):

* SIMD (default when available): options in chunks of ``_CHUNK``; exp, log and erfc go
  through glibc's libmvec (``_ZGVeN8v_*`` with AVX-512, ``_ZGVdN4v_*`` with AVX2; glibc >=
  2.35; a few ulps like libm) called from an LLVM intrinsic on whole vectors, the arithmetic in
  between runs in unit-stride loops that LLVM vectorizes. N(x) = erfc(-x / sqrt 2) / 2.
* scalar: one loop, ``math`` functions (libm), N(x) with cephes ndtr's erf/erfc branches.
  Used when libmvec or AVX2 is missing.

Both differ from the numpy path (numpy's exp/log, scipy's cephes ndtr) only by a few ulps per
transcendental, which cancellation in price/theta can amplify relative to a small result but
not beyond ~1e-15 of the terms S e^{-qT} N(w d1), K e^{-rT} N(w d2). Out-of-domain inputs
(NaN included) are only counted here; the caller then takes the numpy path, which raises the
documented ValueError.

Numba compiles each kernel on its first call (~0.4-1 s) and caches the machine code in
``__pycache__`` next to this module (``cache=True``; numba falls back to a user cache dir
when that is not writable); later processes load it in milliseconds. Importing numba costs
~0.5 s, so ``pricing`` imports this module on first use.

Threads: see PARALLEL. The parallel kernel is entered by at most one Python thread at a time
(numba's workqueue layer aborts the process on concurrent entry); a concurrent caller runs the
serial kernel instead of waiting.
"""

from __future__ import annotations

import ctypes.util
import math
import os
import threading
from typing import Any

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic
from numpy.typing import NDArray

__all__ = [
    "PARALLEL",
    "PARALLEL_MIN_OPTIONS",
    "VECTOR_WIDTH",
    "black_scholes_into",
    "kernels",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRTH = math.sqrt(0.5)
_MIN_STDEV = 1e-100  # same threshold as pricing._MIN_STDEV
# Threads are opt-in (ISTHMUS_PRICING_PARALLEL=1): on the 2-core host the parallel kernel
# halves the time only while the other core is idle; with the other core busy (the gateway's
# own threads, other processes) the join waits for a descheduled worker and a call takes
# 4-8x longer than the serial kernel. GNU OpenMP (numba's threading layer here) is also not
# fork-safe.
PARALLEL = os.environ.get("ISTHMUS_PRICING_PARALLEL", "0") == "1"
# Below this many options the thread fork/join costs more than it saves.
PARALLEL_MIN_OPTIONS = 16384


@njit(inline="always", error_model="numpy")
def _ndtr(a: float) -> float:
    """Standard normal cdf, the same branches as cephes ``ndtr`` (scipy.special.ndtr)."""
    x = a * _SQRTH
    z = abs(x)
    if z < _SQRTH:
        return 0.5 + 0.5 * math.erf(x)
    y = 0.5 * math.erfc(z)
    return 1.0 - y if x > 0.0 else y


@njit(inline="always", error_model="numpy")
def _bs_one(
    i: int,
    s: FloatArray,
    k: FloatArray,
    t: FloatArray,
    r: FloatArray,
    q: FloatArray,
    v: FloatArray,
    c: BoolArray,
    steps: IntArray,
    out: FloatArray,
) -> int:
    """Price and Greeks of option i into out[0..5, i]; 1 if its inputs are out of domain.

    Every input is 1-D of length n (step 1) or 1 (step 0, a broadcast scalar).
    """
    si = s[i * steps[0]]
    ki = k[i * steps[1]]
    ti = t[i * steps[2]]
    ri = r[i * steps[3]]
    qi = q[i * steps[4]]
    vi = v[i * steps[5]]
    w = 1.0 if c[i * steps[6]] else -1.0
    if not (si > 0.0 and ki > 0.0 and ti >= 0.0 and vi >= 0.0):
        return 1
    df = math.exp(-ri * ti)
    div_df = math.exp(-qi * ti)
    forward = si * div_df / df
    sqrt_t = math.sqrt(ti)
    stdev = vi * sqrt_t
    log_moneyness = math.log(forward / ki)
    if stdev < _MIN_STDEV:
        # s -> 0 limit (see the pricing module docstring)
        if log_moneyness > 0.0:
            d1 = math.inf
        elif log_moneyness < 0.0:
            d1 = -math.inf
        else:
            d1 = 0.0
        d2 = d1
        pdf1 = _INV_SQRT_2PI * math.exp(-0.5 * d1 * d1)
        pdf1_over_stdev = 0.0
        theta_factor = 0.0
    else:
        d1 = log_moneyness / stdev + 0.5 * stdev
        d2 = d1 - stdev
        pdf1 = _INV_SQRT_2PI * math.exp(-0.5 * d1 * d1)
        pdf1_over_stdev = pdf1 / stdev
        theta_factor = pdf1_over_stdev * vi * vi * 0.5
    cdf1 = _ndtr(w * d1)
    cdf2 = _ndtr(w * d2)
    s_term = si * div_df * cdf1
    k_term = ki * df * cdf2
    out[0, i] = w * (s_term - k_term)
    out[1, i] = w * div_df * cdf1
    out[2, i] = div_df * pdf1_over_stdev / si
    out[3, i] = si * div_df * pdf1 * sqrt_t
    out[4, i] = w * (qi * s_term - ri * k_term) - si * div_df * theta_factor
    out[5, i] = w * ti * k_term
    return 0


# Two separate functions: numba's on-disk cache keys by function and signature, not by the
# parallel flag, so one function compiled both ways would share (and clobber) a cache entry.
@njit(cache=True, error_model="numpy", nogil=True)
def _bs_serial(
    s: FloatArray,
    k: FloatArray,
    t: FloatArray,
    r: FloatArray,
    q: FloatArray,
    v: FloatArray,
    c: BoolArray,
    steps: IntArray,
    out: FloatArray,
) -> int:
    bad = 0
    for i in range(out.shape[1]):
        bad += _bs_one(i, s, k, t, r, q, v, c, steps, out)
    return bad


@njit(cache=True, error_model="numpy", nogil=True, parallel=True)
def _bs_parallel(
    s: FloatArray,
    k: FloatArray,
    t: FloatArray,
    r: FloatArray,
    q: FloatArray,
    v: FloatArray,
    c: BoolArray,
    steps: IntArray,
    out: FloatArray,
) -> int:
    bad = 0
    for i in prange(out.shape[1]):
        bad += _bs_one(i, s, k, t, r, q, v, c, steps, out)
    return bad


# ---------------------------------------------------------------------------------------------
# SIMD kernel: glibc's libmvec (exp, log, erfc on 8 doubles with AVX-512, 4 with AVX2; a few
# ulps, like libm) called on blocks of a chunk of options; the arithmetic between them runs
# in scalar loops over the chunk.
# ---------------------------------------------------------------------------------------------


def _libmvec_width() -> int:
    """8 (AVX-512) or 4 (AVX2) if libmvec (glibc >= 2.35, for erfc) is usable, else 0."""
    features = llvm.get_host_cpu_features()
    if features.get("avx512f"):
        width, isa = 8, "e"
    elif features.get("avx2"):
        width, isa = 4, "d"
    else:
        return 0
    name = ctypes.util.find_library("mvec")
    if name is None:
        return 0
    try:
        lib = ctypes.CDLL(name)
        for fn in ("erfc", "exp", "log"):
            getattr(lib, f"_ZGV{isa}N{width}v_{fn}")
        llvm.load_library_permanently(name)
    except (OSError, AttributeError, RuntimeError):
        return 0
    return width


VECTOR_WIDTH = _libmvec_width()
_ISA = "e" if VECTOR_WIDTH == 8 else "d"
_WIDTH = max(VECTOR_WIDTH, 4)
_CHUNK = 2048  # options per chunk (a multiple of the vector width)


def _vector_call(fn: str) -> Any:
    """An intrinsic f(buffer, start): buffer[start:start+W] = fn(buffer[start:start+W])."""
    symbol = f"_ZGV{_ISA}N{_WIDTH}v_{fn}"

    @intrinsic
    def call(typingctx: Any, buffer: Any, start: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            data = context.make_array(signature.args[0])(context, builder, args[0]).data
            vector = ir.VectorType(ir.DoubleType(), _WIDTH)
            function = cgutils.get_or_insert_function(  # type: ignore[no-untyped-call]
                builder.module, ir.FunctionType(vector, [vector]), symbol
            )
            pointer = builder.bitcast(builder.gep(data, [args[1]]), vector.as_pointer())
            builder.store(
                builder.call(function, [builder.load(pointer, align=8)]), pointer, align=8
            )
            return context.get_dummy_value()

        return types.none(buffer, start), codegen

    return call


_vexp = _vector_call("exp")
_vlog = _vector_call("log")
_verfc = _vector_call("erfc")


@njit(inline="always", error_model="numpy")
def _chunk_input(x: FloatArray, step: int, lo: int, hi: int) -> FloatArray:
    """x[lo:hi] (a view) for a per-option input, hi - lo copies of x[0] for a scalar."""
    if step == 1:
        return x[lo:hi]
    return np.full(hi - lo, x[0])


@njit(inline="always", error_model="numpy")
def _bs_chunk(
    lo: int,
    hi: int,
    s: FloatArray,
    k: FloatArray,
    t: FloatArray,
    r: FloatArray,
    q: FloatArray,
    v: FloatArray,
    c: BoolArray,
    steps: IntArray,
    out: FloatArray,
) -> int:
    """Options lo..hi-1 (hi - lo <= _CHUNK) into out; returns the count of invalid inputs.

    The same operations as _bs_one, except N(x) = erfc(-x / sqrt 2) / 2 on both sides of 0.
    Every loop has unit stride (LLVM vectorizes the arithmetic); the libmvec calls work on
    whole vectors of the chunk buffers, the last one partly on unused (uninitialised) lanes.
    """
    m = hi - lo
    sv = _chunk_input(s, steps[0], lo, hi)
    kv = _chunk_input(k, steps[1], lo, hi)
    tv = _chunk_input(t, steps[2], lo, hi)
    rv = _chunk_input(r, steps[3], lo, hi)
    qv = _chunk_input(q, steps[4], lo, hi)
    vv = _chunk_input(v, steps[5], lo, hi)
    cv = c[lo:hi] if steps[6] == 1 else np.full(m, c[0])
    df = np.empty(_CHUNK)  # -rT, then e^{-rT}
    div_df = np.empty(_CHUNK)  # -qT, then e^{-qT}
    bad = 0
    for j in range(m):
        ok = (sv[j] > 0.0) & (kv[j] > 0.0) & (tv[j] >= 0.0) & (vv[j] >= 0.0)
        bad += 0 if ok else 1
        df[j] = -rv[j] * tv[j]
        div_df[j] = -qv[j] * tv[j]
    for j in range(0, m, _WIDTH):
        _vexp(df, j)
        _vexp(div_df, j)
    ratio = np.empty(_CHUNK)  # F / K, then ln(F / K)
    for j in range(m):
        ratio[j] = sv[j] * div_df[j] / df[j] / kv[j]
    for j in range(0, m, _WIDTH):
        _vlog(ratio, j)
    e1 = np.empty(_CHUNK)  # -d1^2 / 2, then exp of it
    x1 = np.empty(_CHUNK)  # -w d1 / sqrt 2, then erfc of it
    x2 = np.empty(_CHUNK)
    for j in range(m):
        stdev = vv[j] * math.sqrt(tv[j])
        degenerate = stdev < _MIN_STDEV
        safe = 1.0 if degenerate else stdev
        lm = ratio[j]
        d1 = lm / safe + 0.5 * safe
        d2 = d1 - safe
        limit = math.inf if lm > 0.0 else (-math.inf if lm < 0.0 else 0.0)
        d1 = limit if degenerate else d1
        d2 = limit if degenerate else d2
        w = 1.0 if cv[j] else -1.0
        e1[j] = -0.5 * d1 * d1
        x1[j] = -(w * d1) * _SQRTH
        x2[j] = -(w * d2) * _SQRTH
    for j in range(0, m, _WIDTH):
        _vexp(e1, j)
        _verfc(x1, j)
        _verfc(x2, j)
    price = out[0, lo:hi]
    delta = out[1, lo:hi]
    gamma = out[2, lo:hi]
    vega = out[3, lo:hi]
    theta = out[4, lo:hi]
    rho = out[5, lo:hi]
    for j in range(m):
        si = sv[j]
        vi = vv[j]
        root = math.sqrt(tv[j])
        stdev = vi * root
        degenerate = stdev < _MIN_STDEV
        w = 1.0 if cv[j] else -1.0
        pdf1 = _INV_SQRT_2PI * e1[j]
        pdf1_over_stdev = 0.0 if degenerate else pdf1 / stdev
        theta_factor = 0.0 if degenerate else pdf1_over_stdev * vi * vi * 0.5
        cdf1 = 0.5 * x1[j]
        cdf2 = 0.5 * x2[j]
        dd = div_df[j]
        s_term = si * dd * cdf1
        k_term = kv[j] * df[j] * cdf2
        price[j] = w * (s_term - k_term)
        delta[j] = w * dd * cdf1
        gamma[j] = dd * pdf1_over_stdev / si
        vega[j] = si * dd * pdf1 * root
        theta[j] = w * (qv[j] * s_term - rv[j] * k_term) - si * dd * theta_factor
        rho[j] = w * tv[j] * k_term
    return bad


@njit(cache=True, error_model="numpy", nogil=True)
def _bs_simd_serial(
    s: FloatArray,
    k: FloatArray,
    t: FloatArray,
    r: FloatArray,
    q: FloatArray,
    v: FloatArray,
    c: BoolArray,
    steps: IntArray,
    out: FloatArray,
) -> int:
    n = out.shape[1]
    bad = 0
    for chunk in range((n + _CHUNK - 1) // _CHUNK):
        lo = chunk * _CHUNK
        bad += _bs_chunk(lo, min(lo + _CHUNK, n), s, k, t, r, q, v, c, steps, out)
    return bad


@njit(cache=True, error_model="numpy", nogil=True, parallel=True)
def _bs_simd_parallel(
    s: FloatArray,
    k: FloatArray,
    t: FloatArray,
    r: FloatArray,
    q: FloatArray,
    v: FloatArray,
    c: BoolArray,
    steps: IntArray,
    out: FloatArray,
) -> int:
    n = out.shape[1]
    bad = 0
    for chunk in prange((n + _CHUNK - 1) // _CHUNK):
        lo = chunk * _CHUNK
        bad += _bs_chunk(lo, min(lo + _CHUNK, n), s, k, t, r, q, v, c, steps, out)
    return bad


_parallel_lock = threading.Lock()


def black_scholes_into(
    out: FloatArray,
    s: FloatArray,
    k: FloatArray,
    t: FloatArray,
    r: FloatArray,
    q: FloatArray,
    v: FloatArray,
    c: BoolArray,
    *,
    parallel: bool | None = None,
    simd: bool | None = None,
) -> bool:
    """Fill out (shape (6, n)) with price, delta, gamma, vega, theta, rho.

    Inputs are contiguous 1-D arrays of length n or 1. Returns False (out is then garbage)
    when some input is out of domain or NaN. ``simd``: None uses the libmvec kernel when
    available (VECTOR_WIDTH > 0), False forces the scalar libm kernel. ``parallel``: None
    follows PARALLEL (environment ISTHMUS_PRICING_PARALLEL=1; off by default).
    """
    if parallel is None:
        parallel = PARALLEL
    n = out.shape[1]
    steps = np.array([0 if a.shape[0] == 1 else 1 for a in (s, k, t, r, q, v, c)], np.int64)
    if n == 0:
        return True
    use_simd = VECTOR_WIDTH > 0 if simd is None else simd and VECTOR_WIDTH > 0
    serial, threaded = kernels(simd=use_simd)
    if parallel and n >= PARALLEL_MIN_OPTIONS and _parallel_lock.acquire(blocking=False):
        try:
            bad = threaded(s, k, t, r, q, v, c, steps, out)
        finally:
            _parallel_lock.release()
    else:
        bad = serial(s, k, t, r, q, v, c, steps, out)
    return int(bad) == 0


def kernels(*, simd: bool) -> tuple[Any, Any]:
    """(serial, parallel) numba dispatchers of the SIMD or the scalar-libm kernel."""
    if simd:
        return _bs_simd_serial, _bs_simd_parallel
    return _bs_serial, _bs_parallel
