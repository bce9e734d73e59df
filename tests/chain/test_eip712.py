"""Pure-Python checks of gateway.settlement.eip712 against eth_account's independent encoder."""

from __future__ import annotations

import json

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.settlement import eip712
from gateway.settlement.eip712 import Order, Strategy

from .strategies import ADDRESS, CHAIN_ID, PRIVATE_KEY, orders, strategies


def _eth_account_hash(payload: dict[str, object]) -> bytes:
    signable = encode_typed_data(full_message=payload)
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


@settings(max_examples=200, deadline=None)
@given(order=orders, chain_id=CHAIN_ID, wallet=ADDRESS)
def test_order_digest_matches_eth_account(order: Order, chain_id: int, wallet: str) -> None:
    payload = eip712.typed_data(order, chain_id, wallet)
    assert eip712.order_digest(order, chain_id, wallet) == _eth_account_hash(payload)


@settings(max_examples=200, deadline=None)
@given(strategy=strategies, chain_id=CHAIN_ID, wallet=ADDRESS)
def test_strategy_digest_matches_eth_account(
    strategy: Strategy, chain_id: int, wallet: str
) -> None:
    payload = eip712.typed_data(strategy, chain_id, wallet)
    assert eip712.strategy_digest(strategy, chain_id, wallet) == _eth_account_hash(payload)


@settings(max_examples=50, deadline=None)
@given(order=orders, chain_id=CHAIN_ID, wallet=ADDRESS, key=PRIVATE_KEY)
def test_sign_order_matches_eth_account_and_recovers(
    order: Order, chain_id: int, wallet: str, key: bytes
) -> None:
    sig = eip712.sign_order(order, key, chain_id, wallet)
    account = Account.from_key(key)
    theirs = Account.sign_typed_data(key, full_message=eip712.typed_data(order, chain_id, wallet))
    assert sig == bytes(theirs.signature)
    _r, s, v = eip712.split_signature(sig)
    assert s <= eip712.SECP256K1_N // 2 and v in (27, 28)
    assert eip712.recover_signer(order, sig, chain_id, wallet) == account.address


@settings(max_examples=50, deadline=None)
@given(strategy=strategies, chain_id=CHAIN_ID, wallet=ADDRESS, key=PRIVATE_KEY)
def test_sign_strategy_recovers(strategy: Strategy, chain_id: int, wallet: str, key: bytes) -> None:
    sig = eip712.sign_strategy(strategy, key, chain_id, wallet)
    assert eip712.recover_strategy_signer(strategy, sig, chain_id, wallet) == (
        Account.from_key(key).address
    )


def test_type_strings_and_hashes() -> None:
    assert eip712.ORDER_TYPE == (
        "Order(bytes32 instrument,bool is_buy,uint256 amount,uint256 limit_price,"
        "uint256 nonce,uint64 deadline)"
    )
    assert eip712.STRATEGY_TYPE == (
        "Strategy(Leg[] legs,uint256 amount,int256 limit_net_price,uint256 nonce,uint64 deadline)"
        "Leg(bytes32 instrument,bool is_buy,uint256 ratio)"
    )
    domain = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    assert keccak(text=domain) == eip712.DOMAIN_TYPEHASH


def test_domain_binds_wallet_and_chain() -> None:
    order = Order(b"\x01" * 32, True, 10**18, 3000 * 10**6, 1, 2**40)
    a = "0x" + "11" * 20
    b = "0x" + "22" * 20
    assert eip712.order_digest(order, 1, a) != eip712.order_digest(order, 1, b)
    assert eip712.order_digest(order, 1, a) != eip712.order_digest(order, 2, a)


def test_high_s_and_bad_v_rejected() -> None:
    order = Order(b"\x02" * 32, False, 5, 7, 0, 0)
    key = b"\x01" * 32
    wallet = "0x" + "33" * 20
    sig = eip712.sign_order(order, key, 31337, wallet)
    r, s, v = eip712.split_signature(sig)
    high = r.to_bytes(32, "big") + (eip712.SECP256K1_N - s).to_bytes(32, "big") + bytes([v ^ 1])
    with pytest.raises(eip712.SignatureError):
        eip712.recover_signer(order, high, 31337, wallet)
    with pytest.raises(eip712.SignatureError):
        eip712.recover_signer(order, sig[:64] + bytes([v - 27]), 31337, wallet)
    with pytest.raises(eip712.SignatureError):
        eip712.recover_signer(order, sig[:64], 31337, wallet)


def test_instrument_id_encoding() -> None:
    from eth_abi import encode

    weth = "0x" + "aa" * 20
    usdc = "0x" + "bb" * 20
    spot = eip712.spot_instrument_id(weth, usdc)
    assert spot == keccak(
        encode(
            ["uint8", "address", "address", "uint256", "uint64", "bool"],
            [0, weth, usdc, 0, 0, False],
        )
    )
    call = eip712.option_instrument_id(weth, usdc, 3000 * 10**6, 1_800_000_000, True)
    put = eip712.option_instrument_id(weth, usdc, 3000 * 10**6, 1_800_000_000, False)
    assert len({spot, call, put}) == 3


def test_field_validation() -> None:
    with pytest.raises(ValueError):
        Order(b"\x00" * 31, True, 1, 1, 1, 1)
    with pytest.raises(ValueError):
        Order(b"\x00" * 32, True, -1, 1, 1, 1)
    with pytest.raises(ValueError):
        Order(b"\x00" * 32, True, 1, 1, 1, 2**64)
    with pytest.raises(TypeError):
        Order(b"\x00" * 32, 1, 1, 1, 1, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Strategy((), 1, 2**255, 0, 0)


@settings(max_examples=100, deadline=None)
@given(item=st.one_of(orders, strategies), chain_id=CHAIN_ID, wallet=ADDRESS)
def test_typed_data_round_trips_through_json(
    item: Order | Strategy, chain_id: int, wallet: str
) -> None:
    payload = json.loads(json.dumps(eip712.typed_data(item, chain_id, wallet)))
    if isinstance(item, Order):
        assert eip712.order_from_message(payload["message"]) == item
    else:
        assert eip712.strategy_from_message(payload["message"]) == item


def test_message_parsing_accepts_numbers_and_hex() -> None:
    message = {
        "instrument": "0x" + "ab" * 32,
        "is_buy": False,
        "amount": 5,
        "limit_price": "0x10",
        "nonce": "7",
        "deadline": 99,
    }
    assert eip712.order_from_message(message) == Order(b"\xab" * 32, False, 5, 16, 7, 99)
    with pytest.raises(TypeError):
        eip712.order_from_message({**message, "is_buy": "false"})
    with pytest.raises(ValueError):
        eip712.order_from_message({**message, "amount": "-1"})
