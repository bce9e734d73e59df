"""The published Safe 1.4.1 on anvil: a 2-of-3 Safe is created through the factory, the
offline message hash matches the fallback handler's, EIP-1271 accepts exactly a threshold of
owner signatures over the signed digest, and ``execTransaction`` moves an ERC-20 only with
enough owners."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import vyper
from eth_abi import encode
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils import keccak
from web3 import Web3

from gateway.chain import tokens
from gateway.chain.anvil import Anvil
from gateway.chain.artifacts import ContractArtifact
from gateway.chain.safe import (
    EIP1271_MAGIC_VALUE,
    SafeError,
    SafeInfrastructure,
    create_safe,
    deploy_safe_infrastructure,
    exec_safe_transaction,
    handler_contract,
    is_valid_signature,
    safe_contract,
    safe_domain_separator,
    safe_message_hash,
    sign_safe_message,
)
from gateway.chain.transactions import Sender

pytestmark = pytest.mark.chain

# keccak256("fallback_manager.handler.address"): where FallbackManager keeps the handler
FALLBACK_HANDLER_SLOT = keccak(text="fallback_manager.handler.address")


@dataclass
class SafeWorld:
    w3: Web3
    deployer: Sender
    infra: SafeInfrastructure
    safe: ChecksumAddress
    owners: list[LocalAccount]  # the three owners, 2 must sign
    outsider: LocalAccount


@pytest.fixture
def world(w3: Web3, deployer: Sender, anvil_node: Anvil, fresh_chain: Web3) -> SafeWorld:
    accounts = anvil_node.dev_accounts()
    owners, outsider = accounts[5:8], accounts[8]
    infra = deploy_safe_infrastructure(deployer)
    safe = create_safe(deployer, infra, [o.address for o in owners], threshold=2)
    return SafeWorld(w3, deployer, infra, safe, owners, outsider)


def _keys(*accounts: LocalAccount) -> list[bytes]:
    return [bytes(a.key) for a in accounts]


def test_two_of_three_safe_is_set_up(world: SafeWorld) -> None:
    w3, safe = world.w3, safe_contract(world.w3, world.safe)
    assert w3.eth.get_code(world.safe)
    assert safe.functions.VERSION().call() == "1.4.1"
    assert sorted(safe.functions.getOwners().call()) == sorted(o.address for o in world.owners)
    assert safe.functions.getThreshold().call() == 2
    assert safe.functions.nonce().call() == 0
    handler_word = w3.eth.get_storage_at(world.safe, int.from_bytes(FALLBACK_HANDLER_SLOT, "big"))
    assert Web3.to_checksum_address(handler_word[-20:]) == world.infra.fallback_handler
    assert world.infra == SafeInfrastructure.from_dict(world.infra.to_dict())

    owners = [o.address for o in world.owners]
    other = create_safe(world.deployer, world.infra, owners, threshold=2, salt_nonce=1)
    assert other != world.safe
    with pytest.raises(Exception, match="Create2 call failed"):  # same salt: same address
        create_safe(world.deployer, world.infra, owners, threshold=2)
    with pytest.raises(ValueError, match="threshold"):
        create_safe(world.deployer, world.infra, owners, threshold=4)


def test_message_hash_matches_the_handler(world: SafeWorld) -> None:
    w3 = world.w3
    chain_id = w3.eth.chain_id
    digest = keccak(text="an order the Safe signs")
    ours = safe_message_hash(chain_id, world.safe, digest)

    handler = handler_contract(w3, world.infra.fallback_handler)
    message = encode(["bytes32"], [digest])
    assert handler.functions.getMessageHashForSafe(world.safe, message).call() == ours
    # the same through the Safe's fallback (the handler sees the Safe as msg.sender)
    assert handler_contract(w3, world.safe).functions.getMessageHash(message).call() == ours
    assert safe_contract(w3, world.safe).functions.domainSeparator().call() == (
        safe_domain_separator(chain_id, world.safe)
    )
    # bound to the chain and to the Safe
    assert safe_message_hash(chain_id + 1, world.safe, digest) != ours
    assert safe_message_hash(chain_id, world.infra.singleton, digest) != ours


def _raw_is_valid_signature(w3: Web3, safe: str, digest: bytes, signature: bytes) -> bytes:
    """``eth_call`` of EIP-1271 on the Safe, without the module's helper."""
    fn = handler_contract(w3, safe).get_function_by_signature("isValidSignature(bytes32,bytes)")
    return bytes(fn(digest, signature).call())


