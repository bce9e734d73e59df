"""Matched fills settle on chain exactly once: signed orders trade on the internal book, the
settlement service batches the trade, the real Settlement contract moves the tokens between
the two MarginWallets, and the store records the transaction, block and log index. A crash
between the receipt and the write is healed from the chain's events; a trade the chain
refuses is marked failed with its reason, and the rest of the batch settles."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from web3 import Web3

from gateway.chain import tokens
from gateway.chain.anvil import Anvil
from gateway.chain.deploy import register_option, settlement_contract
from gateway.chain.transactions import Sender
from gateway.devnet.catalogue import OPTION_EXPIRY
from gateway.oms.settlement_service import SettlementService
from tests.chain.settlement_desk import USDC, WETH, Desk, serve
from tests.market_making import make_market

pytestmark = pytest.mark.chain


def test_a_matched_trade_settles_once_and_a_crash_is_healed_from_the_chain(
    w3: Web3, deployer: Sender, anvil_node: Anvil, fresh_chain: Web3, tmp_path: Path
) -> None:
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'settle.db'}")

    async def scenario() -> None:
        rt = desk.runtime()
        http = await serve(rt)
        try:
            seller0, buyer0 = desk.balances(desk.seller_wallet), desk.balances(desk.buyer_wallet)
            ask = await desk.order(http, desk.seller, desk.seller_wallet, "sell", "1.5", "3000")
            bid = await desk.order(
                http, desk.buyer, desk.buyer_wallet, "buy", "1", "3001", time_in_force="ioc"
            )
            assert bid["status"] == "filled" and bid["settlement"] == "pending"

            service = rt.settlement
            assert isinstance(service, SettlementService)
            stream = rt.events.subscribe(frozenset({desk.buyer_wallet}))
            outcome = await service.run_once()
            assert (outcome.batches, outcome.settled) == (1, 2)
            fills = (await http.get(f"/v1/orders/{bid['id']}/fills")).json()
            [fill] = fills
            assert fill["settlement"] == "settled" and fill["log_index"] is not None
            batch = (await http.get(f"/v1/settlements/{fill['batch_id']}")).json()
            assert batch["status"] == "confirmed" and batch["tx_hash"] == fill["tx_hash"]
            assert {f["order_id"] for f in batch["fills"]} == {bid["id"], ask["id"]}
            receipt = w3.eth.get_transaction_receipt(batch["tx_hash"])
            assert receipt["status"] == 1 and receipt["blockNumber"] == fill["block_number"]
            assert (await http.get(f"/v1/orders/{bid['id']}")).json()["settlement"] == "settled"
            pushed = []
            while not stream.queue.empty():
                pushed.append(stream.queue.get_nowait())
            [confirmation] = [e for e in pushed if e["type"] == "fill.settled"]
            assert confirmation["fill"]["tx_hash"] == fill["tx_hash"]
            assert {e["type"] for e in pushed} >= {"fill.settled", "order.settled"}
            # the ask is partly filled and fully settled so far
            assert (await http.get(f"/v1/orders/{ask['id']}")).json()["settlement"] == "settled"
            # tokens moved once, at the maker's price: 1 WETH for 3,000 USDC
            assert desk.balances(desk.buyer_wallet) == (buyer0[0] + WETH, buyer0[1] - 3000 * USDC)
            assert desk.balances(desk.seller_wallet) == (
                seller0[0] - WETH,
                seller0[1] + 3000 * USDC,
            )

            # a second trade; the gateway "dies" after the chain settled it, before the write
            bid2 = await desk.order(
                http, desk.buyer, desk.buyer_wallet, "buy", "0.5", "3000", time_in_force="ioc"
            )

            async def crash(*_: Any, **__: Any) -> int:
                raise RuntimeError("killed between the receipt and the write")

            service._confirm = crash  # type: ignore[method-assign]
            with pytest.raises(RuntimeError):
                await service.run_once()
            [pending] = (await http.get(f"/v1/orders/{bid2['id']}/fills")).json()
            assert pending["settlement"] == "pending" and pending["batch_id"] is not None
        finally:
            await http.aclose()
            await rt.stop()

        rt = desk.runtime()  # restart on the same store
        http = await serve(rt)
        try:
            assert isinstance(rt.settlement, SettlementService)
            await rt.settlement.run_once()
            [healed] = (await http.get(f"/v1/orders/{bid2['id']}/fills")).json()
            assert healed["settlement"] == "settled" and healed["log_index"] is not None
            assert healed["batch_id"] == pending["batch_id"]  # the batch that was sent
            # settled once: 1.5 WETH moved in all, not 2
            assert desk.balances(desk.buyer_wallet)[0] == buyer0[0] + Decimal("1.5") * WETH
            again = await rt.settlement.run_once()  # nothing left to do
            assert (again.batches, again.settled) == (0, 0)
        finally:
            await http.aclose()
            await rt.stop()

    asyncio.run(scenario())


C3000, C3200 = "WETH-20270326-3000-C", "WETH-20270326-3200-C"


@pytest.mark.parametrize("crash", [False, True], ids=["from-the-receipt", "healed-after-a-crash"])
def test_two_signed_strategies_settle_leg_by_leg_in_one_transaction(
    w3: Web3,
    deployer: Sender,
    anvil_node: Anvil,
    fresh_chain: Web3,
    tmp_path: Path,
    crash: bool,
) -> None:
    """A call spread bought from the wallet that sells it: both strategies meet on the
    combo book, and one batch settles their four legs atomically at the split prices. Each
    leg fill points at its strategy's `StrategyFilled` event, whether recorded from the
    receipt or healed from the chain's events after a crash (where the legs' own `Fill`
    events carry the same digest and must not be taken for it)."""
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'spread.db'}")
    for strike in (3000, 3200):
        register_option(deployer, desk.d, strike * USDC, int(OPTION_EXPIRY.timestamp()), True)
    tokens.mint(deployer, desk.d.usdc, desk.seller_wallet, 5_000 * USDC)

    spread = [
        {"instrument": C3000, "side": "buy", "ratio": 1},
        {"instrument": C3200, "side": "sell", "ratio": 1},
    ]

    async def strategy(
        http: httpx.AsyncClient, trader: Any, wallet: str, side: str, price: str
    ) -> dict[str, Any]:
        return await desk.strategy(http, trader, wallet, side, price, spread)

    async def scenario() -> None:
        rt = desk.runtime(require_signed=False)  # the market maker's quotes are unsigned
        http = await serve(rt)
        try:
            for instrument, bid, ask in ((C3000, "300", "310"), (C3200, "200", "210")):
                await make_market(rt, instrument, bid, ask, "5")
            buyer0, seller0 = desk.balances(desk.buyer_wallet), desk.balances(desk.seller_wallet)
            offer = await strategy(http, desk.seller, desk.seller_wallet, "sell", "100")
            bought = await strategy(http, desk.buyer, desk.buyer_wallet, "buy", "105")
            assert bought["status"] == "filled" and bought["average_price"] == "100"
            service = rt.settlement
            assert isinstance(service, SettlementService)
            if crash:

                async def killed(*_: Any, **__: Any) -> int:
                    raise RuntimeError("killed between the receipt and the write")

                service._confirm = killed  # type: ignore[method-assign]
                with pytest.raises(RuntimeError):
                    await service.run_once()
                await http.aclose()
                await rt.stop()
                rt = desk.runtime(require_signed=False)  # restart on the same store
                http = await serve(rt)
                service = rt.settlement
                assert isinstance(service, SettlementService)
            outcome = await service.run_once()  # after a crash: healed, nothing sent again
            assert (outcome.batches, outcome.settled) == ((0, 0) if crash else (1, 4)), outcome
            fills = (await http.get(f"/v1/orders/{bought['id']}/fills")).json()
            assert {f["settlement"] for f in fills} == {"settled"}
            assert len({f["tx_hash"] for f in fills}) == 1
            theirs = (await http.get(f"/v1/orders/{offer['id']}/fills")).json()
            assert {f["tx_hash"] for f in theirs} == {fills[0]["tx_hash"]}
            receipt = w3.eth.get_transaction_receipt(fills[0]["tx_hash"])
            contract = settlement_contract(w3, desk.d)
            filled = contract.events.StrategyFilled().process_receipt(receipt)
            by_wallet = {e["args"]["wallet"]: e["logIndex"] for e in filled}
            assert {f["log_index"] for f in fills} == {by_wallet[desk.buyer_wallet]}
            assert {f["log_index"] for f in theirs} == {by_wallet[desk.seller_wallet]}
            # premiums: 305 paid and 205 received by the buyer, the reverse for the seller
            assert desk.balances(desk.buyer_wallet)[1] == buyer0[1] - 100 * USDC
            assert desk.balances(desk.seller_wallet)[1] == seller0[1] + 100 * USDC
        finally:
            await http.aclose()
            await rt.stop()

    asyncio.run(scenario())
