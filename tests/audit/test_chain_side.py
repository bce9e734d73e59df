"""The chain side of the audit on its own: whose signature counts (the wallet owner's, or
what an EIP-1271 owner contract accepts), and a fill settled behind the gateway's back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from typer.testing import CliRunner
from web3 import Web3

from gateway.chain import settlement_abi as abi
from gateway.chain import tokens
from gateway.chain.artifacts import compile_contract
from gateway.chain.deploy import create_wallet
from gateway.chain.transactions import Sender, bind
from gateway.cli import app
from gateway.devnet.catalogue import OPTION_EXPIRY
from gateway.settlement import eip712
from gateway.settlement.audit_chain import ChainAuditor, SignedBy, SignerCheck
from tests.audit.conftest import USDC, WETH, SettledWorld

pytestmark = pytest.mark.chain


@pytest.fixture
def scratch(settled_world: SettledWorld) -> Iterator[SettledWorld]:
    """The settled world, with whatever the test does on chain reverted afterwards."""
    w3 = settled_world.w3
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        yield settled_world
    finally:
        w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]


def _owned_by_contract(world: SettledWorld) -> tuple[Sender, str]:
    """A MarginWallet whose owner is an EIP-1271 account that the buyer's key controls; and
    the operator's sender (it pays for these and may settle)."""
    deployer = Sender(world.w3, world.settler)
    signer = deployer.deploy(compile_contract("TestERC1271Signer"), world.buyer.address)
    return deployer, create_wallet(deployer, world.d, signer.address)


def test_only_the_wallet_owner_signature_counts(settled_world: SettledWorld) -> None:
    auditor = ChainAuditor(settled_world.w3, settled_world.d.settlement)
    block = int(settled_world.w3.eth.block_number)
    digest = Web3.keccak(text="an order")
    own = eip712.sign_digest(digest, settled_world.buyer.key)
    other = eip712.sign_digest(digest, settled_world.seller.key)

    wallet = settled_world.buyer_wallet
    assert auditor.check_signer(digest, own, wallet, block) == SignerCheck(
        settled_world.buyer.address, SignedBy.OWNER
    )
    [problem] = auditor.check_signer(digest, other, wallet, block).problems
    assert problem == (
        f"signature recovers to {settled_world.seller.address}, neither the wallet owner "
        f"{settled_world.buyer.address} nor a trading key of the wallet at block {block}"
    )
    # an address that is no wallet vouches for nothing
    [problem] = auditor.check_signer(digest, own, settled_world.buyer.address, block).problems
    assert "has no owner()" in problem
    # a contract signature for an EOA-owned wallet is refused, as the wallet refuses it
    [problem] = auditor.check_signer(digest, own, wallet, block, contract_signature=True).problems
    assert "is not a contract" in problem


def test_an_eip1271_owner_vouches_through_is_valid_signature(scratch: SettledWorld) -> None:
    _, wallet = _owned_by_contract(scratch)
    owner = Web3.to_checksum_address(
        bind(scratch.w3, compile_contract("MarginWallet"), wallet).functions.owner().call()
    )
    auditor = ChainAuditor(scratch.w3, scratch.d.settlement)
    block = int(scratch.w3.eth.block_number)
    digest = Web3.keccak(text="an order")

    accepted = eip712.sign_digest(digest, scratch.buyer.key)
    assert auditor.check_signer(
        digest, accepted, wallet, block, contract_signature=True
    ) == SignerCheck(owner, SignedBy.CONTRACT_OWNER)
    refused = eip712.sign_digest(digest, scratch.seller.key)
    [problem] = auditor.check_signer(
        digest, refused, wallet, block, contract_signature=True
    ).problems
    assert "EIP-1271" in problem
    # the same bytes as an ECDSA item: the wallet recovers the buyer's EOA, which is neither
    # its owner (the contract) nor a trading key, and so does the auditor
    [problem] = auditor.check_signer(digest, accepted, wallet, block).problems
    assert f"signature recovers to {scratch.buyer.address}, neither the wallet owner" in problem


def test_a_fill_settled_behind_the_gateways_back_is_proven_on_chain_but_unknown_to_the_store(
    scratch: SettledWorld, tmp_path: Any
) -> None:
    """A batch the operator key sent without the gateway: signed by both owners (one an
    EIP-1271 account), so the chain side proves it, and the store side flags it."""
    deployer, wallet = _owned_by_contract(scratch)
    tokens.mint(Sender(scratch.w3, scratch.owner), scratch.d.usdc, wallet, 1_000 * USDC)
    w3 = scratch.w3
    chain_id = w3.eth.chain_id
    ins = abi.Instrument.spot(scratch.d.weth, scratch.d.usdc)
    deadline = int(w3.eth.get_block("latest")["timestamp"]) + 600
    amount, price = WETH // 10, 3000 * USDC
    quote = abi.quote_amount(amount, price, 18)
    buy = eip712.Order(ins.id, True, amount, price, 777, deadline)
    sell = eip712.Order(ins.id, False, amount, price, 778, deadline)
    batch = (
        abi.BatchBuilder(424242)
        .add_order(
            wallet,
            ins,
            buy,
            eip712.sign_order(buy, scratch.buyer.key, chain_id, wallet),
            amount,
            quote,
            contract_signature=True,  # TestERC1271Signer takes one 65-byte ECDSA signature
        )
        .add_order(
            scratch.seller_wallet,
            ins,
            sell,
            eip712.sign_order(sell, scratch.seller.key, chain_id, scratch.seller_wallet),
            amount,
            quote,
        )
        .build()
    )
    settlement = bind(w3, compile_contract("Settlement"), scratch.d.settlement)
    deployer.transact(settlement.functions.settle(batch))

    def verify(*extra: str) -> tuple[int, dict[str, Any]]:
        result = CliRunner().invoke(
            app,
            [
                "audit",
                "verify",
                "--rpc",
                scratch.rpc_url,
                "--settlement",
                scratch.d.settlement,
                "--json",
                *extra,
            ],
        )
        return result.exit_code, json.loads(result.stdout)

    code, report = verify()
    assert code == 0 and report["ok"] and report["counts"]["fills"] == 10
    outside = [f for f in report["fills"] if f["batch_id"] == "424242"]
    assert {f["wallet"] for f in outside} == {wallet, scratch.seller_wallet}
    signers = {f["wallet"]: (f["signed_by"], f["signer"]) for f in outside}
    owner_contract = bind(w3, compile_contract("MarginWallet"), wallet).functions.owner().call()
    assert signers == {
        wallet: ("contract_owner", owner_contract),
        scratch.seller_wallet: ("owner", scratch.seller.address),
    }
    code, report = verify("--db", scratch.copy_database(tmp_path))
    assert code == 1
    unknown = [f for f in report["fills"] if not f["ok"]]
    assert [f["batch_id"] for f in unknown] == ["424242", "424242"]
    assert all(f["problems"] == ["not known to the gateway's store"] for f in unknown)


