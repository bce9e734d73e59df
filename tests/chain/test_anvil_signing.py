"""anvil's own ``eth_signTypedData_v4`` (alloy's EIP-712 encoder) signs exactly what we sign."""

from __future__ import annotations

import json

import pytest
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.chain.anvil import Anvil, rpc_call
from gateway.settlement import eip712
from gateway.settlement.eip712 import Order, Strategy

from .strategies import ADDRESS, orders, strategies

pytestmark = pytest.mark.chain


@pytest.fixture(scope="module")
def signer(anvil_node: Anvil) -> LocalAccount:
    return anvil_node.dev_accounts()[3]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(item=st.one_of(orders, strategies), wallet=ADDRESS, as_string=st.booleans())
def test_anvil_typed_data_signature_equals_ours(
    anvil_node: Anvil, signer: LocalAccount, item: Order | Strategy, wallet: str, as_string: bool
) -> None:
    chain_id = anvil_node.config.chain_id
    payload = eip712.typed_data(item, chain_id, wallet)
    theirs = rpc_call(
        anvil_node.rpc_url,
        "eth_signTypedData_v4",
        [signer.address, json.dumps(payload) if as_string else payload],
    )
    signature = bytes.fromhex(theirs.removeprefix("0x"))
    if isinstance(item, Order):
        ours = eip712.sign_order(item, signer.key, chain_id, wallet)
        recovered = eip712.recover_signer(item, signature, chain_id, wallet)
    else:
        ours = eip712.sign_strategy(item, signer.key, chain_id, wallet)
        recovered = eip712.recover_strategy_signer(item, signature, chain_id, wallet)
    assert signature == ours
    assert recovered == signer.address
