"""Hypothesis strategies for Isthmus EIP-712 types (shared by the chain tests)."""

from __future__ import annotations

from hypothesis import strategies as st

from gateway.settlement import eip712
from gateway.settlement.eip712 import Leg, Order, Strategy

UINT256 = st.integers(min_value=0, max_value=2**256 - 1)
UINT64 = st.integers(min_value=0, max_value=2**64 - 1)
INT256 = st.integers(min_value=-(2**255), max_value=2**255 - 1)
BYTES32 = st.binary(min_size=32, max_size=32)
ADDRESS = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
CHAIN_ID = st.integers(min_value=1, max_value=2**64)
PRIVATE_KEY = st.integers(min_value=1, max_value=eip712.SECP256K1_N - 1).map(
    lambda k: k.to_bytes(32, "big")
)

orders = st.builds(Order, BYTES32, st.booleans(), UINT256, UINT256, UINT256, UINT64)
legs = st.builds(Leg, BYTES32, st.booleans(), UINT256)


def strategies_with(max_legs: int) -> st.SearchStrategy[Strategy]:
    return st.builds(
        Strategy,
        st.lists(legs, min_size=0, max_size=max_legs).map(tuple),
        UINT256,
        INT256,
        UINT256,
        UINT64,
    )


strategies = strategies_with(6)
