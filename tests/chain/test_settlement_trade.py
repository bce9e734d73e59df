"""Orders signed by anvil's eth_signTypedData_v4 and by us settle through Settlement."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractLogicError

from gateway.chain import settlement_abi as abi
from gateway.chain import tokens, uniswap
from gateway.chain.anvil import Anvil, rpc_call
from gateway.chain.deploy import (
    WALLET_SEED_UNIT,
    Deployment,
    create_wallet,
    deploy_all,
    settlement_contract,
    wallet_contract,
)
from gateway.chain.transactions import Sender, event_logs
from gateway.settlement import eip712
from gateway.settlement.eip712 import Order

pytestmark = pytest.mark.chain

PRICE = 3_000 * 10**6  # USDC per WETH


@dataclass
class World:
    w3: Web3
    operator: Sender
    deployment: Deployment
    buyer: LocalAccount
    seller: LocalAccount
    buyer_wallet: str
    seller_wallet: str
    spot: abi.Instrument


@pytest.fixture
def world(w3: Web3, deployer: Sender, anvil_node: Anvil, fresh_chain: Web3) -> World:
    deployment = deploy_all(deployer)
    buyer, seller = anvil_node.dev_accounts()[1:3]
    buyer_wallet = create_wallet(deployer, deployment, buyer.address)
    seller_wallet = create_wallet(deployer, deployment, seller.address)
    tokens.mint(deployer, deployment.usdc, buyer_wallet, 100_000 * 10**6)
    tokens.mint(deployer, deployment.weth, seller_wallet, 10 * 10**18)
    return World(
        w3,
        deployer,
        deployment,
        buyer,
        seller,
        buyer_wallet,
        seller_wallet,
        abi.Instrument.spot(deployment.weth, deployment.usdc),
    )


def _deadline(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"]) + 3600


def test_matched_spot_trade_settles(world: World, anvil_node: Anvil) -> None:
    w3, d = world.w3, world.deployment
    chain_id = w3.eth.chain_id
    amount = 2 * 10**18
    buy = Order(world.spot.id, True, amount, PRICE, 1, _deadline(w3))
    sell = Order(world.spot.id, False, amount, PRICE, 1, _deadline(w3))
    # the buyer's signature comes from anvil's own EIP-712 implementation
    buy_sig = bytes.fromhex(
        rpc_call(
            anvil_node.rpc_url,
            "eth_signTypedData_v4",
            [world.buyer.address, json.dumps(eip712.typed_data(buy, chain_id, world.buyer_wallet))],
        ).removeprefix("0x")
    )
    assert buy_sig == eip712.sign_order(buy, world.buyer.key, chain_id, world.buyer_wallet)
    sell_sig = eip712.sign_order(sell, world.seller.key, chain_id, world.seller_wallet)

    quote = abi.quote_amount(amount, PRICE, 18)
    batch = (
        abi.BatchBuilder(7)
        .add_order(world.buyer_wallet, world.spot, buy, buy_sig, amount, quote)
        .add_order(world.seller_wallet, world.spot, sell, sell_sig, amount, quote)
        .build()
    )
    settlement = settlement_contract(w3, d)
    receipt = world.operator.transact(settlement.functions.settle(batch))

    # each wallet also holds the unit of each token the factory seeded it with
    seed = WALLET_SEED_UNIT
    assert tokens.balance_of(w3, d.weth, world.buyer_wallet) == seed + amount
    assert tokens.balance_of(w3, d.usdc, world.buyer_wallet) == seed + 100_000 * 10**6 - quote
    assert tokens.balance_of(w3, d.weth, world.seller_wallet) == seed + 10 * 10**18 - amount
    assert tokens.balance_of(w3, d.usdc, world.seller_wallet) == seed + quote
    assert tokens.balance_of(w3, d.usdc, d.settlement) == 0

    fills = event_logs(settlement, "Fill", receipt)
    assert [(f["args"]["digest"], f["args"]["amount"], f["args"]["quote"]) for f in fills] == [
        (eip712.order_digest(buy, chain_id, world.buyer_wallet), amount, quote),
        (eip712.order_digest(sell, chain_id, world.seller_wallet), amount, quote),
    ]
    (settled,) = event_logs(settlement, "BatchSettled", receipt)
    assert (settled["args"]["batch_id"], settled["args"]["orders"]) == (7, 2)
    assert wallet_contract(w3, world.buyer_wallet).functions.nonce_used(1).call()
    assert wallet_contract(w3, world.seller_wallet).functions.remaining(sell.as_tuple()).call() == 0


def test_signature_for_another_wallet_is_rejected(world: World) -> None:
    """A signature is bound to its wallet: the buyer's order signed for the seller's wallet
    domain does not verify in the buyer's wallet, and the whole batch reverts."""
    w3 = world.w3
    chain_id = w3.eth.chain_id
    amount = 10**18
    buy = Order(world.spot.id, True, amount, PRICE, 2, _deadline(w3))
    sell = Order(world.spot.id, False, amount, PRICE, 2, _deadline(w3))
    wrong = eip712.sign_order(buy, world.buyer.key, chain_id, world.seller_wallet)
    sell_sig = eip712.sign_order(sell, world.seller.key, chain_id, world.seller_wallet)
    quote = abi.quote_amount(amount, PRICE, 18)
    batch = (
        abi.BatchBuilder(8)
        .add_order(world.buyer_wallet, world.spot, buy, wrong, amount, quote)
        .add_order(world.seller_wallet, world.spot, sell, sell_sig, amount, quote)
        .build()
    )
    settlement = settlement_contract(w3, world.deployment)
    with pytest.raises(ContractLogicError, match="wallet: bad signature"):
        world.operator.transact(settlement.functions.settle(batch))


def test_buy_routed_to_the_uniswap_pair(world: World) -> None:
    """One signed buy filled by the real Uniswap v2 pair inside the settlement transaction."""
    w3, d = world.w3, world.deployment
    chain_id = w3.eth.chain_id
    reserves = uniswap.get_reserves(w3, d.weth_usdc_pair)
    usdc_in = 3_100 * 10**6
    weth_out = uniswap.amount_out(usdc_in, reserves.of(d.usdc), reserves.of(d.weth))
    limit = usdc_in * 10**18 // weth_out + 1  # the buyer's limit covers the AMM price
    buy = Order(world.spot.id, True, weth_out, limit, 3, _deadline(w3))
    sig = eip712.sign_order(buy, world.buyer.key, chain_id, world.buyer_wallet)
    batch = (
        abi.BatchBuilder(9)
        .add_order(world.buyer_wallet, world.spot, buy, sig, weth_out, usdc_in)
        .add_swap(d.weth_usdc_pair, d.usdc, usdc_in, weth_out)
        .build()
    )
    world.operator.transact(settlement_contract(w3, d).functions.settle(batch))
    assert tokens.balance_of(w3, d.weth, world.buyer_wallet) == WALLET_SEED_UNIT + weth_out
    after = uniswap.get_reserves(w3, d.weth_usdc_pair)
    assert after.of(d.usdc) == reserves.of(d.usdc) + usdc_in
    assert after.of(d.weth) == reserves.of(d.weth) - weth_out
