"""The Python batch encoder agrees with the contracts' bounds and the instrument ids."""

from __future__ import annotations

import re

import pytest

from gateway.chain import settlement_abi as abi
from gateway.chain.paths import contracts_dir
from gateway.settlement.eip712 import Leg, Order, Strategy, sign_order, spot_instrument_id

WETH = "0x" + "aa" * 20
USDC = "0x" + "bb" * 20
WALLET = "0x" + "01" * 20


def _constant(path: str, name: str) -> int:
    source = (contracts_dir() / path).read_text()
    match = re.search(rf"^{name}: constant\(uint256\) = ([0-9_]+)", source, re.MULTILINE)
    assert match is not None, f"{name} not found in contracts/{path}"
    return int(match.group(1).replace("_", ""))


def test_bounds_match_contract_sources() -> None:
    assert _constant("lib/orders.vy", "MAX_LEGS") == abi.MAX_LEGS
    assert _constant("Settlement.vy", "MAX_ORDERS") == abi.MAX_ORDERS
    assert _constant("Settlement.vy", "MAX_STRATEGIES") == abi.MAX_STRATEGIES
    assert _constant("Settlement.vy", "MAX_SWAPS") == abi.MAX_SWAPS
    assert _constant("Settlement.vy", "MAX_BATCH_INSTRUMENTS") == abi.MAX_BATCH_INSTRUMENTS


def _signature() -> bytes:
    order = Order(b"\x00" * 32, True, 1, 1, 1, 1)
    return sign_order(order, b"\x01" * 32, 1, WALLET)


def test_signature_struct_is_v_r_s() -> None:
    sig = _signature()
    assert abi.signature_struct(sig) == (sig[64], sig[:32], sig[32:64])
    with pytest.raises(ValueError):
        abi.signature_struct(b"\x00" * 65)


def test_builder_interns_instruments_and_checks_preimages() -> None:
    spot = abi.Instrument.spot(WETH, USDC)
    assert spot.id == spot_instrument_id(WETH, USDC)
    call = abi.Instrument.option(WETH, USDC, 3_000 * 10**6, 2**40, True)
    put = abi.Instrument.option(WETH, USDC, 3_000 * 10**6, 2**40, False)
    sig = _signature()
    order = Order(spot.id, True, 10**18, 3_000 * 10**6, 1, 2**40)
    strategy = Strategy((Leg(call.id, True, 1), Leg(put.id, True, 1)), 10**18, 50, 2, 2**40)
    builder = abi.BatchBuilder(5)
    builder.add_order(WALLET, spot, order, sig, 10**18, 3_000 * 10**6)
    builder.add_order(WALLET, spot, order, sig, 1, 0)
    builder.add_strategy(WALLET, [call, put], strategy, sig, 10**18, [30, 20])
    builder.add_swap(WALLET, WETH, 1, 2)
    batch_id, instruments, orders, strategies, swaps = builder.build()
    assert batch_id == 5
    assert instruments == [spot.as_tuple(), call.as_tuple(), put.as_tuple()]
    assert [o[1] for o in orders] == [0, 0]
    assert orders[0][7] == abi.signature_struct(sig)
    assert [leg[0] for leg in strategies[0][1]] == [1, 2]
    assert [leg[3] for leg in strategies[0][1]] == [30, 20]
    assert len(swaps) == 1

    with pytest.raises(ValueError, match="preimage"):
        builder.add_order(WALLET, call, order, sig, 1, 1)
    one = Strategy((Leg(call.id, True, 1),), 1, 0, 0, 2**40)
    with pytest.raises(ValueError, match="legs"):
        builder.add_strategy(WALLET, [call], one, sig, 1, [0])
    with pytest.raises(ValueError, match="one instrument and one quote"):
        builder.add_strategy(WALLET, [call], strategy, sig, 1, [0, 0])


def test_quote_amount_rounds_down() -> None:
    assert abi.quote_amount(10**18, 3_000 * 10**6, 18) == 3_000 * 10**6
    assert abi.quote_amount(1, 3_000 * 10**6, 18) == 0
    assert abi.quote_amount(333_333_333_333_333_333, 3_000 * 10**6, 18) == 999_999_999
