"""Pre-trade validation latency on the hot path, against the order's own schema validation.

The validator holds a realistic state: many accounts, each with working orders on several
instruments and positions, consolidated mids for every instrument. Each sample is one
`admit` (every rule, then the reservation) of a fresh order that passes, timed with
perf_counter_ns; the baseline is `validate` (the catalogue's tick/lot/leg rules) on the same
orders in the same run. Prints JSON (also used by bench/risk.py).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.devnet.catalogue import devnet_catalogue
from gateway.domain.fills import Fill
from gateway.domain.orders import OrderSpec, OrderType, Side, validate
from gateway.risk.exposure import ExposureLedger
from gateway.risk.pretrade import PreTradeValidator, RiskControls, RiskLimits

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


class Mids:
    def __init__(self, mids: dict[str, Decimal]) -> None:
        self.mids = mids

    def mid(self, instrument: str) -> Decimal | None:
        return self.mids.get(instrument)


def _percentile(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0


def build(accounts: int, working: int, seed: int) -> tuple[PreTradeValidator, list[str]]:
    catalogue = devnet_catalogue()
    rng = random.Random(seed)
    mids = {"WETH/USDC": Decimal(3000), "WETH-PERP": Decimal("3001.5")}
    for instrument in catalogue:
        if instrument.kind.value == "option":
            mids[instrument.symbol] = Decimal(150)
    ledger = ExposureLedger(catalogue)
    limits = RiskLimits(
        max_position=Decimal(10_000),
        max_open_orders=10_000,
        max_open_notional=Decimal(10**12),  # on, never binding: every rule runs
        orders_per_second=Decimal(10**9),
        order_burst=10**9,
    )
    validator = PreTradeValidator(
        catalogue, RiskControls(defaults=limits), ledger, Mids(mids), lambda: NOW
    )
    names = [f"0x{n:040x}" for n in range(1, accounts + 1)]
    symbols = list(mids)
    for address in names:
        for k in range(working):
            side = Side.BUY if k % 2 else Side.SELL
            symbol = symbols[k % len(symbols)]
            mid = mids[symbol]
            # buys rest below the mid, sells above: resting, never self-crossing
            price = mid * (Decimal("0.9") if side is Side.BUY else Decimal("1.1"))
            spec = OrderSpec(
                address,
                f"w{k}",
                side,
                OrderType.LIMIT,
                Decimal(rng.randint(1, 20)) / 10,
                instrument=symbol,
                price=price.quantize(Decimal("0.5")),
            )
            validator.ledger.reserve(spec)
        for symbol in symbols[:3]:
            ledger.apply_fill(
                Fill(
                    "f",
                    "o",
                    address,
                    symbol,
                    Side.BUY,
                    Decimal(1),
                    mids[symbol],
                    Decimal(0),
                    "bench",
                    NOW,
                )
            )
    return validator, names


def run(
    samples: int = 20_000, accounts: int = 1_000, working: int = 20, seed: int = 1
) -> dict[str, Any]:
    validator, names = build(accounts, working, seed)
    catalogue = validator.catalogue
    rng = random.Random(seed + 1)
    orders = [
        OrderSpec(
            rng.choice(names),
            f"b{n}",
            Side.BUY,
            OrderType.LIMIT,
            Decimal("0.5"),
            instrument="WETH/USDC",
            price=Decimal(3000),
        )
        for n in range(samples)
    ]
    gc.collect()
    gc.disable()
    try:
        baseline: list[int] = []
        for spec in orders:
            started = time.perf_counter_ns()
            validate(spec, catalogue, NOW)
            baseline.append(time.perf_counter_ns() - started)
        checked: list[int] = []
        for spec in orders:
            started = time.perf_counter_ns()
            validator.admit(spec)
            checked.append(time.perf_counter_ns() - started)
            validator.ledger.release(spec)  # keep the state the same size for every sample
    finally:
        gc.enable()
    p99 = _percentile(checked, 0.99)
    base_p99 = _percentile(baseline, 0.99)
    return {
        "samples": samples,
        "accounts": accounts,
        "working_orders_per_account": working,
        "pre_trade_p50_us": round(_percentile(checked, 0.5), 2),
        "pre_trade_p99_us": round(p99, 2),
        "baseline_validate_p50_us": round(_percentile(baseline, 0.5), 2),
        "baseline_validate_p99_us": round(base_p99, 2),
        "ratio_p99_vs_validate": round(p99 / base_p99, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--working", type=int, default=20)
    args = parser.parse_args()
    print(
        json.dumps(
            {"benchmark": "pretrade", **run(args.samples, args.accounts, args.working)}, indent=2
        )
    )


if __name__ == "__main__":
    main()
