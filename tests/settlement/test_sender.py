"""SettlementSender against anvil and the real contracts: simulate, bisect, replace, confirm."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from eth_utils import keccak
from web3 import Web3

from gateway.chain import settlement_abi as abi
from gateway.chain import tokens, uniswap
from gateway.chain.deploy import WALLET_SEED_UNIT, create_wallet, settlement_contract
from gateway.chain.safe import create_safe, safe_message_hash, sign_safe_message
from gateway.chain.transactions import Sender, event_logs
from gateway.settlement import eip712
from gateway.settlement.batch_builder import batch_id_from_key
from gateway.settlement.eip712 import Order
from gateway.settlement.items import OrderSettlement, SettlementGroup, SwapSettlement
from gateway.settlement.sender import BatchStatus, FeePolicy, SendProgress, Stage
from tests.settlement.conftest import PRICE, WETH, SettlementWorld, until

pytestmark = pytest.mark.chain


def test_matched_trade_settles_and_maps_items_to_logs(world: SettlementWorld) -> None:
    group = world.trade("t1")
    result = asyncio.run(world.sender().settle(batch_id_from_key("batch-1"), [group]))
    sent = result.batch
    assert sent is not None and result.rejected == () and result.deferred == ()
    assert sent.status is BatchStatus.CONFIRMED
    receipt = world.w3.eth.get_transaction_receipt(HexStr(sent.tx_hash))
    assert Web3.to_hex(receipt["blockHash"]) == sent.block_hash
    assert sent.gas_used == receipt["gasUsed"]
    # one paired trade: settle_pairs logs one Traded for both orders
    settlement = settlement_contract(world.w3, world.deployment)
    (traded,) = event_logs(settlement, "Traded", receipt)
    chain_id = world.w3.eth.chain_id
    buy, sell = group.orders
    assert (bytes(traded["args"]["buy"]), bytes(traded["args"]["sell"])) == (
        buy.digest(chain_id),
        sell.digest(chain_id),
    )
    assert (traded["args"]["amount"], traded["args"]["quote"]) == (buy.fill, buy.quote)
    assert sent.item_log_index == {"t1-buy": traded["logIndex"], "t1-sell": traded["logIndex"]}
    (settled,) = event_logs(settlement, "BatchSettled", receipt)
    assert settled["args"]["batch_id"] == batch_id_from_key("batch-1")


def test_bad_group_is_bisected_out_and_the_rest_settles_in_one_tx(
    world: SettlementWorld,
) -> None:
    good_1 = world.trade("good-1", pair=0)
    bad = world.trade("bad", pair=1, bad=True)
    good_2 = world.trade("good-2", pair=0)
    over = world.trade("over", pair=1)
    # a fill beyond the signed amount
    buy, sell = over.orders
    over = type(over)(
        "over",
        (
            type(buy)(**{**{f: getattr(buy, f) for f in buy.__slots__}, "fill": buy.amount + 1}),
            sell,
        ),
    )
    sender = world.sender()
    result = asyncio.run(sender.settle(7, [good_1, bad, good_2, over]))
    assert [r.group.group_id for r in result.rejected] == ["bad", "over"]
    assert "bad signature" in result.rejected[0].reason
    assert result.rejected[1].reason
    sent = result.batch
    assert sent is not None and sent.status is BatchStatus.CONFIRMED
    assert [g.group_id for g in sent.groups] == ["good-1", "good-2"]
    assert set(sent.item_log_index) == {"good-1-buy", "good-1-sell", "good-2-buy", "good-2-sell"}
    receipt = world.w3.eth.get_transaction_receipt(HexStr(sent.tx_hash))
    settled = event_logs(settlement_contract(world.w3, world.deployment), "BatchSettled", receipt)
    assert [e["args"]["orders"] for e in settled] == [4]


def test_nothing_sent_when_every_group_fails(world: SettlementWorld) -> None:
    result = asyncio.run(world.sender().settle(8, [world.trade("bad", bad=True)]))
    assert result.batch is None and [r.group.group_id for r in result.rejected] == ["bad"]


def test_stuck_transaction_is_replaced_and_the_mined_version_reported(
    world: SettlementWorld,
) -> None:
    operator = world.operator.address
    sender = world.sender(replace_after_blocks=1, fees=FeePolicy(priority_fee=1))

    async def pending_hashes() -> list[str]:
        content = await asyncio.to_thread(world.rpc, "txpool_content")
        return [
            tx["hash"]
            for account, txs in content["pending"].items()
            if account.lower() == operator.lower()
            for tx in txs.values()
        ]

    async def scenario() -> None:
        world.rpc("evm_setAutomine", False)
        task = asyncio.create_task(sender.settle(9, [world.trade("t")]))
        seen: list[str] = []

        async def sent() -> bool:
            seen[:] = await pending_hashes()
            return bool(seen)

        await until(sent)
        first = seen[0]
        base = int(world.w3.eth.get_block("latest")["baseFeePerGas"])
        # the next block's base fee is above the first version's max fee: it cannot be mined
        world.rpc("anvil_setNextBlockBaseFeePerGas", hex(base * 100))
        world.rpc("evm_mine")
        assert world.w3.eth.get_transaction_count(operator, "latest") == 0

        async def replaced() -> bool:
            hashes = await pending_hashes()
            return any(h != first for h in hashes)

        await until(replaced)
        world.rpc("evm_mine")
        result = await task
        sent_batch = result.batch
        assert sent_batch is not None and sent_batch.status is BatchStatus.CONFIRMED
        assert sent_batch.tx_hash != first
        assert first in sent_batch.replaced_tx_hashes
        receipt = world.w3.eth.get_transaction_receipt(HexStr(sent_batch.tx_hash))
        assert receipt["status"] == 1 and receipt["blockNumber"] == sent_batch.block_number
        assert len(sent_batch.item_log_index) == 2

    asyncio.run(scenario())


def test_confirmations_are_awaited(world: SettlementWorld) -> None:
    operator = world.operator.address
    sender = world.sender(confirmations=2)

    async def scenario() -> None:
        task = asyncio.create_task(sender.settle(10, [world.trade("t")]))

        async def mined() -> bool:
            count = await asyncio.to_thread(world.w3.eth.get_transaction_count, operator)
            return count == 1

        await until(mined)
        included = world.w3.eth.block_number
        assert not task.done()
        world.rpc("anvil_mine", "0x1")
        assert not task.done()  # 1 of 2 confirmations
        world.rpc("anvil_mine", "0x1")
        result = await task
        assert result.batch is not None and result.batch.status is BatchStatus.CONFIRMED
        assert result.batch.block_number == included
        assert world.w3.eth.block_number >= included + 2

    asyncio.run(scenario())


def test_reorged_batch_is_reported_and_resubmission_settles(world: SettlementWorld) -> None:
    group = world.trade("t")

    async def scenario() -> None:
        mined = asyncio.Event()

        def progress(p: SendProgress) -> None:
            if p.stage is Stage.MINED:
                mined.set()

        async def mined_or_done(task: asyncio.Task[Any]) -> None:
            """Wait for the mined report; a sender that failed first fails the test."""
            waiter = asyncio.create_task(mined.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if task.done():
                task.result()  # raises what the sender raised
                assert mined.is_set(), "the sender finished without reporting the mined block"

        sender = world.sender(confirmations=3, on_progress=progress)
        task = asyncio.create_task(sender.settle(11, [group]))
        await mined_or_done(task)  # the sender holds the receipt and waits for confirmations
        world.rpc("anvil_reorg", 1, [])  # the inclusion block is replaced by an empty one
        result = await task
        assert result.batch is not None and result.batch.status is BatchStatus.REORGED
        assert world.w3.eth.get_transaction_count(world.operator.address) == 0
        mined.clear()
        again = asyncio.create_task(sender.settle(11, [group]))
        await mined_or_done(again)
        world.rpc("anvil_mine", "0x3")
        resent = await again
        assert resent.batch is not None and resent.batch.status is BatchStatus.CONFIRMED
        assert resent.batch.nonce == 0  # the nonce freed by the reorg is used again

    asyncio.run(scenario())


def test_order_filled_by_a_pool_swap_maps_both_items(world: SettlementWorld) -> None:
    """A group of a buy and the Uniswap v2 swap that fills it: one ``Fill`` and one
    ``SwapExecuted``, each mapped to its item."""
    d = world.deployment
    reserves = uniswap.get_reserves(world.w3, d.weth_usdc_pair)
    usdc_in = 3_100 * 10**6
    weth_out = uniswap.amount_out(usdc_in, reserves.of(d.usdc), reserves.of(d.weth))
    buyer = world.buyers[0]
    limit = usdc_in * 10**18 // weth_out + 1
    order = Order(world.spot.id, True, weth_out, limit, 1, world.deadline())
    signature = eip712.sign_order(order, buyer.account.key, world.w3.eth.chain_id, buyer.wallet)
    buy = OrderSettlement(
        "buy", buyer.wallet, world.spot, True, weth_out, limit, 1, order.deadline, signature,
        weth_out, usdc_in,
    )  # fmt: skip
    swap = SwapSettlement("swap", d.weth_usdc_pair, d.usdc, usdc_in, weth_out)
    result = asyncio.run(world.sender().settle(12, [SettlementGroup("routed", (buy, swap))]))
    sent = result.batch
    assert sent is not None and sent.status is BatchStatus.CONFIRMED
    receipt = world.w3.eth.get_transaction_receipt(HexStr(sent.tx_hash))
    settlement = settlement_contract(world.w3, d)
    (fill,) = event_logs(settlement, "Fill", receipt)
    (swapped,) = event_logs(settlement, "SwapExecuted", receipt)
    assert sent.item_log_index == {"buy": fill["logIndex"], "swap": swapped["logIndex"]}


def test_groups_valid_alone_but_conflicting_together_are_deferred(
    world: SettlementWorld,
) -> None:
    first = world.trade("a")
    world.nonces.clear()  # the second trade reuses the same single-use order nonces
    second = world.trade("b", amount=2 * 10**18)
    result = asyncio.run(world.sender().settle(13, [first, second]))
    assert result.rejected == ()
    assert [g.group_id for g in result.deferred] == ["b"]
    assert result.batch is not None and [g.group_id for g in result.batch.groups] == ["a"]
    assert result.batch.status is BatchStatus.CONFIRMED


def test_contract_signed_groups_are_indexed_per_batch_and_a_bad_one_is_bisected_out(
    world: SettlementWorld, deployer: Sender
) -> None:
    """A wallet owned by a 2-of-3 Safe buys twice: once signed by two owners, once by an
    owner and an outsider (the Safe refuses it through EIP-1271). Bisection rejects the bad
    group; the batch that is sent is rebuilt, so the good signature is the only one in
    `Batch.signatures` and its item points at index 0."""
    w3, d = world.w3, world.deployment
    assert d.safe is not None
    chain_id = w3.eth.chain_id
    owners = [Account.from_key(keccak(text=f"sender-test/safe-owner/{i}")) for i in range(3)]
    outsider = Account.from_key(keccak(text="sender-test/outsider"))
    safe = create_safe(deployer, d.safe, [o.address for o in owners], threshold=2)
    wallet = create_wallet(deployer, d, safe)
    tokens.mint(deployer, d.usdc, wallet, 10_000 * 10**6)

    def safe_buy(item_id: str, signers: list[LocalAccount]) -> OrderSettlement:
        order = Order(world.spot.id, True, WETH, PRICE, world.next_nonce(wallet), world.deadline())
        digest = eip712.order_digest(order, chain_id, wallet)
        signature = sign_safe_message(
            [s.key for s in signers], safe_message_hash(chain_id, safe, digest)
        )
        quote = abi.quote_amount(WETH, PRICE, 18)
        return OrderSettlement(
            item_id,
            wallet,
            world.spot,
            True,
            WETH,
            PRICE,
            order.nonce,
            order.deadline,
            signature,
            WETH,
            quote,
        )

    bad_buy = safe_buy("bad-buy", [owners[0], outsider])
    good_buy = safe_buy("good-buy", [owners[2], owners[1]])
    assert len(bad_buy.signature) == len(good_buy.signature) == 130
    bad = SettlementGroup("bad", (bad_buy, world.order(world.sellers[1], False, WETH, "bad-sell")))
    good = SettlementGroup(
        "good", (good_buy, world.order(world.sellers[0], False, WETH, "good-sell"))
    )
    plain = world.trade("plain", pair=1)
    result = asyncio.run(world.sender().settle(9, [bad, good, plain]))
    assert [r.group.group_id for r in result.rejected] == ["bad"]
    assert "bad signature" in result.rejected[0].reason
    sent = result.batch
    assert sent is not None and sent.status is BatchStatus.CONFIRMED
    assert [g.group_id for g in sent.groups] == ["good", "plain"]
    assert "good-buy" in sent.item_log_index

    settlement = settlement_contract(w3, d)
    tx = w3.eth.get_transaction(HexStr(sent.tx_hash))
    function, args = settlement.decode_function_input(tx["input"])
    batch = args["batch"]
    assert function.fn_name == "settle_pairs"  # two paired trades: wallet to wallet
    assert [bytes(s) for s in batch["signatures"]] == [good_buy.signature]
    [safe_item] = [o for o in abi.pair_batch_orders(batch["pairs"]) if o["wallet"] == wallet]
    assert abi.item_signature(safe_item["sig"], [good_buy.signature]) == (
        good_buy.signature,
        True,
    )
    # plus the unit the factory seeded the wallet with
    assert tokens.balance_of(w3, d.weth, wallet) == WALLET_SEED_UNIT + WETH
