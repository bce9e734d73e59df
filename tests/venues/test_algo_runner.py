"""Execution algorithms run for real against the Binance simulator (ccxt over HTTP).

Algo time is simulated: a `SimClock` walks the schedule and the test calls
`runner.run_due(now)` at each slice (the runtime's background loop is off), so nothing
sleeps. Children go out as smart-routed IOC gateway orders and fill on the exchange.
The restart test stops the gateway at the two dangerous points (after a child executed but
before the algo heard back; after the child was persisted but before it was submitted),
builds a new gateway on the same database and checks that the total is filled exactly and
that no child reached the exchange twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import text

from gateway.config import Settings
from gateway.devnet.catalogue import devnet_catalogue
from gateway.devnet.exchange_sim.binance import BinanceSim
from gateway.domain.market import FeeSchedule
from gateway.domain.orders import Side
from gateway.domain.sim_clock import SimClock
from gateway.oms.algo_runner import AlgoRequest
from gateway.oms.service import SystemClock
from gateway.routing.algos import AlgoKind, AlgoState, AlgoStatus
from gateway.runtime import Runtime
from gateway.store import order_repository as order_repo
from gateway.venues.internal import InternalVenue
from gateway.venues.market_data import FeedStatus
from tests.market_data.test_hub import status_change
from tests.operator_access import OPERATOR_TOKEN
from tests.venues.conftest import Account

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
T0 = datetime(2030, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
CENT = Decimal("0.01")


@asynccontextmanager
async def gateway(account: Account, database: str) -> AsyncIterator[Runtime]:
    catalogue, clock = devnet_catalogue(), SystemClock()
    rt = Runtime.build(
        Settings(database_url=database, operator_token=OPERATOR_TOKEN),
        catalogue=catalogue,
        clock=clock,
        venues=[
            InternalVenue(catalogue, clock, FeeSchedule(Decimal(0), Decimal(0))),
            account.venue(),
        ],
    )
    await rt.start(expiry_interval=None, monitor=False, algos=False)
    try:
        await status_change(rt.market_data, "binance", FeedStatus.LIVE, timeout=20)
        yield rt
    finally:
        await rt.stop()


def best_ask(rt: Runtime) -> Decimal:
    return rt.market_data.venue_books("WETH/USDC")["binance"].asks[0].price


def request(kind: AlgoKind, quantity: str, max_child: str, **extra: Any) -> AlgoRequest:
    return AlgoRequest(
        kind=kind,
        account=ALICE,
        instrument="WETH/USDC",
        side=Side.BUY,
        quantity=Decimal(quantity),
        start=T0,
        end=T0 + 5 * MINUTE,
        min_child=CENT,
        max_child=Decimal(max_child),
        interval=MINUTE,
        **extra,
    )


def exchange_fills(account: Account) -> dict[str, Decimal]:
    """Quantity filled on the exchange per taker order's client order id (the smart
    executor's `<gateway order id>-<leg>`)."""
    sim = account.running.sim
    assert isinstance(sim, BinanceSim)
    filled: dict[str, Decimal] = {}
    for trade in sim.exchange.trades(account.name):
        if trade.taker_account != account.name:
            continue
        order = sim.exchange.find_order(trade.taker_order_id)
        assert order is not None and order.client_order_id is not None
        filled[order.client_order_id] = filled.get(order.client_order_id, Decimal(0)) + (
            trade.quantity
        )
    return filled


async def state_of(rt: Runtime, algo_id: str) -> AlgoState:
    return (await rt.algos.get(algo_id)).state


async def child_orders(rt: Runtime, state: AlgoState) -> dict[int, Any]:
    """Gateway orders of the algo's children by child number (absent: never submitted)."""

    def read() -> dict[int, Any]:
        found = {}
        with rt.read_engine.connect() as connection:
            for n in range(1, state.child_seq + 1):
                stored = order_repo.get_by_client_order_id(
                    connection, ALICE, f"{state.spec.algo_id}-{n}"
                )
                if stored is not None:
                    found[n] = stored.order
        return found

    return await asyncio.to_thread(read)