def test_eip1271_needs_threshold_owner_signatures_over_the_digest(world: SafeWorld) -> None:
    w3 = world.w3
    chain_id = w3.eth.chain_id
    digest = keccak(text="sell 1 WETH at 3000 USDC")
    message_hash = safe_message_hash(chain_id, world.safe, digest)
    a, b, c = world.owners

    two = sign_safe_message(_keys(a, c), message_hash)
    assert len(two) == 130
    assert sign_safe_message([Web3.to_hex(c.key), bytes(a.key)], message_hash) == two  # hex keys
    assert _raw_is_valid_signature(w3, world.safe, digest, two) == EIP1271_MAGIC_VALUE
    assert is_valid_signature(w3, world.safe, digest, two)
    assert is_valid_signature(
        w3, world.safe, digest, sign_safe_message(_keys(c, b, a), message_hash)
    )

    # one owner is below the threshold
    assert not is_valid_signature(w3, world.safe, digest, sign_safe_message(_keys(b), message_hash))
    # two owners, but over another digest's hash
    other = safe_message_hash(chain_id, world.safe, keccak(text="sell 2 WETH"))
    assert not is_valid_signature(w3, world.safe, digest, sign_safe_message(_keys(a, b), other))
    # an outsider does not count as the second owner
    outsider = sign_safe_message(_keys(a, world.outsider), message_hash)
    assert not is_valid_signature(w3, world.safe, digest, outsider)
    # owners' signatures out of address order are rejected (that is how the Safe counts)
    unsorted = two[65:] + two[:65]
    assert not is_valid_signature(w3, world.safe, digest, unsorted)


def test_eip1271_through_staticcall(world: SafeWorld) -> None:
    """A contract verifying a Safe's order does so with STATICCALL: the Safe's fallback
    forwards with a value-less CALL and writes nothing, so it must work in a static frame."""
    source = """
# pragma version ~=0.4.3
interface IERC1271:
    def isValidSignature(digest: bytes32, signature: Bytes[1024]) -> bytes4: view

@external
@view
def check(safe: address, digest: bytes32, signature: Bytes[1024]) -> bytes4:
    return staticcall IERC1271(safe).isValidSignature(digest, signature)
"""
    out = vyper.compile_code(source, output_formats=["abi", "bytecode"])
    probe = world.deployer.deploy(
        ContractArtifact("Probe", out["abi"], Web3.to_bytes(hexstr=out["bytecode"]))
    )
    digest = keccak(text="static")
    message_hash = safe_message_hash(world.w3.eth.chain_id, world.safe, digest)
    a, b, _ = world.owners
    two = sign_safe_message(_keys(a, b), message_hash)
    assert bytes(probe.functions.check(world.safe, digest, two).call()) == EIP1271_MAGIC_VALUE

    calldata = (
        handler_contract(world.w3, world.safe)
        .get_function_by_signature("isValidSignature(bytes32,bytes)")(digest, two)
        ._encode_transaction_data()
    )
    gas = world.w3.eth.estimate_gas({"to": world.safe, "data": calldata})
    assert 21_000 < gas < 100_000


def test_exec_transaction_moves_erc20_with_two_of_three(world: SafeWorld) -> None:
    w3, deployer = world.w3, world.deployer
    usdc = tokens.deploy_token(deployer, tokens.USDC)
    tokens.mint(deployer, usdc.address, world.safe, 1_000 * 10**6)
    recipient = world.outsider.address
    transfer = usdc.functions.transfer(recipient, 250 * 10**6)._encode_transaction_data()
    data = Web3.to_bytes(hexstr=transfer)
    a, b, c = world.owners
    safe = safe_contract(w3, world.safe)

    # the deployer submits and pays gas; it is not an owner
    exec_safe_transaction(deployer, world.safe, usdc.address, data, _keys(c, a))
    assert tokens.balance_of(w3, usdc.address, recipient) == 250 * 10**6
    assert tokens.balance_of(w3, usdc.address, world.safe) == 750 * 10**6
    assert safe.functions.nonce().call() == 1

    with pytest.raises(SafeError, match="GS020"):  # one owner of two needed
        exec_safe_transaction(deployer, world.safe, usdc.address, data, _keys(b))
    with pytest.raises(SafeError, match="GS026"):  # an outsider is no owner
        exec_safe_transaction(deployer, world.safe, usdc.address, data, _keys(b, world.outsider))
    too_much = usdc.functions.transfer(recipient, 10_000 * 10**6)._encode_transaction_data()
    with pytest.raises(SafeError, match="GS013"):  # the token transfer itself fails
        exec_safe_transaction(
            deployer, world.safe, usdc.address, Web3.to_bytes(hexstr=too_much), _keys(a, b)
        )
    assert tokens.balance_of(w3, usdc.address, recipient) == 250 * 10**6
    assert safe.functions.nonce().call() == 1

    # the deployer's nonce survived the rejected attempts: it can still send
    exec_safe_transaction(deployer, world.safe, usdc.address, data, _keys(a, b))
    assert tokens.balance_of(w3, usdc.address, recipient) == 500 * 10**6
    assert safe.functions.nonce().call() == 2
