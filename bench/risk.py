"""Black-Scholes price + 5 Greeks for a portfolio, vectorized against a scalar loop in the same run.

The scalar baseline evaluates the same closed forms one option at a time with the `math`
module (erfc for the normal cdf). Both must agree to 1e-9 on a sample before timing. Also
reports implied-volatility solver throughput on the same portfolio. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.risk.pricing import Greeks, black_scholes, implied_vol

SPOT = 100.0
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
F64 = NDArray[np.float64]
Portfolio = tuple[F64, F64, F64, F64, F64, NDArray[np.bool_]]
Row = tuple[float, float, float, float, float, float]


def portfolio(count: int, seed: int) -> Portfolio:
    rng = np.random.default_rng(seed)
    strike = SPOT / np.exp(rng.uniform(math.log(0.5), math.log(2.0), count))
    expiry = np.exp(rng.uniform(math.log(1 / 365), math.log(3.0), count))
    rate = rng.uniform(-0.01, 0.08, count)
    div = rng.uniform(0.0, 0.05, count)
    vol = rng.uniform(0.05, 2.0, count)
    call = rng.random(count) < 0.5
    return strike, expiry, rate, div, vol, call


def scalar_one(s: float, k: float, t: float, r: float, q: float, v: float, call: bool) -> Row:
    w = 1.0 if call else -1.0
    sqrt_t = math.sqrt(t)
    stdev = v * sqrt_t
    d1 = math.log(s / k) / stdev + (r - q) * t / stdev + 0.5 * stdev
    d2 = d1 - stdev
    cdf1 = 0.5 * math.erfc(-w * d1 / math.sqrt(2.0))
    cdf2 = 0.5 * math.erfc(-w * d2 / math.sqrt(2.0))
    pdf1 = INV_SQRT_2PI * math.exp(-0.5 * d1 * d1)
    df, qdf = math.exp(-r * t), math.exp(-q * t)
    s_term, k_term = s * qdf * cdf1, k * df * cdf2
    return (
        w * (s_term - k_term),
        w * qdf * cdf1,
        qdf * pdf1 / (s * stdev),
        s * qdf * pdf1 * sqrt_t,
        -s * qdf * pdf1 * v / (2.0 * sqrt_t) - w * r * k_term + w * q * s_term,
        w * t * k_term,
    )


def run_scalar(book: Portfolio) -> tuple[float, list[Row]]:
    rows = list(zip(*(a.tolist() for a in book), strict=True))
    started = time.perf_counter()
    out = [scalar_one(SPOT, k, t, r, q, v, c) for k, t, r, q, v, c in rows]
    return time.perf_counter() - started, out


def run_vector(book: Portfolio) -> tuple[float, Greeks]:
    strike, expiry, rate, div, vol, call = book
    started = time.perf_counter()
    greeks = black_scholes(SPOT, strike, expiry, rate, div, vol, call)
    return time.perf_counter() - started, greeks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--options", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    book = portfolio(args.options, seed=42)

    # Same answer first: the benchmark compares equal work.
    n = 2_000
    sample: Portfolio = (
        book[0][:n],
        book[1][:n],
        book[2][:n],
        book[3][:n],
        book[4][:n],
        book[5][:n],
    )
    _, ours = run_vector(sample)
    _, reference = run_scalar(sample)
    ref = np.array(reference)
    names = ("price", "delta", "gamma", "vega", "theta", "rho")
    max_rel = 0.0
    for col, name in enumerate(names):
        got = getattr(ours, name)
        scale = np.maximum(np.abs(ref[:, col]), 1e-9)
        rel = float(np.max(np.abs(got - ref[:, col]) / scale))
        assert rel <= 1e-9, (name, rel)
        max_rel = max(max_rel, rel)

    vector_times, scalar_times = [], []
    for _ in range(args.rounds):  # interleaved
        vector_times.append(run_vector(book)[0])
        scalar_times.append(run_scalar(book)[0])
    best_vector, best_scalar = min(vector_times), min(scalar_times)

    # implied vol on the prices we just computed (those strictly inside the bounds)
    strike, expiry, rate, div, _, call = book
    prices = run_vector(book)[1].price
    df, qdf = np.exp(-rate * expiry), np.exp(-div * expiry)
    lower = np.maximum(np.where(call, 1.0, -1.0) * (SPOT * qdf - strike * df), 0.0)
    upper = np.where(call, SPOT * qdf, strike * df)
    ok = (prices > lower + 1e-12 * SPOT) & (prices < upper - 1e-12 * SPOT)
    iv_times = []
    iv: F64 = np.empty(0)
    for _ in range(args.rounds):
        started = time.perf_counter()
        iv = implied_vol(prices[ok], SPOT, strike[ok], expiry[ok], rate[ok], div[ok], call[ok])
        iv_times.append(time.perf_counter() - started)
    repriced = black_scholes(SPOT, strike[ok], expiry[ok], rate[ok], div[ok], iv, call[ok]).price
    iv_error = float(np.max(np.abs(repriced - prices[ok]) / np.maximum(prices[ok], 1e-9)))

    print(
        json.dumps(
            {
                "benchmark": "black_scholes_price_and_greeks",
                "options": args.options,
                "rounds": args.rounds,
                "agreement_sample": n,
                "agreement_max_rel_error": max_rel,
                "vectorized_seconds": round(best_vector, 6),
                "scalar_loop_seconds": round(best_scalar, 6),
                "vectorized_options_per_second": round(args.options / best_vector),
                "scalar_options_per_second": round(args.options / best_scalar),
                "speedup_vs_scalar": round(best_scalar / best_vector, 1),
                "implied_vol_options": int(ok.sum()),
                "implied_vol_seconds": round(min(iv_times), 6),
                "implied_vol_options_per_second": round(int(ok.sum()) / min(iv_times)),
                "implied_vol_max_reprice_rel_error": iv_error,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
