"""The deployed MarginWallet hashes and verifies exactly what gateway.settlement.eip712 signs.

The wallet here is deployed directly with an anvil dev account as its "settlement", so the
test can call ``apply_order`` / ``apply_strategy`` itself: the wallet verifies the owner's
signature on-chain (and the instrument preimage, limit, nonce) without a Settlement contract.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError

from gateway.chain import settlement_abi as abi
from gateway.chain import tokens
from gateway.chain.anvil import Anvil, rpc_call
from gateway.chain.artifacts import compile_contract
from gateway.chain.signatures import is_valid_signature
from gateway.chain.transactions import Sender
from gateway.settlement import eip712
from gateway.settlement.eip712 import Leg, Order, Strategy

from .strategies import ADDRESS, UINT64, UINT256, orders, strategies_with

ZERO_ADDRESS = "0x" + "00" * 20  # apply_order's pay_to: not a paired trade

pytestmark = pytest.mark.chain

MAX_LEGS = 8  # contracts/lib/orders.vy
EXAMPLES = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def owner(anvil_node: Anvil) -> LocalAccount:
    return anvil_node.dev_accounts()[5]


@pytest.fixture(scope="module")
def fake_settlement(w3: Web3, anvil_node: Anvil) -> Sender:
    return Sender(w3, anvil_node.dev_accounts()[6])


@pytest.fixture(scope="module")
def wallet(
    w3: Web3, deployer: Sender, owner: LocalAccount, fake_settlement: Sender
) -> Iterator[Contract]:
    artifact = compile_contract("MarginWallet")
    yield deployer.deploy(artifact, owner.address, fake_settlement.address)


def test_domain_separator(w3: Web3, wallet: Contract) -> None:
    expected = eip712.domain_separator(w3.eth.chain_id, wallet.address)
    assert wallet.functions.domain_separator().call() == expected


@EXAMPLES
@given(order=orders)
def test_hash_order_matches(w3: Web3, wallet: Contract, order: Order) -> None:
    onchain = wallet.functions.hash_order(order.as_tuple()).call()
    assert onchain == eip712.order_digest(order, w3.eth.chain_id, wallet.address)


@EXAMPLES
@given(strategy=strategies_with(MAX_LEGS))
def test_hash_strategy_matches(w3: Web3, wallet: Contract, strategy: Strategy) -> None:
    onchain = wallet.functions.hash_strategy(strategy.as_tuple()).call()
    assert onchain == eip712.strategy_digest(strategy, w3.eth.chain_id, wallet.address)


def _spot(w3: Web3, deployer: Sender) -> tuple[str, str, bytes, tuple[object, ...]]:
    weth = tokens.deploy_token(deployer, tokens.WETH)
    usdc = tokens.deploy_token(deployer, tokens.USDC)
    instrument = eip712.spot_instrument_id(weth.address, usdc.address)
    preimage = (eip712.KIND_SPOT, weth.address, usdc.address, 0, 0, False)
    return weth.address, usdc.address, instrument, preimage


def test_anvil_signature_accepted_on_chain(
    w3: Web3,
    anvil_node: Anvil,
    deployer: Sender,
    wallet: Contract,
    owner: LocalAccount,
    fake_settlement: Sender,
) -> None:
    """anvil signs with eth_signTypedData_v4; the wallet's ecrecover accepts it in apply_order."""
    _, _, instrument, preimage = _spot(w3, deployer)
    deadline = w3.eth.get_block("latest")["timestamp"] + 3600
    order = Order(instrument, True, 2 * 10**18, 3_000 * 10**6, 77, deadline)
    payload = eip712.typed_data(order, w3.eth.chain_id, wallet.address)
    anvil_sig = rpc_call(
        anvil_node.rpc_url, "eth_signTypedData_v4", [owner.address, json.dumps(payload)]
    )
    signature = bytes.fromhex(anvil_sig.removeprefix("0x"))
    assert signature == eip712.sign_order(order, owner.key, w3.eth.chain_id, wallet.address)

    fill = abi.order_fill(order, signature, 10**18, 3_000 * 10**6)
    call = wallet.functions.apply_order(fill, preimage, False, ZERO_ADDRESS)
    digest = eip712.order_digest(order, w3.eth.chain_id, wallet.address)
    assert call.call({"from": fake_settlement.address}) == [digest, False]  # its own digest
    fake_settlement.transact(call)
    assert wallet.functions.filled(digest).call() == 10**18  # partial fill recorded
    assert wallet.functions.remaining(order.as_tuple()).call() == 10**18


def test_wrong_signer_rejected_on_chain(
    w3: Web3, anvil_node: Anvil, deployer: Sender, wallet: Contract, fake_settlement: Sender
) -> None:
    _, _, instrument, preimage = _spot(w3, deployer)
    deadline = w3.eth.get_block("latest")["timestamp"] + 3600
    order = Order(instrument, False, 10**18, 3_000 * 10**6, 78, deadline)
    stranger = anvil_node.dev_accounts()[7]
    signature = eip712.sign_order(order, stranger.key, w3.eth.chain_id, wallet.address)
    fill = abi.order_fill(order, signature, 10**18, 3_000 * 10**6)
    with pytest.raises(ContractLogicError, match="wallet: bad signature"):
        fake_settlement.transact(wallet.functions.apply_order(fill, preimage, False, ZERO_ADDRESS))


