"""Statements run on the driver's cursor store exactly what SQLAlchemy's `execute` stores,
fail with SQLAlchemy's errors, and commit or roll back with the caller's transaction, on
both backends."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.store.driver_statements import DriverStatement
from gateway.store.order_repository import ACCOUNTS, FILLS, ORDERS

EXAMPLES = itertools.count()
MOMENT = datetime(2026, 12, 7, 10, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture(autouse=True)
def account(engine: Engine) -> None:
    """The account every order row here belongs to."""
    with engine.begin() as connection:
        connection.execute(insert(ACCOUNTS), [{"address": "0xa", "created_at": MOMENT}])


def order_row(n: int, **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": f"ord_{n}",
        "account": "0xa",
        "client_order_id": f"c{n}",
        "request_hash": "h",
        "instrument": "WETH/USDC",
        "side": "buy",
        "order_type": "limit",
        "time_in_force": "GTC",
        "post_only": False,
        "quantity": Decimal("0.5"),
        "price": Decimal("2800.25"),
        "stop_price": None,
        "expires_at": None,
        "status": "accepted",
        "settlement": "none",
        "filled_quantity": Decimal(0),
        "filled_notional": Decimal(0),
        "status_reason": None,
        "book_priority": 7,
        "sig_nonce": None,
        "sig_deadline": None,
        "signature": None,
        "version": 1,
        "created_at": MOMENT,
        "updated_at": MOMENT,
    }
    row.update(changes)
    return row


def stored(engine: Engine, order_id: str) -> dict[str, object]:
    with engine.connect() as connection:
        row = connection.execute(select(ORDERS).where(ORDERS.c.id == order_id)).one()
    values = dict(row._mapping)
    values.pop("seq")
    return values


# the fixture's database is shared across examples on purpose: each example writes rows of
# its own (numbered) and compares only those
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    quantity=st.decimals(min_value=Decimal("1e-18"), max_value=Decimal("1e12"), places=18),
    offset=st.integers(min_value=-(10**6), max_value=10**6),
    post_only=st.booleans(),
    # any text PostgreSQL's text can hold (not NUL); reasons are the gateway's own words or a
    # venue's message
    reason=st.one_of(st.none(), st.text(st.characters(blacklist_characters="\x00"), max_size=30)),
)
def test_a_row_reads_back_as_if_execute_had_stored_it(
    engine: Engine, quantity: Decimal, offset: int, post_only: bool, reason: str | None
) -> None:
    moment = MOMENT + timedelta(seconds=offset)
    changes = {
        "quantity": quantity,
        "post_only": post_only,
        "status_reason": reason,
        "updated_at": moment.astimezone(UTC),
    }
    key = str(next(EXAMPLES))
    with engine.begin() as connection:
        connection.execute(
            insert(ORDERS), [order_row(0, id=f"sa{key}", client_order_id=f"s{key}", **changes)]
        )
        DriverStatement(insert(ORDERS)).executemany(
            connection, [order_row(0, id=f"dr{key}", client_order_id=f"d{key}", **changes)]
        )
    by_execute, by_driver = stored(engine, f"sa{key}"), stored(engine, f"dr{key}")
    assert by_driver.pop("id") != by_execute.pop("id")
    assert by_driver.pop("client_order_id") == f"d{key}"
    by_execute.pop("client_order_id")
    assert by_driver == by_execute
    assert by_driver["quantity"] == quantity and by_driver["updated_at"] == moment


def test_an_update_counts_the_rows_it_changed_and_keeps_its_literals(engine: Engine) -> None:
    with engine.begin() as connection:
        DriverStatement(insert(ORDERS)).executemany(connection, [order_row(1), order_row(2)])
    bump = DriverStatement(
        update(ORDERS)
        .where(ORDERS.c.id == bindparam("order_id"), ORDERS.c.version == 1)
        .values(version=bindparam("new_version"))
    )
    with engine.begin() as connection:
        assert bump.execute(connection, {"order_id": "ord_1", "new_version": 2}) == 1
        # the literal `version == 1` still holds: the second write finds no row
        assert bump.execute(connection, {"order_id": "ord_1", "new_version": 3}) == 0
    assert stored(engine, "ord_1")["version"] == 2
    assert stored(engine, "ord_2")["version"] == 1


def test_a_driver_error_is_sqlalchemys_and_rolls_back_with_the_transaction(
    engine: Engine,
) -> None:
    statement = DriverStatement(insert(ORDERS))
    with pytest.raises(IntegrityError), engine.begin() as connection:
        statement.executemany(connection, [order_row(3)])
        statement.executemany(connection, [order_row(4, client_order_id="c3")])  # same key
    with engine.connect() as connection:
        assert connection.execute(select(ORDERS.c.id)).all() == []


def test_a_fetch_reads_the_first_row_or_none(engine: Engine) -> None:
    first = DriverStatement(
        select(FILLS.c.id, FILLS.c.quantity).where(FILLS.c.order_id == bindparam("order_id"))
    )
    with engine.connect() as connection:
        assert first.fetch_one(connection, {"order_id": "nothing"}) is None


def test_expanding_parameters_are_refused(engine: Engine) -> None:
    statement = DriverStatement(
        select(ORDERS.c.id).where(ORDERS.c.id.in_(bindparam("ids", expanding=True)))
    )
    with engine.connect() as connection, pytest.raises(ValueError, match="expanding"):
        statement.fetch_one(connection, {"ids": ["a"]})