def test_twap_fills_on_the_exchange_slice_by_slice(
    private_binance_account: Account, tmp_path: Path
) -> None:
    async def scenario() -> None:
        clock = SimClock(T0 - MINUTE)
        async with gateway(private_binance_account, f"sqlite:///{tmp_path / 'twap.db'}") as rt:
            limit = (best_ask(rt) * Decimal("1.02")).quantize(CENT)
            algo = await rt.algos.create(request(AlgoKind.TWAP, "0.5", "0.2", limit_price=limit))
            algo_id = algo.spec.algo_id

            assert await rt.algos.run_due(clock.now()) == 0  # before start: nothing due
            for k in range(5):
                clock.advance_to(T0 + k * MINUTE)
                assert await rt.algos.run_due(clock.now()) == 1
                state = await state_of(rt, algo_id)
                assert state.filled == Decimal("0.1") * (k + 1), (k, state)
                assert state.child_seq == k + 1 and state.open_children == ()
            assert state.status is AlgoStatus.COMPLETED and state.next_wake_at is None
            assert state.average_price is not None and state.average_price <= limit
            assert rt.algos.active_ids() == []

            orders = await child_orders(rt, state)
            assert sorted(orders) == [1, 2, 3, 4, 5]
            assert all(o.filled_quantity == Decimal("0.1") for o in orders.values())
            assert all(o.spec.price == limit for o in orders.values())
            on_exchange = exchange_fills(private_binance_account)
            assert sum(on_exchange.values()) == Decimal("0.5")
            assert {cid.rsplit("-", 1)[0] for cid in on_exchange} == {o.id for o in orders.values()}
            position = rt.pre_trade.ledger.account(ALICE).positions["WETH/USDC"]
            assert position.quantity == Decimal("0.5")

            clock.advance_to(T0 + 6 * MINUTE)  # nothing more happens after completion
            assert await rt.algos.run_due(clock.now()) == 0

    asyncio.run(scenario())


