"""The store suite: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from gateway.domain.lifecycle import OrderStatus
from gateway.domain.orders import Leg, Order, OrderSpec, OrderType, Side
from gateway.store import audit_log
from gateway.store import order_repository as repo
from gateway.store.audit_log import AUDIT_HEAD, AUDIT_LOG, AuditEntry
from gateway.store.database import migrate

NOW = datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)
ACCOUNT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def make_order(n: int, **changes: object) -> Order:
    values: dict[str, object] = {
        "account": ACCOUNT,
        "client_order_id": f"c{n}",
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "quantity": Decimal("1.000000000000000001"),
        "instrument": "WETH/USDC",
        "price": Decimal("123456789012345678901234.25"),
    }
    values.update(changes)
    return Order.new(f"ord_{n}", OrderSpec(**values), NOW).accept(NOW)  # type: ignore[arg-type]


def store(engine: Engine, *orders: Order) -> None:
    with engine.begin() as connection:
        repo.ensure_accounts(connection, [o.spec.account for o in orders], NOW)
        repo.insert_orders(connection, [(o, "h" * 64) for o in orders])


MIGRATIONS = Path(__file__).resolve().parents[2] / "gateway/store/migrations/versions"


def test_migrations_create_every_table(engine: Engine) -> None:
    with engine.connect() as connection:
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    newest = max(p.name[:4] for p in MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))
    assert version == newest  # every migration ran
    migrate(engine)  # a second run is a no-op


def test_order_round_trips_exactly(engine: Engine) -> None:
    order = Order.new(
        "ord_1",
        OrderSpec(
            account=ACCOUNT,
            client_order_id="c1",
            side=Side.SELL,
            order_type=OrderType.LIMIT,
            quantity=Decimal("1.000000000000000001"),
            instrument="WETH/USDC",
            price=Decimal("123456789012345678901234.25"),
        ),
        NOW,
    ).accept(NOW)
    store(engine, order)
    with engine.connect() as connection:
        loaded = repo.get_order(connection, "ord_1")
    assert loaded is not None
    assert loaded.order == order
    assert loaded.order.quantity == Decimal("1.000000000000000001")
    assert loaded.order.created_at == NOW


def test_strategy_legs_round_trip_in_order(engine: Engine) -> None:
    legs = (
        Leg("WETH-20270326-2800-P", Side.BUY, 1),
        Leg("WETH-20270326-3000-P", Side.SELL, 1),
        Leg("WETH-20270326-3200-C", Side.SELL, 1),
        Leg("WETH-20270326-3500-C", Side.BUY, 2),
    )
    order = make_order(1, instrument=None, legs=legs, price=Decimal("-42.5"))
    store(engine, order)
    with engine.connect() as connection:
        loaded = repo.get_order(connection, "ord_1")
    assert loaded is not None and loaded.order.spec.legs == legs
    assert loaded.order.price == Decimal("-42.5")


def test_client_order_id_is_unique_per_account(engine: Engine) -> None:
    store(engine, make_order(1))
    with pytest.raises(IntegrityError):
        store(engine, make_order(2, client_order_id="c1"))
    other = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
    store(engine, make_order(3, client_order_id="c1", account=other))
    with engine.connect() as connection:
        assert repo.get_by_client_order_id(connection, other, "c1") is not None
        assert connection.execute(select(repo.ORDERS.c.id)).scalars().all() == ["ord_1", "ord_3"]


def test_optimistic_update_refuses_stale_versions(engine: Engine) -> None:
    order = make_order(1)
    store(engine, order)
    cancelled = order.cancel(NOW)
    with engine.begin() as connection:
        repo.update_order(connection, cancelled, previous_version=order.version)
    with pytest.raises(repo.StaleOrder), engine.begin() as connection:
        repo.update_order(connection, order.expire(NOW), previous_version=order.version)
    with engine.connect() as connection:
        loaded = repo.get_order(connection, "ord_1")
    assert loaded is not None and loaded.order.status is OrderStatus.CANCELLED


def test_keyset_pages_cover_everything_once(engine: Engine) -> None:
    other = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
    orders = [make_order(n, account=ACCOUNT if n % 3 else other) for n in range(1, 26)]
    store(engine, *orders)
    seen: list[str] = []
    after = 0
    with engine.connect() as connection:
        while True:
            page = repo.list_orders(
                connection, repo.OrderFilter(account=ACCOUNT), after_seq=after, limit=4
            )
            if not page:
                break
            seen.extend(p.order.id for p in page)
            after = page[-1].seq
    assert seen == [o.id for o in orders if o.spec.account == ACCOUNT]


def test_due_orders_are_open_gtd_orders_past_their_time(engine: Engine) -> None:
    due = make_order(1, expires_at=NOW - timedelta(seconds=1))
    later = make_order(2, expires_at=NOW + timedelta(seconds=1))
    gone = make_order(3, expires_at=NOW - timedelta(seconds=1)).cancel(NOW)
    store(engine, due, later, gone)
    with engine.connect() as connection:
        found = repo.open_orders_due(connection, NOW, 10)
    assert [s.order.id for s in found] == ["ord_1"]


# -- the audit log ----------------------------------------------------------------------


def append(engine: Engine, count: int, start: int = 0) -> None:
    with engine.begin() as connection:
        audit_log.append(
            connection,
            [
                AuditEntry("order.accepted", f"ord_{start + i}", {"n": start + i, "q": "1.5"})
                for i in range(count)
            ],
            NOW,
        )


def test_intact_log_verifies(engine: Engine) -> None:
    append(engine, 5)
    append(engine, 3, start=5)
    with engine.connect() as connection:
        result = audit_log.verify(connection)
    assert result.ok and result.records == 8


TAMPERING = {
    "edited payload": lambda c: c.execute(
        update(AUDIT_LOG).where(AUDIT_LOG.c.seq == 3).values(payload='{"n":3,"q":"150"}')
    ),
    "edited and rehashed row": lambda c: c.execute(
        update(AUDIT_LOG)
        .where(AUDIT_LOG.c.seq == 3)
        .values(
            payload="{}",
            hash=audit_log.record_hash(
                c.execute(select(AUDIT_LOG.c.prev_hash).where(AUDIT_LOG.c.seq == 3)).scalar(),
                3,
                "order.accepted",
                "ord_2",
                NOW,
                "{}",
            ),
        )
    ),
    "deleted middle row": lambda c: c.execute(delete(AUDIT_LOG).where(AUDIT_LOG.c.seq == 4)),
    "deleted tail": lambda c: c.execute(delete(AUDIT_LOG).where(AUDIT_LOG.c.seq >= 5)),
    "changed kind": lambda c: c.execute(
        update(AUDIT_LOG).where(AUDIT_LOG.c.seq == 1).values(kind="order.cancelled")
    ),
    "changed time": lambda c: c.execute(
        update(AUDIT_LOG).where(AUDIT_LOG.c.seq == 2).values(created_at=NOW + timedelta(seconds=1))
    ),
    "inserted row": lambda c: c.execute(
        insert(AUDIT_LOG).values(
            seq=99,
            kind="x",
            entity_id="y",
            payload="{}",
            created_at=NOW,
            prev_hash="0" * 64,
            hash="0" * 64,
        )
    ),
    "moved head": lambda c: c.execute(update(AUDIT_HEAD).values(seq=4)),
}


@pytest.mark.parametrize("tamper", list(TAMPERING))
def test_any_tampering_is_detected(engine: Engine, tamper: str) -> None:
    append(engine, 6)
    with engine.begin() as connection:
        TAMPERING[tamper](connection)
    with engine.connect() as connection:
        result = audit_log.verify(connection)
    assert not result.ok
    assert result.problems