def test_a_key_signed_fill_is_accepted_and_judged_at_its_block(scratch: SettledWorld) -> None:
    """The seller's wallet authorises a trading key for spot only, up to 1,000 USDC per
    order; a sell the key signed settles and the audit accepts it, naming the key. The same
    signature is flagged at a block before the key was authorised, for an instrument outside
    its scope, over its maximum, and after the owner took spot out of its scope."""
    w3, d = scratch.w3, scratch.d
    chain_id = w3.eth.chain_id
    key = Account.from_key(Web3.keccak(text="audit/trading-key"))
    seller = Sender(w3, scratch.seller)
    seller_wallet = bind(w3, compile_contract("MarginWallet"), scratch.seller_wallet)
    spot = abi.Instrument.spot(d.weth, d.usdc)
    call = eip712.option_instrument_id(
        d.weth, d.usdc, 3000 * USDC, int(OPTION_EXPIRY.timestamp()), True
    )
    now = int(w3.eth.get_block("latest")["timestamp"])
    authorised = seller.transact(
        seller_wallet.functions.authorise_key(
            key.address, now + 86_400, False, 1_000 * USDC, [spot.id]
        )
    )["blockNumber"]

    amount, price = WETH // 10, 3000 * USDC  # notional 300 USDC
    quote = abi.quote_amount(amount, price, 18)
    sell = eip712.Order(spot.id, False, amount, price, 901, now + 600)
    buy = eip712.Order(spot.id, True, amount, price, 902, now + 600)
    key_signature = eip712.sign_order(sell, key.key, chain_id, scratch.seller_wallet)
    batch = (
        abi.BatchBuilder(515151)
        .add_order(scratch.seller_wallet, spot, sell, key_signature, amount, quote)
        .add_order(
            scratch.buyer_wallet,
            spot,
            buy,
            eip712.sign_order(buy, scratch.buyer.key, chain_id, scratch.buyer_wallet),
            amount,
            quote,
        )
        .build()
    )
    settlement = bind(w3, compile_contract("Settlement"), d.settlement)
    settled = Sender(w3, scratch.settler).transact(settlement.functions.settle(batch))
    block = int(settled["blockNumber"])

    auditor = ChainAuditor(w3, d.settlement)
    audit = auditor.audit(from_block=block, to_block=block)
    by_wallet = {f.wallet: f for f in audit.fills}
    assert audit.problems == () and all(f.ok for f in audit.fills), audit
    assert (
        by_wallet[scratch.seller_wallet].signed_by,
        by_wallet[scratch.seller_wallet].signer,
    ) == (
        SignedBy.TRADING_KEY,
        key.address,
    )
    assert by_wallet[scratch.buyer_wallet].signed_by == SignedBy.OWNER

    digest = eip712.order_digest(sell, chain_id, scratch.seller_wallet)

    def problems(
        at: int, instruments: tuple[bytes, ...] = (spot.id,), notional: int = 0
    ) -> list[str]:
        check = auditor.check_signer(
            digest,
            key_signature,
            scratch.seller_wallet,
            at,
            instruments=instruments,
            notional=notional or quote,
        )
        return list(check.problems)

    assert problems(block) == []
    [before] = problems(authorised - 1)
    assert f"neither the wallet owner {scratch.seller.address} nor a trading key" in before
    [scope] = problems(block, (spot.id, call))
    assert f"may not trade instrument {Web3.to_hex(call)}" in scope
    [limit] = problems(block, notional=1_000 * USDC + 1)
    assert f"over trading key {key.address}'s maximum {1_000 * USDC}" in limit

    # the owner takes spot out of the key's scope: the settled fill still passes at its block
    seller.transact(seller_wallet.functions.set_key_instrument(key.address, spot.id, False))
    later = int(w3.eth.block_number)
    [out_of_scope] = problems(later)
    assert f"may not trade instrument {Web3.to_hex(spot.id)} (at block {later})" in out_of_scope
    assert all(f.ok for f in auditor.audit(from_block=block, to_block=block).fills)
    # revoked: its signatures count for nothing from then on
    seller.transact(seller_wallet.functions.revoke_key(key.address))
    [revoked] = problems(int(w3.eth.block_number))
    assert "nor a trading key" in revoked