def test_strategy_signature_accepted_on_chain(
    w3: Web3, deployer: Sender, wallet: Contract, owner: LocalAccount, fake_settlement: Sender
) -> None:
    """A two-leg spot strategy (same base/quote) signed by us verifies in apply_strategy."""
    _, _, instrument, preimage = _spot(w3, deployer)
    deadline = w3.eth.get_block("latest")["timestamp"] + 3600
    strategy = Strategy(
        (Leg(instrument, True, 2), Leg(instrument, False, 1)), 10**18, 3_000 * 10**6, 9, deadline
    )
    signature = eip712.sign_strategy(strategy, owner.key, w3.eth.chain_id, wallet.address)
    fill = abi.strategy_fill(strategy, signature, 10**18, [6_000 * 10**6, 3_000 * 10**6])
    call = wallet.functions.apply_strategy(fill, [preimage, preimage], False)
    digest = eip712.strategy_digest(strategy, w3.eth.chain_id, wallet.address)
    assert call.call({"from": fake_settlement.address}) == digest
    fake_settlement.transact(call)
    assert wallet.functions.nonce_used(9).call()  # filled in one go


@pytest.fixture(scope="module")
def settlement(deployer: Sender) -> Contract:
    placeholder = "0x" + "11" * 20
    return deployer.deploy(compile_contract("Settlement"), placeholder, placeholder, 300, 3600)


@EXAMPLES
@given(
    kind=st.integers(min_value=0, max_value=255),
    base=ADDRESS,
    quote=ADDRESS,
    strike=UINT256,
    expiry=UINT64,
    is_call=st.booleans(),
)
def test_instrument_id_matches_settlement(
    settlement: Contract,
    kind: int,
    base: str,
    quote: str,
    strike: int,
    expiry: int,
    is_call: bool,
) -> None:
    onchain = settlement.functions.instrument_id(
        kind,
        Web3.to_checksum_address(base),
        Web3.to_checksum_address(quote),
        strike,
        expiry,
        is_call,
    ).call()
    assert onchain == eip712.instrument_id(kind, base, quote, strike, expiry, is_call)


def test_contract_owner_signs_through_eip1271(
    w3: Web3, anvil_node: Anvil, deployer: Sender, fake_settlement: Sender
) -> None:
    """A wallet owned by a contract accepts only what the contract accepts (EIP-1271), and
    only as a contract signature (v = 0) that its Settlement holds for it: as an ECDSA `sig`
    the signer's signature recovers to an address that is neither the owner nor a trading
    key, and a caller that cannot hand back the bytes (an EOA) settles nothing."""
    signer = anvil_node.dev_accounts()[8]
    owner_contract = deployer.deploy(compile_contract("TestERC1271Signer"), signer.address)
    wallet = deployer.deploy(
        compile_contract("MarginWallet"), owner_contract.address, fake_settlement.address
    )
    _, _, instrument, preimage = _spot(w3, deployer)
    deadline = w3.eth.get_block("latest")["timestamp"] + 3600
    order = Order(instrument, True, 10**18, 3_000 * 10**6, 5, deadline)
    signature = eip712.sign_order(order, signer.key, w3.eth.chain_id, wallet.address)
    digest = eip712.order_digest(order, w3.eth.chain_id, wallet.address)
    assert is_valid_signature(w3, owner_contract.address, digest, signature)
    assert not is_valid_signature(w3, owner_contract.address, digest, b"\x01" * 65)
    assert not is_valid_signature(w3, signer.address, b"\x00" * 32, signature)
    as_ecdsa = abi.order_fill(order, signature, 10**18, 3_000 * 10**6)
    with pytest.raises(ContractLogicError, match="wallet: bad signature"):
        fake_settlement.transact(
            wallet.functions.apply_order(as_ecdsa, preimage, False, ZERO_ADDRESS)
        )
    sig, contract_sig = abi.wallet_signature_args(signature, contract_signature=True)
    assert sig == (0, bytes(32), bytes(32)) and contract_sig == signature
    fill = abi.order_fill(order, signature, 10**18, 3_000 * 10**6, contract_signature=True)
    with pytest.raises(ContractLogicError):
        fake_settlement.transact(wallet.functions.apply_order(fill, preimage, False, ZERO_ADDRESS))
    assert not wallet.functions.nonce_used(5).call()


@EXAMPLES
@given(underlying=ADDRESS, quote=ADDRESS, expiry=UINT64)
def test_series_id_matches_settlement(
    settlement: Contract, underlying: str, quote: str, expiry: int
) -> None:
    onchain = settlement.functions.series_id(
        Web3.to_checksum_address(underlying), Web3.to_checksum_address(quote), expiry
    ).call()
    assert onchain == eip712.series_id(underlying, quote, expiry)
