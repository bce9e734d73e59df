"""The settlement service survives the chain changing under it: an `anvil_reorg` that drops
the block holding a settled batch, one that moves the batch's transaction to a later block,
and anvil itself restarted (from a state saved before the batch) while the batch is on its
way. In every case each fill ends settled exactly once on the chain as it now is, and the
wallets moved exactly once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from gateway.chain.anvil import Anvil, AnvilConfig
from gateway.chain.transactions import Sender, connect
from gateway.oms.settlement_service import SettlementService
from gateway.settlement.sender import SendProgress, Stage
from tests.chain.settlement_desk import USDC, WETH, Desk, serve
from tests.postgres_cluster import free_port

pytestmark = pytest.mark.chain


@pytest.fixture
def node() -> Iterator[Anvil]:
    """A chain of this test's own: it is reorganized and restarted."""
    with Anvil(AnvilConfig(port=free_port())) as anvil:  # a restart comes back on it
        yield anvil


def rpc(w3: Web3, method: str, *params: Any) -> Any:
    response = w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in response, response
    return response["result"]


async def trade(desk: Desk, http: Any, qty: str) -> tuple[dict[str, Any], dict[str, Any]]:
    ask = await desk.order(http, desk.seller, desk.seller_wallet, "sell", qty, "3000")
    bid = await desk.order(
        http, desk.buyer, desk.buyer_wallet, "buy", qty, "3000", time_in_force="ioc"
    )
    assert bid["status"] == "filled"
    return ask, bid


async def fills_of(http: Any, *orders: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for order in orders:
        found += (await http.get(f"/v1/orders/{order['id']}/fills")).json()
    return found


def on_chain(w3: Web3, fill: dict[str, Any]) -> bool:
    """The fill's transaction is in the chain as it is now, at the block the store says."""
    try:
        receipt = w3.eth.get_transaction_receipt(fill["tx_hash"])
    except Exception:
        return False
    return receipt["status"] == 1 and receipt["blockNumber"] == fill["block_number"]


@pytest.mark.parametrize("reincluded", [False, True], ids=["dropped", "re-mined"])
def test_a_reorg_of_the_settled_block_is_healed_and_settled_once(
    node: Anvil, tmp_path: Path, reincluded: bool
) -> None:
    w3 = connect(node.rpc_url)
    desk = Desk(w3, Sender(w3, node.dev_accounts()[0]), node, f"sqlite:///{tmp_path / 'r.db'}")
    rpc(w3, "anvil_mine", "0x1")  # the block before the batch's holds nothing to lose

    async def scenario() -> None:
        rt = desk.runtime()
        http = await serve(rt)
        try:
            buyer0 = desk.balances(desk.buyer_wallet)
            ask, bid = await trade(desk, http, "1")
            service = rt.settlement
            assert isinstance(service, SettlementService)
            assert (await service.run_once()).settled == 2
            [first] = await fills_of(http, bid)
            raw = w3.eth.get_raw_transaction(first["tx_hash"])
            first_hash = Web3.to_hex(w3.eth.get_block(first["block_number"])["hash"])
            if reincluded:  # the last two blocks replaced; the same transaction in the second
                rpc(w3, "anvil_reorg", 2, [[Web3.to_hex(raw), 1]])
            else:  # the block is replaced by an empty one: the batch is gone
                rpc(w3, "anvil_reorg", 1, [])
            moved = Web3.to_hex(w3.eth.get_block(first["block_number"])["hash"]) != first_hash
            assert moved and (reincluded or not on_chain(w3, first))

            outcome = await service.run_once()
            fills = await fills_of(http, ask, bid)
            assert {f["settlement"] for f in fills} == {"settled"}, (outcome, fills)
            assert all(on_chain(w3, f) for f in fills), (outcome, fills, w3.eth.block_number)
            [healed] = [f for f in fills if f["order_id"] == bid["id"]]
            if reincluded:  # found again where it now is: nothing was sent again
                assert outcome.batches == 0
                assert healed["tx_hash"] == first["tx_hash"]
                batch = (await http.get(f"/v1/settlements/{healed['batch_id']}")).json()
                assert batch["block_hash"] != first_hash
            else:  # given back and settled by a new transaction
                assert outcome.batches == 1
                assert healed["tx_hash"] != first["tx_hash"]
            assert desk.balances(desk.buyer_wallet) == (buyer0[0] + WETH, buyer0[1] - 3000 * USDC)
            again = await service.run_once()
            assert (again.batches, again.settled) == (0, 0)
        finally:
            await http.aclose()
            await rt.stop()

    asyncio.run(scenario())


def test_anvil_restarted_mid_batch_loses_the_batch_and_it_settles_again(
    node: Anvil, tmp_path: Path
) -> None:
    w3 = connect(node.rpc_url)
    desk = Desk(w3, Sender(w3, node.dev_accounts()[0]), node, f"sqlite:///{tmp_path / 'a.db'}")

    async def scenario() -> None:
        rt = desk.runtime()
        http = await serve(rt)
        try:
            buyer0 = desk.balances(desk.buyer_wallet)
            ask, bid = await trade(desk, http, "0.5")
            service = rt.settlement
            assert isinstance(service, SettlementService)
            saved = rpc(w3, "anvil_dumpState")  # the chain as it was before the batch
            report = service.sender.on_progress

            def restart_when_sent(progress: SendProgress) -> None:
                report(progress)
                if progress.stage is Stage.SENT:  # on its way: anvil dies
                    node.stop()

            service.sender.on_progress = restart_when_sent
            with contextlib.suppress(Exception):  # the node went away under the cycle;
                await service.run_once()  # the next one starts from the store
            service.sender.on_progress = report
            node.start()  # and comes back with the chain as it was before the batch
            rpc(w3, "anvil_loadState", saved)
            fills = await fills_of(http, ask, bid)
            assert not any(f["settlement"] == "settled" and on_chain(w3, f) for f in fills)

            await service.run_once()
            fills = await fills_of(http, ask, bid)
            assert {f["settlement"] for f in fills} == {"settled"}, fills
            assert all(on_chain(w3, f) for f in fills)
            assert desk.balances(desk.buyer_wallet) == (
                buyer0[0] + WETH // 2,
                buyer0[1] - 1500 * USDC,
            )
        finally:
            await http.aclose()
            await rt.stop()

    asyncio.run(scenario())


def test_batches_leave_by_age_or_by_size(node: Anvil, tmp_path: Path) -> None:
    """With a batch age, trades made apart in time wait for each other and settle in one
    transaction; once the batch is full it leaves without waiting."""
    w3 = connect(node.rpc_url)
    desk = Desk(w3, Sender(w3, node.dev_accounts()[0]), node, f"sqlite:///{tmp_path / 'b.db'}")

    async def scenario() -> None:
        rt = desk.runtime()
        http = await serve(rt)
        try:
            service = rt.settlement
            assert isinstance(service, SettlementService)
            service.batch_age = 3600.0  # an hour: only size can make this batch leave
            service._outbox_limit = 2
            first = await trade(desk, http, "0.1")
            with pytest.raises(TimeoutError):  # one trade, not full: it waits for its age
                await asyncio.wait_for(service._gather(), 0.5)
            second = await trade(desk, http, "0.2")
            await asyncio.wait_for(service._gather(), 5)  # two trades: full, no wait
            outcome = await service.run_once()
            assert (outcome.batches, outcome.settled) == (1, 4)
            fills = await fills_of(http, *first, *second)
            assert len({f["tx_hash"] for f in fills}) == 1
        finally:
            await http.aclose()
            await rt.stop()

    asyncio.run(scenario())