def test_restart_mid_run_continues_without_sending_a_child_twice(
    private_binance_account: Account, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'restart.db'}"

    async def crash(*_: Any, **__: Any) -> Any:
        raise RuntimeError("simulated crash")

    async def scenario() -> None:
        clock = SimClock(T0)
        async with gateway(private_binance_account, database) as rt:
            limit = (best_ask(rt) * Decimal("1.02")).quantize(CENT)
            algo = await rt.algos.create(request(AlgoKind.TWAP, "0.5", "0.3", limit_price=limit))
            algo_id = algo.spec.algo_id
            for k in range(2):
                clock.advance_to(T0 + k * MINUTE)
                await rt.algos.run_due(clock.now())
            assert (await state_of(rt, algo_id)).filled == Decimal("0.2")

            # slice 2: the child executes on the exchange, then the gateway dies before the
            # algo hears back. The persisted state still lists child 3 as open.
            rt.algos._child_finished = crash  # type: ignore[method-assign]
            clock.advance_to(T0 + 2 * MINUTE)
            await rt.algos.run_due(clock.now())
            state = await state_of(rt, algo_id)
            assert state.filled == Decimal("0.2") and state.child_seq == 3
            assert [c.child_id for c in state.open_children] == [f"{algo_id}-3"]
        assert sum(exchange_fills(private_binance_account).values()) == Decimal("0.3")

        async with gateway(private_binance_account, database) as rt:
            # recovered from the store: child 3 is settled from its gateway order, not resent
            assert rt.algos.active_ids() == [algo_id]
            state = await state_of(rt, algo_id)
            assert state.filled == Decimal("0.3") and state.open_children == ()
            assert len(exchange_fills(private_binance_account)) == 3

            # slice 3: the gateway dies after persisting child 4, before submitting it
            rt.orders.submit = crash  # type: ignore[method-assign]
            clock.advance_to(T0 + 3 * MINUTE)
            await rt.algos.run_due(clock.now())
            state = await state_of(rt, algo_id)
            assert state.child_seq == 4 and state.in_flight == Decimal("0.1")

        async with gateway(private_binance_account, database) as rt:
            # child 4 never reached the gateway: closed as unsent; the last slice catches up
            state = await state_of(rt, algo_id)
            assert state.filled == Decimal("0.3") and state.open_children == ()
            clock.advance_to(T0 + 4 * MINUTE)
            assert await rt.algos.run_due(clock.now()) == 1
            state = await state_of(rt, algo_id)
            assert state.status is AlgoStatus.COMPLETED
            assert state.filled == Decimal("0.5") and state.child_seq == 5

            orders = await child_orders(rt, state)
            assert sorted(orders) == [1, 2, 3, 5]  # child 4 was never submitted
            assert orders[5].quantity == Decimal("0.2")  # the shortfall, under a new id
            assert sum(o.filled_quantity for o in orders.values()) == Decimal("0.5")
            on_exchange = exchange_fills(private_binance_account)
            assert len(on_exchange) == 4  # one exchange order per child sent, none twice
            assert sum(on_exchange.values()) == Decimal("0.5")
            assert {cid.rsplit("-", 1)[0] for cid in on_exchange} == {o.id for o in orders.values()}
            with rt.read_engine.connect() as connection:
                kinds = connection.execute(
                    text("SELECT kind FROM audit_log WHERE entity_id = :id ORDER BY seq"),
                    {"id": algo_id},
                ).scalars()
                audit = [str(k) for k in kinds]
            assert audit[0] == "algo.created" and audit[-1] == "algo.child_done"
            assert audit.count("algo.child_unsent") == 1  # child 4, closed at the restart
            assert audit.count("algo.child_done") == 4

    asyncio.run(scenario())


def test_sniper_fires_only_when_the_book_reaches_its_trigger(
    private_binance_account: Account, tmp_path: Path
) -> None:
    async def scenario() -> None:
        clock = SimClock(T0)
        async with gateway(private_binance_account, f"sqlite:///{tmp_path / 'sniper.db'}") as rt:
            ask = best_ask(rt)
            far = (ask * Decimal("0.5")).quantize(CENT)
            idle = await rt.algos.create(
                request(AlgoKind.SNIPER, "0.3", "0.2", trigger_price=far, limit_price=far)
            )
            for seconds in (0, 1, 30):
                clock.advance_to(T0 + timedelta(seconds=seconds))
                await rt.algos.run_due(clock.now())
            state = await state_of(rt, idle.spec.algo_id)
            assert state.status is AlgoStatus.RUNNING
            assert state.child_seq == 0 and state.filled == 0
            assert exchange_fills(private_binance_account) == {}
            cancelled = await rt.algos.cancel(idle.spec.algo_id, clock.now())
            assert cancelled.status is AlgoStatus.CANCELLED

            trigger = (ask * Decimal("1.01")).quantize(CENT)
            limit = (ask * Decimal("1.02")).quantize(CENT)
            shot = await rt.algos.create(
                request(AlgoKind.SNIPER, "0.3", "0.2", trigger_price=trigger, limit_price=limit)
            )
            clock.advance_to(T0 + MINUTE)
            assert await rt.algos.run_due(clock.now()) == 1
            state = await state_of(rt, shot.spec.algo_id)
            assert state.status is AlgoStatus.COMPLETED and state.filled == Decimal("0.3")
            assert state.child_seq == 2  # the whole quantity at once, in two pieces
            orders = await child_orders(rt, state)
            assert [o.quantity for o in orders.values()] == [Decimal("0.15"), Decimal("0.15")]
            assert sum(exchange_fills(private_binance_account).values()) == Decimal("0.3")

    asyncio.run(scenario())
