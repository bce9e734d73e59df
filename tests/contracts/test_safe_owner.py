"""A 2-of-3 Safe (the published Safe 1.4.1 contracts) owns a MarginWallet: the cold multisig
signs an order through EIP-1271 with Safe's own message scheme, withdraws through a Safe
transaction, and one owner alone can neither trade nor withdraw."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boa
import pytest
from eth_utils import keccak

from gateway.chain.safe import safe_message_hash, sign_safe_message
from tests.contracts.conftest import (
    USDC,
    WETH,
    ContractSig,
    Key,
    Trader,
    World,
    batch,
    order_item,
)

SAFE_BUILD = (
    Path(__file__).resolve().parents[2]
    / "node_modules"
    / "@safe-global"
    / "safe-contracts"
    / "build"
    / "artifacts"
    / "contracts"
)
ZERO = "0x" + "00" * 20
PRICE = 3_000 * USDC


def _artifact(relative: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAFE_BUILD / relative).read_text())
    return data


def _deploy(relative: str, name: str) -> Any:
    art = _artifact(relative)
    address, _ = boa.env.deploy_code(bytecode=bytes.fromhex(art["bytecode"].removeprefix("0x")))
    return boa.loads_abi(json.dumps(art["abi"]), name=name).at(address)


@pytest.fixture(scope="module")
def safe_factory() -> tuple[Any, Any, Any]:
    singleton = _deploy("Safe.sol/Safe.json", "Safe")
    proxies = _deploy("proxies/SafeProxyFactory.sol/SafeProxyFactory.json", "SafeProxyFactory")
    handler = _deploy(
        "handler/CompatibilityFallbackHandler.sol/CompatibilityFallbackHandler.json",
        "CompatibilityFallbackHandler",
    )
    return singleton, proxies, handler


def new_safe(safe_factory: tuple[Any, Any, Any], owners: list[Key], salt: int) -> Any:
    singleton, proxies, handler = safe_factory
    setup = singleton.setup.prepare_calldata(
        [k.address for k in owners], 2, ZERO, b"", handler.address, ZERO, 0, ZERO
    )
    proxies.createProxyWithNonce(singleton.address, setup, salt)
    address = proxies.get_logs()[-1].proxy
    return boa.loads_abi(json.dumps(_artifact("Safe.sol/Safe.json")["abi"]), name="Safe").at(
        address
    )


def exec_safe(safe: Any, signers: list[Key], to: str, data: bytes) -> Any:
    nonce = safe.nonce()
    tx_hash = bytes(safe.getTransactionHash(to, 0, data, 0, 0, 0, 0, ZERO, ZERO, nonce))
    signatures = sign_safe_message([k.private.to_bytes() for k in signers], tx_hash)
    return safe.execTransaction(to, 0, data, 0, 0, 0, 0, ZERO, ZERO, signatures)


@pytest.fixture
def multisig(world: World, safe_factory) -> tuple[Any, Trader, list[Key]]:
    owners = [Key(400), Key(401), Key(402)]
    safe = new_safe(safe_factory, owners, salt=boa.env.evm.patch.timestamp)
    wallet = world.wallet_deployer.at(world.factory.create_wallet_for(safe.address))
    trader = Trader(owners[0], wallet)  # the Key is only used for nonces here
    world.traders.append(trader)
    world.fund(trader, weth=3 * WETH)
    return safe, trader, owners


def safe_signature(world: World, safe: Any, digest: bytes, signers: list[Key]) -> ContractSig:
    message = safe_message_hash(boa.env.evm.patch.chain_id, safe.address, digest)
    return ContractSig(sign_safe_message([k.private.to_bytes() for k in signers], message))


def test_two_of_three_safe_signs_an_order_that_settles(world: World, multisig) -> None:
    safe, trader, owners = multisig
    assert trader.wallet.owner() == safe.address and safe.getThreshold() == 2
    buyer = world.new_trader(403, usdc=10_000 * USDC)
    os_ = trader.order(world.spot, False, WETH, PRICE)
    ob = buyer.order(world.spot, True, WETH, PRICE)
    digest = bytes(trader.wallet.hash_order(os_))
    sig = safe_signature(world, safe, digest, owners[:2])
    assert len(sig) == 130
    world.settle(
        batch(
            [
                order_item(trader, world.spot, os_, WETH, PRICE, signature=sig),
                order_item(buyer, world.spot, ob, WETH, PRICE),
            ]
        )
    )
    assert world.usdc.balanceOf(trader.wallet.address) == PRICE
    assert world.weth.balanceOf(trader.wallet.address) == 2 * WETH


def test_one_safe_owner_alone_cannot_trade(world: World, multisig) -> None:
    safe, trader, owners = multisig
    buyer = world.new_trader(404, usdc=10_000 * USDC)
    os_ = trader.order(world.spot, False, WETH, PRICE)
    ob = buyer.order(world.spot, True, WETH, PRICE)
    digest = bytes(trader.wallet.hash_order(os_))
    items = [
        order_item(trader, world.spot, os_, WETH, PRICE),
        order_item(buyer, world.spot, ob, WETH, PRICE),
    ]
    # one owner's Safe signature, or its plain ECDSA over the digest: both refused
    for sig in (
        safe_signature(world, safe, digest, owners[:1]),
        owners[0].sign(digest),
        safe_signature(world, safe, keccak(b"another order"), owners[:2]),
    ):
        items[0] = order_item(trader, world.spot, os_, WETH, PRICE, signature=sig)
        with boa.reverts():
            world.settle(batch(items))
    assert world.weth.balanceOf(trader.wallet.address) == 3 * WETH


def test_safe_withdraws_through_a_safe_transaction(world: World, multisig) -> None:
    safe, trader, owners = multisig
    data = trader.wallet.withdraw.prepare_calldata(world.weth.address, WETH)
    # one owner alone: the Safe refuses (GS020, not enough signatures)
    with boa.reverts():
        exec_safe(safe, owners[:1], trader.wallet.address, data)
    # an owner calling the wallet directly is not its owner
    with boa.env.prank(owners[0].address), boa.reverts("wallet: not owner"):
        trader.wallet.withdraw(world.weth.address, WETH)
    exec_safe(safe, [owners[0], owners[2]], trader.wallet.address, data)
    assert world.weth.balanceOf(safe.address) == WETH
    assert world.weth.balanceOf(trader.wallet.address) == 2 * WETH
