"""The order service through the group-commit writer, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from gateway.config import Settings
from gateway.domain.errors import IllegalTransition
from gateway.domain.lifecycle import OrderStatus, SettlementStatus
from gateway.domain.orders import OrderSpec, OrderType, Side, TimeInForce
from gateway.oms.service import DuplicateClientOrderId, OrderNotFound, VersionConflict
from gateway.runtime import Runtime
from gateway.store import audit_log
from gateway.store import order_repository as repo
from tests.conftest import ManualClock

ACCOUNTS = [
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
]


def spec(n: int, account: str = ACCOUNTS[0], **changes: Any) -> OrderSpec:
    values: dict[str, Any] = {
        "account": account,
        "client_order_id": f"c{n}",
        "side": Side.BUY if n % 2 else Side.SELL,
        "order_type": OrderType.LIMIT,
        "quantity": Decimal("0.5"),
        "instrument": "WETH/USDC",
        # buys below sells: these tests are about the writer, not self-trade prevention
        "price": Decimal("3000") + n if n % 2 == 0 else Decimal("2000") + n,
    }
    values.update(changes)
    return OrderSpec(**values)


def run(database_url: str, clock: ManualClock, body: Callable[[Runtime], Awaitable[None]]) -> None:
    async def main() -> None:
        rt = Runtime.build(Settings(database_url=database_url, commit_batch_max=64), clock=clock)
        await rt.start(expiry_interval=None)
        try:
            await body(rt)
        finally:
            await rt.stop()

    asyncio.run(main())


def count_orders(rt: Runtime) -> int:
    with rt.read_engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(repo.ORDERS)).scalar_one())


SCREENED = "compliance.screened"


@dataclass(frozen=True)
class AuditTrail:
    """The audit log read back, its two streams apart: what happened to orders, and the
    compliance decision recorded with each accepted (or refused) submission."""

    verification: audit_log.ChainVerification
    kinds: list[str]  # every record's kind, oldest first
    order_records: list[tuple[str, str]]  # (kind, entity id), oldest first
    screenings: list[tuple[str, str, bool]]  # (account, client_order_id, allowed), oldest first

    @property
    def order_kinds(self) -> list[str]:
        return [kind for kind, _ in self.order_records]

    def screened_once_each(self) -> set[tuple[str, str]]:
        """The keys screened, after checking none was screened twice and all were allowed."""
        counts = Counter((account, coid) for account, coid, _ in self.screenings)
        twice = {key: n for key, n in counts.items() if n != 1}
        assert not twice, f"screened more than once: {twice}"
        assert all(allowed for *_, allowed in self.screenings)
        return set(counts)


def audit_trail(engine: Engine) -> AuditTrail:
    log = audit_log.AUDIT_LOG
    with engine.connect() as connection:
        verification = audit_log.verify(connection)
        rows = connection.execute(
            select(log.c.kind, log.c.entity_id, log.c.payload).order_by(log.c.seq)
        ).all()
    assert verification.ok, verification.problems
    assert verification.records == len(rows)
    order_records, screenings = [], []
    for row in rows:
        if row.kind == SCREENED:
            facts = json.loads(row.payload)
            screenings.append((facts["account"], facts["client_order_id"], facts["allowed"]))
        else:
            order_records.append((row.kind, row.entity_id))
    return AuditTrail(verification, [row.kind for row in rows], order_records, screenings)


def test_concurrent_duplicates_make_one_order_each(database_url: str, clock: ManualClock) -> None:
    async def body(rt: Runtime) -> None:
        specs = [spec(n % 150, ACCOUNTS[n % 2]) for n in range(600)]
        results = await asyncio.gather(*(rt.orders.submit(s) for s in specs))
        by_key: dict[tuple[str, str], set[str]] = {}
        for s, result in zip(specs, results, strict=True):
            by_key.setdefault((s.account, s.client_order_id), set()).add(result.order.id)
        assert all(len(ids) == 1 for ids in by_key.values())
        assert sum(r.created for r in results) == len(by_key) == 150
        assert count_orders(rt) == 150
        trail = audit_trail(rt.read_engine)
        # one acceptance per order and one screening per key: a duplicate adds neither
        order_ids = {next(iter(ids)) for ids in by_key.values()}
        assert trail.order_kinds == ["order.accepted"] * 150
        assert {entity for _, entity in trail.order_records} == order_ids
        assert trail.screened_once_each() == set(by_key)
        assert trail.verification.records == 300
        assert rt.writer.batches < rt.writer.commands  # concurrent writes shared commits

    run(database_url, clock, body)


def test_a_failing_command_rolls_back_alone(database_url: str, clock: ManualClock) -> None:
    async def body(rt: Runtime) -> None:
        await rt.orders.submit(spec(1))
        changed = spec(1, quantity=Decimal("2"))  # same client_order_id, different order
        outcomes = await asyncio.gather(
            rt.orders.submit(spec(2)),
            rt.orders.submit(changed),
            rt.orders.submit(spec(3)),
            return_exceptions=True,
        )
        assert isinstance(outcomes[1], DuplicateClientOrderId)
        assert count_orders(rt) == 3
        trail = audit_trail(rt.read_engine)
        # the refused duplicate left no acceptance and no second screening of c1
        assert trail.order_kinds == ["order.accepted"] * 3
        assert trail.screened_once_each() == {(ACCOUNTS[0], f"c{n}") for n in (1, 2, 3)}
        assert trail.verification.records == 6

    run(database_url, clock, body)


def test_lifecycle_through_the_service(database_url: str, clock: ManualClock) -> None:
    async def body(rt: Runtime) -> None:
        events = rt.events.subscribe(None)
        order = (await rt.orders.submit(spec(1, quantity=Decimal("2")))).order
        clock.advance(seconds=1)
        amended = await rt.orders.amend(
            order.id, price=Decimal("2999.5"), quantity=None, expected_version=order.version
        )
        with pytest.raises(VersionConflict):
            await rt.orders.amend(
                order.id, price=Decimal("2999"), quantity=None, expected_version=order.version
            )
        filled, fill = await rt.orders.record_fill(
            order.id,
            quantity=Decimal("0.5"),
            price=Decimal("2999.5"),
            fee=Decimal("0.3"),
            venue="internal",
        )
        assert filled.status is OrderStatus.PARTIALLY_FILLED
        assert filled.settlement is SettlementStatus.PENDING
        cancelled = await rt.orders.cancel(order.id)
        assert cancelled.status is OrderStatus.CANCELLED
        assert cancelled.filled_quantity == Decimal("0.5")
        with pytest.raises(IllegalTransition):
            await rt.orders.cancel(order.id)
        with pytest.raises(OrderNotFound):
            await rt.orders.cancel("ord_missing")
        stored = await rt.orders.get(order.id)
        assert stored == cancelled
        with rt.read_engine.connect() as connection:
            assert repo.fills_for_order(connection, order.id) == [fill]
        kinds = []
        while not events.queue.empty():
            kinds.append(events.queue.get_nowait()["type"])
        assert kinds == [
            "order.accepted",
            "order.amended",
            "order.partially_filled",
            "fill.recorded",
            "order.cancelled",
        ]
        assert amended.version == order.version + 1
        trail = audit_trail(rt.read_engine)
        # screened in the acceptance's transaction, so recorded just before it
        assert trail.kinds == [
            SCREENED,
            "order.accepted",
            "order.amended",
            "order.partially_filled",
            "fill.recorded",
            "order.cancelled",
        ]
        assert trail.screened_once_each() == {(ACCOUNTS[0], "c1")}
        assert trail.verification.records == 6

    run(database_url, clock, body)


def test_a_venue_reason_with_control_characters_is_stored_on_both_backends(
    database_url: str, clock: ManualClock
) -> None:
    """A venue's message ends up in an order's reason and its audit record: a NUL in it
    (which PostgreSQL's text and jsonb refuse) must not fail the write and lose the cancel."""

    async def body(rt: Runtime) -> None:
        order = (await rt.orders.submit(spec(1))).order
        cancelled = await rt.orders.cancel(order.id, reason="binance: bad\x00order\r\n")
        assert cancelled.status_reason == "binance: bad order  "
        assert (await rt.orders.get(order.id)) == cancelled
        trail = audit_trail(rt.read_engine)
        assert trail.order_kinds[-1] == "order.cancelled" and trail.verification.ok

    run(database_url, clock, body)


def test_immediate_orders_never_rest(database_url: str, clock: ManualClock) -> None:
    async def body(rt: Runtime) -> None:
        for n, tif in enumerate((TimeInForce.IOC, TimeInForce.FOK)):
            order = (await rt.orders.submit(spec(n, time_in_force=tif))).order
            assert order.status is OrderStatus.CANCELLED
            assert order.status_reason

    run(database_url, clock, body)


def test_good_till_date_orders_expire_on_time(database_url: str, clock: ManualClock) -> None:
    async def body(rt: Runtime) -> None:
        soon = clock.now() + timedelta(seconds=10)
        gtd = (
            await rt.orders.submit(spec(1, time_in_force=TimeInForce.GTD, expires_at=soon))
        ).order
        gtc = (await rt.orders.submit(spec(2))).order
        clock.advance(seconds=9)
        assert await rt.orders.expire_due() == 0
        clock.advance(seconds=1)
        assert await rt.orders.expire_due() == 1
        assert (await rt.orders.get(gtd.id)).status is OrderStatus.EXPIRED
        assert (await rt.orders.get(gtc.id)).status is OrderStatus.ACCEPTED
        assert await rt.orders.expire_due() == 0

    run(database_url, clock, body)
