"""bench/gas.py runs end to end (one small batch) and prints the documented JSON keys."""

from __future__ import annotations

import json

import pytest

from bench import gas

pytestmark = [pytest.mark.chain, pytest.mark.slow]


def test_gas_bench_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert gas.main(["--sizes", "1,2", "--key-trades", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["gas_per_trade"]) == {"1", "2"}
    pair = result["baseline"]["erc20_transfer_pair_cold"]
    assert 21_000 * 2 < pair < result["gas_per_trade"]["1"]
    assert result["gas_per_trade"]["2"] < result["gas_per_trade"]["1"]  # batching amortizes
    assert result["iron_condor_4_legs"] > 0
    # the factory's seeded unit: a first trade writes no fresh balance slot (two per trade,
    # 17,100 each), the cost moved to wallet creation
    unseeded = result["unseeded"]["gas_per_trade"]
    for n in ("1", "2"):
        assert result["gas_per_trade"][n] < unseeded[n] - 2 * 15_000, n
    creation = result["wallet_creation"]
    assert 0 < creation["extra_gas_seeding"] == creation["gas_seeded"] - creation["gas_unseeded"]
    assert creation["extra_gas_seeding"] < 100_000

    sizes = result["sizes"]
    assert sizes["eip170_limit"] == 24_576 and sizes["all_within_eip170"]
    for name in ("MarginWallet", "Settlement", "PriceOracle", "WalletFactory"):
        assert 0 < sizes[name] <= 24_576, name
    # the blueprint holds the wallet's initcode behind the 3-byte ERC-5202 preamble
    assert sizes["MarginWallet_blueprint"] == sizes["MarginWallet_initcode"] + 3
    key = result["trading_key"]
    assert key["key_signed_orders"] == 2
    assert 0 < key["extra_gas_per_key_order"] <= key["limit_extra_gas_per_key_order"] == 5_000
    assert key["within_limit"]
    safe = result["eip1271_safe"]
    assert safe["signature_bytes"] == 130 and safe["gas_trade_safe"] > safe["gas_trade_owner"]
