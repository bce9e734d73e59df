"""The Python batch encoder agrees with the contracts' bounds and the instrument ids."""

from __future__ import annotations

import re

import pytest
from web3 import Web3

from gateway.chain import settlement_abi as abi
from gateway.chain.artifacts import compile_contract
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
    assert _constant("Settlement.vy", "MAX_CONTRACT_SIGS") == abi.MAX_CONTRACT_SIGS
    assert _constant("Settlement.vy", "MAX_CONTRACT_SIG") == abi.MAX_CONTRACT_SIG
    assert _constant("wallet/keys.vy", "MAX_CONTRACT_SIG") == abi.MAX_CONTRACT_SIG


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
    batch_id, instruments, orders, strategies, swaps, signatures = builder.build()
    assert batch_id == 5
    assert signatures == []  # every signature here is ECDSA
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


def _safe_signature(owners: int, seed: int) -> bytes:
    """What a Safe's owners hand over: 65 bytes per owner (content does not matter here)."""
    return b"".join(
        Web3.keccak(text=f"{seed}/{i}") + Web3.keccak(text=f"s{seed}/{i}") + b"\x1b"
        for i in range(owners)
    )


def test_contract_signatures_travel_once_in_the_batch_and_decode_back() -> None:
    """Encode a batch mixing ECDSA and EIP-1271 signatures into `settle` calldata with the
    compiled ABI, decode it the way the auditor does, and get every item's bytes back."""
    spot = abi.Instrument.spot(WETH, USDC)
    call = abi.Instrument.option(WETH, USDC, 3_000 * 10**6, 2**40, True)
    put = abi.Instrument.option(WETH, USDC, 3_000 * 10**6, 2**40, False)
    ecdsa = _signature()
    two_of_three, other = _safe_signature(2, 1), _safe_signature(3, 2)
    one_owner = _safe_signature(1, 3)  # a threshold-1 Safe: 65 bytes, said explicitly
    order = Order(spot.id, True, 10**18, 3_000 * 10**6, 1, 2**40)
    strategy = Strategy((Leg(call.id, True, 1), Leg(put.id, True, 1)), 10**18, 50, 2, 2**40)
    signed = [
        (ecdsa, None, False),
        (two_of_three, None, True),
        (other, None, True),
        (two_of_three, None, True),  # the same bytes again: not repeated in the batch
        (one_owner, True, True),
    ]
    builder = abi.BatchBuilder(7)
    for signature, flag, _ in signed:
        builder.add_order(WALLET, spot, order, signature, 1, 3_000, contract_signature=flag)
    builder.add_strategy(WALLET, [call, put], strategy, other, 10**18, [30, 20])
    batch = builder.build()
    assert batch[5] == [two_of_three, other, one_owner]
    assert [o[7] for o in batch[2]] == [
        abi.signature_struct(ecdsa),
        abi.contract_signature_struct(0),
        abi.contract_signature_struct(1),
        abi.contract_signature_struct(0),
        abi.contract_signature_struct(2),
    ]
    assert batch[3][0][6] == abi.contract_signature_struct(1)

    settlement = Web3().eth.contract(abi=compile_contract("Settlement").abi)
    calldata = settlement.encode_abi("settle", args=[batch])
    function, args = settlement.decode_function_input(calldata)
    assert function.fn_name == "settle"
    decoded = args["batch"]
    signatures = [bytes(s) for s in decoded["signatures"]]
    assert signatures == [two_of_three, other, one_owner]
    for item, (signature, _, contract) in zip(decoded["orders"], signed, strict=True):
        assert abi.item_signature(item["sig"], signatures) == (signature, contract)
    assert abi.item_signature(decoded["strategies"][0]["sig"], signatures) == (other, True)
    with pytest.raises(ValueError, match="outside"):
        abi.item_signature(abi.contract_signature_struct(3), signatures)


def test_contract_signature_bounds() -> None:
    spot = abi.Instrument.spot(WETH, USDC)
    order = Order(spot.id, True, 10**18, 3_000 * 10**6, 1, 2**40)
    builder = abi.BatchBuilder(1)
    with pytest.raises(ValueError, match=r"1\.\.520 bytes"):
        builder.add_order(WALLET, spot, order, _safe_signature(9, 0), 1, 1)
    with pytest.raises(ValueError, match=r"1\.\.520 bytes"):
        builder.add_order(WALLET, spot, order, b"", 1, 1)
    for seed in range(abi.MAX_CONTRACT_SIGS):
        builder.add_order(WALLET, spot, order, _safe_signature(2, seed), 1, 1)
    builder.add_order(WALLET, spot, order, _safe_signature(2, 0), 1, 1)  # a repeat: no new slot
    with pytest.raises(ValueError, match="at most 8 contract signatures"):
        builder.add_order(WALLET, spot, order, _safe_signature(2, 99), 1, 1)
    assert len(builder.build()[5]) == abi.MAX_CONTRACT_SIGS
