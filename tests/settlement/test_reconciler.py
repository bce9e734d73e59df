"""SettlementReconciler against anvil: events in order, confirmations, reorgs, restarts."""

from __future__ import annotations

import asyncio

import pytest

from gateway.chain import anvil as anvil_module
from gateway.chain.anvil import Anvil, AnvilConfig
from gateway.settlement.reconciler import ChainCursor, SettlementReconciler
from gateway.settlement.sender import BatchStatus
from tests.settlement.conftest import SettlementWorld

pytestmark = pytest.mark.chain


def _reconciler(world: SettlementWorld, **kwargs: object) -> SettlementReconciler:
    return SettlementReconciler(
        world.node.rpc_url,
        world.deployment.settlement,
        start_block=world.deployment.block_number,
        **kwargs,  # type: ignore[arg-type]
    )


def _settle(world: SettlementWorld, batch_id: int, group_id: str) -> str:
    result = asyncio.run(world.sender().settle(batch_id, [world.trade(group_id)]))
    assert result.batch is not None and result.batch.status is BatchStatus.CONFIRMED
    return result.batch.tx_hash


def test_events_of_a_batch_in_chain_order(world: SettlementWorld) -> None:
    tx_hash = _settle(world, 21, "t")
    update = asyncio.run(_reconciler(world).poll())
    assert [e.event for e in update.events] == ["Fill", "Fill", "BatchSettled"]
    assert {e.tx_hash for e in update.events} == {tx_hash}
    assert all(e.batch_id == 21 for e in update.events)
    buy = update.events[0]
    assert buy.amount == 10**18 and buy.quote == 3_000 * 10**6 and buy.digest is not None
    assert update.cursor.block_number == world.w3.eth.block_number
    assert update.reorged_after is None and update.undone == ()


def test_confirmation_depth_holds_back_the_head(world: SettlementWorld) -> None:
    reconciler = _reconciler(world, confirmations=2)
    _settle(world, 22, "t")
    assert asyncio.run(reconciler.poll()).events == ()
    world.rpc("anvil_mine", "0x2")
    assert [e.event for e in asyncio.run(reconciler.poll()).events] == [
        "Fill",
        "Fill",
        "BatchSettled",
    ]


def test_reorg_reports_undone_events_then_the_reincluded_ones(world: SettlementWorld) -> None:
    reconciler = _reconciler(world)
    tx_hash = _settle(world, 23, "t")
    world.rpc("anvil_mine", "0x2")
    first = asyncio.run(reconciler.poll())
    assert len(first.events) == 3
    included = first.events[0].block_number
    depth = world.w3.eth.block_number - included + 1
    raw = world.rpc("eth_getRawTransactionByHash", tx_hash)
    world.rpc("anvil_reorg", depth, [[raw, 1]])  # the same transaction, one block later
    second = asyncio.run(reconciler.poll())
    assert second.reorged_after == included - 1
    assert second.undone == first.events
    assert [(e.event, e.tx_hash, e.log_index) for e in second.events] == [
        (e.event, e.tx_hash, e.log_index) for e in first.events
    ]
    assert second.events[0].block_number == included + 1
    assert {e.block_hash for e in second.events}.isdisjoint({e.block_hash for e in first.events})
    third = asyncio.run(reconciler.poll())
    assert third.events == () and third.reorged_after is None


def test_resumes_from_a_persisted_cursor_without_duplicates(world: SettlementWorld) -> None:
    first = _reconciler(world)
    _settle(world, 24, "a")
    seen = list(asyncio.run(first.poll()).events)
    stored = first.cursor
    assert stored is not None
    persisted = stored.to_dict()
    _settle(world, 25, "b")
    resumed = _reconciler(world, cursor=ChainCursor.from_dict(persisted))
    seen += asyncio.run(resumed.poll()).events
    assert [e.batch_id for e in seen if e.event == "BatchSettled"] == [24, 25]
    assert len({e.key for e in seen}) == len(seen) == 6
    assert asyncio.run(resumed.poll()).events == ()


def test_survives_a_node_restart(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The node goes away mid-follow; the reconciler retries and resumes from its cursor."""
    # the old node's sockets linger in TIME_WAIT; anvil binds with SO_REUSEADDR, the probe not
    monkeypatch.setattr(anvil_module, "port_is_free", lambda host, port: True)
    import tempfile
    from pathlib import Path

    from gateway.chain.deploy import deploy_all
    from gateway.chain.transactions import Sender, connect

    caplog.set_level("WARNING", logger="gateway.settlement")
    with tempfile.TemporaryDirectory() as tmp:
        state = str(Path(tmp) / "state.json")
        node = Anvil(AnvilConfig(state_path=state))
        node.start()
        try:
            w3 = connect(node.rpc_url)
            deployment = deploy_all(Sender(w3, node.dev_accounts()[0]))
            reconciler = SettlementReconciler(
                node.rpc_url,
                deployment.settlement,
                start_block=deployment.block_number,
                retry_initial=0.01,
                retry_max=0.2,
            )

            async def scenario() -> None:
                assert (await reconciler.poll()).events == ()
                before = reconciler.cursor
                node.stop()  # dumps the state
                polling = asyncio.create_task(reconciler.poll())
                await asyncio.sleep(0)
                await asyncio.to_thread(node.start)  # same port, same chain
                update = await polling
                assert before is not None
                assert update.events == ()
                assert update.cursor.block_number >= before.block_number
                assert update.reorged_after is None

            node.config = AnvilConfig(state_path=state, port=node.port)
            asyncio.run(scenario())
        finally:
            node.stop()
    assert any("unreachable" in r.getMessage() for r in caplog.records)  # it did retry
