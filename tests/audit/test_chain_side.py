"""The chain side of the audit on its own: whose signature counts (the wallet owner's, or
what an EIP-1271 owner contract accepts), and a fill settled behind the gateway's back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner
from web3 import Web3

from gateway.chain import settlement_abi as abi
from gateway.chain import tokens
from gateway.chain.artifacts import compile_contract
from gateway.chain.deploy import create_wallet
from gateway.chain.transactions import Sender, bind
from gateway.cli import app
from gateway.settlement import eip712
from gateway.settlement.audit_chain import ChainAuditor
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

    def sig(signature: bytes) -> dict[str, Any]:
        return {"r": signature[:32], "s": signature[32:64], "v": signature[64]}

    wallet = settled_world.buyer_wallet
    assert auditor.signature_problems(digest, sig(own), wallet, block) == []
    [problem] = auditor.signature_problems(digest, sig(other), wallet, block)
    assert problem == (
        f"signature recovers to {settled_world.seller.address}, not the wallet owner "
        f"{settled_world.buyer.address}"
    )
    # an address that is no wallet vouches for nothing
    [problem] = auditor.signature_problems(digest, sig(own), settled_world.buyer.address, block)
    assert "has no owner()" in problem


def test_an_eip1271_owner_vouches_through_is_valid_signature(scratch: SettledWorld) -> None:
    _, wallet = _owned_by_contract(scratch)
    auditor = ChainAuditor(scratch.w3, scratch.d.settlement)
    block = int(scratch.w3.eth.block_number)
    digest = Web3.keccak(text="an order")

    def sig(signature: bytes) -> dict[str, Any]:
        return {"r": signature[:32], "s": signature[32:64], "v": signature[64]}

    accepted = sig(eip712.sign_digest(digest, scratch.buyer.key))
    assert auditor.signature_problems(digest, accepted, wallet, block) == []
    refused = sig(eip712.sign_digest(digest, scratch.seller.key))
    [problem] = auditor.signature_problems(digest, refused, wallet, block)
    assert "EIP-1271" in problem


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
    code, report = verify("--db", scratch.copy_database(tmp_path))
    assert code == 1
    unknown = [f for f in report["fills"] if not f["ok"]]
    assert [f["batch_id"] for f in unknown] == ["424242", "424242"]
    assert all(f["problems"] == ["not known to the gateway's store"] for f in unknown)
