"""bench/gas.py runs end to end (one small batch) and prints the documented JSON keys."""

from __future__ import annotations

import json

import pytest

from bench import gas

pytestmark = [pytest.mark.chain, pytest.mark.slow]


def test_gas_bench_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert gas.main(["--sizes", "1,2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["gas_per_trade"]) == {"1", "2"}
    pair = result["baseline"]["erc20_transfer_pair_cold"]
    assert 21_000 * 2 < pair < result["gas_per_trade"]["1"]
    assert result["gas_per_trade"]["2"] < result["gas_per_trade"]["1"]  # batching amortizes
    assert result["iron_condor_4_legs"] > 0
