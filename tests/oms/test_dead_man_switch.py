"""The dead man's switch on a runtime with the internal book (SQLite and PostgreSQL), time on
a manual clock: countdowns (arm, refresh, expire, disarm), cancel-on-disconnect sessions, and both
applied at a restart before the first new order can trade with the cancelled ones."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from gateway.config import Settings
from gateway.domain.lifecycle import OrderStatus
from gateway.domain.orders import Order, OrderSpec, OrderType, Side, TimeInForce
from gateway.oms.dead_man_switch import (
    COUNTDOWN_EXPIRED,
    SESSION_CLOSED,
    SESSION_DIED,
    Firing,
    InvalidCountdown,
)
from gateway.runtime import Runtime
from gateway.store import audit_log
from gateway.store import dead_man_switch_repository as store
from tests.conftest import ManualClock

MAKER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
OTHER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
TAKER = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
SCOPE = "protocol:key_market_maker"


@asynccontextmanager
async def gateway(url: str, clock: ManualClock, *, timer: bool = False) -> AsyncIterator[Runtime]:
    """A runtime on `url`; nothing runs in the background unless `timer` (the switch's)."""
    rt = Runtime.build(Settings(database_url=url), clock=clock)
    await rt.start(
        expiry_interval=None,
        monitor=False,
        algos=False,
        reconcile_interval=None,
        settle_interval=None,
        dead_man_switch=timer,
    )
    try:
        yield rt
    finally:
        await rt.stop()


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(body())


async def rest(rt: Runtime, account: str, cid: str, side: Side, price: str) -> Order:
    spec = OrderSpec(
        account=account,
        client_order_id=cid,
        side=side,
        order_type=OrderType.LIMIT,
        quantity=Decimal("1"),
        instrument="WETH/USDC",
        price=Decimal(price),
    )
    order = (await rt.orders.submit(spec)).order
    assert order.status is OrderStatus.ACCEPTED and rt.book.holds(order.id)
    return order


async def take(rt: Runtime, cid: str, side: Side, price: str) -> Order:
    """An IOC from the taker: it trades with whatever rests at `price` or better."""
    spec = OrderSpec(
        account=TAKER,
        client_order_id=cid,
        side=side,
        order_type=OrderType.LIMIT,
        quantity=Decimal("1"),
        instrument="WETH/USDC",
        price=Decimal(price),
        time_in_force=TimeInForce.IOC,
    )
    return (await rt.orders.submit(spec)).order


async def current(rt: Runtime, order: Order) -> Order:
    return await rt.orders.get(order.id)


def records(rt: Runtime, *prefixes: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, entity, payload) of the audit records whose kind starts with a prefix, oldest
    first; the chain verifies."""
    table = audit_log.AUDIT_LOG
    with rt.read_engine.connect() as connection:
        assert audit_log.verify(connection).ok
        rows = connection.execute(
            select(table.c.kind, table.c.entity_id, table.c.payload).order_by(table.c.seq)
        ).all()
    return [
        (row.kind, row.entity_id, json.loads(row.payload))
        for row in rows
        if row.kind.startswith(prefixes)
    ]


def test_a_refreshed_countdown_keeps_the_orders_and_one_left_to_run_out_cancels_them(
    database_url: str, clock: ManualClock
) -> None:
    async def body() -> None:
        async with gateway(database_url, clock) as rt:
            switch = rt.dead_man_switch
            ask = await rest(rt, MAKER, "ask", Side.SELL, "3000")
            bid = await rest(rt, MAKER, "bid", Side.BUY, "2900")
            others = await rest(rt, OTHER, "other", Side.SELL, "3010")
            armed = await switch.cancel_all_after(SCOPE, {MAKER}, 5)
            assert armed is not None and armed.deadline == clock.now() + timedelta(seconds=5)
            assert switch.countdown(SCOPE) == armed

            clock.advance(seconds=4)
            assert await switch.fire_due() == Firing()
            refreshed = await switch.cancel_all_after(SCOPE, {MAKER}, 5)
            assert refreshed is not None and refreshed.armed_at == armed.armed_at
            assert refreshed.deadline == clock.now() + timedelta(seconds=5)
            clock.advance(seconds=4)  # 8 s after arming, 4 after the refresh
            assert await switch.fire_due() == Firing()
            assert (await current(rt, ask)).status is OrderStatus.ACCEPTED

            clock.advance(seconds=1)  # the refreshed deadline, to the microsecond
            fired = await switch.fire_due()
            assert fired.countdowns == (refreshed,)
            assert {o.id for o in fired.cancelled} == {ask.id, bid.id}
            for order in (ask, bid):
                after = await current(rt, order)
                assert after.status is OrderStatus.CANCELLED
                assert after.status_reason == COUNTDOWN_EXPIRED
                assert not rt.book.holds(order.id)
            assert (await current(rt, others)).status is OrderStatus.ACCEPTED
            assert rt.book.holds(others.id)
            assert switch.countdown(SCOPE) is None
            assert await switch.fire_due() == Firing()  # it fired once

            trail = records(rt, "dead_man_switch.", "order.cancelled")
            assert [(kind, entity) for kind, entity, _ in trail] == [
                ("dead_man_switch.armed", SCOPE),
                ("dead_man_switch.armed", SCOPE),
                ("order.cancelled", ask.id),
                ("order.cancelled", bid.id),
                ("dead_man_switch.fired", SCOPE),
            ]
            assert [facts["refresh"] for _, _, facts in trail[:2]] == [False, True]
            fired_facts = trail[-1][2]
            assert fired_facts["cancelled_orders"] == 2 and fired_facts["accounts"] == [MAKER]
            assert fired_facts["deadline"] == refreshed.deadline.isoformat()
            with rt.read_engine.connect() as connection:
                assert store.countdowns(connection) == []

    run(body)


def test_a_refresh_committed_before_the_timer_ran_saves_the_orders(
    database_url: str, clock: ManualClock
) -> None:
    async def body() -> None:
        async with gateway(database_url, clock) as rt:
            switch = rt.dead_man_switch
            ask = await rest(rt, MAKER, "ask", Side.SELL, "3000")
            await switch.cancel_all_after(SCOPE, {MAKER}, 2)
            clock.advance(seconds=3)  # ran out, but nothing has fired it yet
            late = await switch.cancel_all_after(SCOPE, {MAKER}, 2)
            assert await switch.fire_due() == Firing()
            assert (await current(rt, ask)).status is OrderStatus.ACCEPTED
            assert switch.countdown(SCOPE) == late

    run(body)


def test_zero_disarms_and_timeouts_out_of_bounds_are_refused(
    database_url: str, clock: ManualClock
) -> None:
    async def body() -> None:
        async with gateway(database_url, clock) as rt:
            switch = rt.dead_man_switch
            ask = await rest(rt, MAKER, "ask", Side.SELL, "3000")
            assert await switch.cancel_all_after(SCOPE, set(), 0) is None  # none armed: no-op
            await switch.cancel_all_after(SCOPE, {MAKER}, Decimal("1.5"))
            assert await switch.cancel_all_after(SCOPE, set(), 0) is None
            assert switch.countdown(SCOPE) is None
            clock.advance(hours=1)
            assert await switch.fire_due() == Firing()
            assert (await current(rt, ask)).status is OrderStatus.ACCEPTED

            for seconds in (-1, Decimal("0.5"), 86_401, Decimal("1.0005"), Decimal("NaN")):
                with pytest.raises(InvalidCountdown) as refused:
                    await switch.cancel_all_after(SCOPE, {MAKER}, seconds)
                assert refused.value.code == "invalid_countdown"
                assert refused.value.field == "timeout_seconds"
            with pytest.raises(InvalidCountdown) as refused:
                await switch.cancel_all_after(SCOPE, set(), 10)
            assert refused.value.code == "accounts_required"

            trail = records(rt, "dead_man_switch.")
            assert [kind for kind, _, _ in trail] == [
                "dead_man_switch.armed",
                "dead_man_switch.disarmed",
            ]
            assert trail[0][2]["timeout_seconds"] == "1.5"

    run(body)


def test_closing_a_session_that_opted_in_cancels_its_accounts_orders(
    database_url: str, clock: ManualClock
) -> None:
    async def body() -> None:
        async with gateway(database_url, clock) as rt:
            switch = rt.dead_man_switch
            ask = await rest(rt, MAKER, "ask", Side.SELL, "3000")
            others = await rest(rt, OTHER, "other", Side.SELL, "3010")

            opened = await switch.open_session("socket-1", {MAKER})
            assert opened.accounts == {MAKER} and switch.has_session("socket-1")
            # a connection that never opted in closes: nothing happens
            assert await switch.close_session("socket-2") == Firing()
            # one that opted out while connected: nothing either
            await switch.open_session("socket-3", {MAKER})
            await switch.forget_session("socket-3")
            assert await switch.close_session("socket-3") == Firing()
            assert (await current(rt, ask)).status is OrderStatus.ACCEPTED

            closed = await switch.close_session("socket-1")
            assert [s.session_id for s in closed.sessions] == ["socket-1"]
            assert [o.id for o in closed.cancelled] == [ask.id]
            after = await current(rt, ask)
            assert after.status is OrderStatus.CANCELLED
            assert after.status_reason == SESSION_CLOSED
            assert (await current(rt, others)).status is OrderStatus.ACCEPTED
            assert not switch.has_session("socket-1")
            assert await switch.close_session("socket-1") == Firing()  # once

            trail = records(rt, "session.", "order.cancelled")
            assert [(kind, entity) for kind, entity, _ in trail] == [
                ("session.cancel_on_disconnect_enabled", "socket-1"),
                ("session.cancel_on_disconnect_enabled", "socket-3"),
                ("session.cancel_on_disconnect_disabled", "socket-3"),
                ("order.cancelled", ask.id),
                ("session.cancel_on_disconnect", "socket-1"),
            ]
            assert trail[-1][2]["cancelled_orders"] == 1
            with rt.read_engine.connect() as connection:
                assert store.sessions(connection) == []
            with pytest.raises(InvalidCountdown) as refused:
                await switch.open_session("socket-4", set())
            assert refused.value.code == "accounts_required"

    run(body)


def test_a_countdown_that_ran_out_while_down_cancels_before_the_first_order_can_match(
    database_url: str, clock: ManualClock
) -> None:
    async def body() -> None:
        async with gateway(database_url, clock) as rt:
            ask = await rest(rt, MAKER, "ask", Side.SELL, "3000")
            others = await rest(rt, OTHER, "other", Side.SELL, "3010")
            await rt.dead_man_switch.cancel_all_after(SCOPE, {MAKER}, 10)
            await rt.dead_man_switch.cancel_all_after("trader:later", {OTHER}, 3600)
        clock.advance(seconds=11)  # the gateway is down past the deadline

        async with gateway(database_url, clock) as rt:
            # the first order after the start crosses the maker's ask: nothing to take
            taker = await take(rt, "t1", Side.BUY, "3000")
            assert taker.status is OrderStatus.CANCELLED and taker.filled_quantity == 0
            after = await current(rt, ask)
            assert after.status is OrderStatus.CANCELLED
            assert after.status_reason == COUNTDOWN_EXPIRED
            assert rt.dead_man_switch.countdown(SCOPE) is None
            # a countdown still running comes back and runs on
            later = rt.dead_man_switch.countdown("trader:later")
            assert later is not None and later.accounts == {OTHER}
            assert (await current(rt, others)).status is OrderStatus.ACCEPTED
            trail = records(rt, "dead_man_switch.fired", "order.")
            kinds = [(kind, entity) for kind, entity, _ in trail]
            fired_at = kinds.index(("dead_man_switch.fired", SCOPE))
            assert kinds.index(("order.cancelled", ask.id)) < fired_at
            assert fired_at < kinds.index(("order.accepted", taker.id))

            clock.advance(hours=1)
            fired = await rt.dead_man_switch.fire_due()
            assert [c.scope for c in fired.countdowns] == ["trader:later"]
            assert [o.id for o in fired.cancelled] == [others.id]

    run(body)


def test_a_session_left_registered_by_the_previous_process_cancels_at_start(
    database_url: str, clock: ManualClock
) -> None:
    async def body() -> None:
        async with gateway(database_url, clock) as rt:
            ask = await rest(rt, MAKER, "ask", Side.SELL, "3000")
            others = await rest(rt, OTHER, "other", Side.SELL, "3010")
            await rt.dead_man_switch.open_session("socket-1", {MAKER})
        # the process ended with the connection open: its close never ran

        async with gateway(database_url, clock) as rt:
            taker = await take(rt, "t1", Side.BUY, "3000")
            assert taker.status is OrderStatus.CANCELLED and taker.filled_quantity == 0
            after = await current(rt, ask)
            assert after.status is OrderStatus.CANCELLED
            assert after.status_reason == SESSION_DIED
            assert (await current(rt, others)).status is OrderStatus.ACCEPTED
            assert not rt.dead_man_switch.has_session("socket-1")
            with rt.read_engine.connect() as connection:
                assert store.sessions(connection) == []
            [(_, entity, facts)] = records(rt, "session.cancel_on_disconnect")[1:]
            assert entity == "socket-1" and facts["reason"] == SESSION_DIED

    run(body)


def test_the_timer_fires_a_countdown_once_its_deadline_passes(
    database_url: str, clock: ManualClock
) -> None:
    async def body() -> None:
        async with gateway(database_url, clock, timer=True) as rt:
            ask = await rest(rt, MAKER, "ask", Side.SELL, "3000")
            events = rt.events.subscribe(frozenset({MAKER}))
            await rt.dead_man_switch.cancel_all_after(SCOPE, {MAKER}, 1)
            clock.advance(seconds=1)
            # the timer wakes within its poll interval (1 s) and sees the deadline passed;
            # the bound only keeps a broken timer from hanging the suite
            seen: list[str] = []
            while "dead_man_switch.fired" not in seen:
                event = await asyncio.wait_for(events.queue.get(), timeout=30)
                seen.append(event["type"])
            assert seen[-2:] == ["order.cancelled", "dead_man_switch.fired"]
            assert (await current(rt, ask)).status_reason == COUNTDOWN_EXPIRED

    run(body)


def test_the_runtime_stops_while_the_timer_is_being_woken(
    database_url: str, clock: ManualClock
) -> None:
    async def body() -> None:
        rt = Runtime.build(Settings(database_url=database_url), clock=clock)
        await rt.start(monitor=False, algos=False, reconcile_interval=None, settle_interval=None)
        await rt.dead_man_switch.cancel_all_after(SCOPE, {MAKER}, 30)  # wakes the timer...
        stopping = asyncio.ensure_future(rt.stop())  # ...as its task is cancelled
        # the bound only turns a hang into a failure
        done, _ = await asyncio.wait({stopping}, timeout=30)
        assert stopping in done, "the timer task ignored its cancellation"

    run(body)
