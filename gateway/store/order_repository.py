"""Reading and writing orders, legs, fills and accounts (SQLAlchemy Core: the hot path)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, text, tuple_, update

from gateway.domain.fills import Fill
from gateway.domain.lifecycle import OrderStatus, SettlementStatus
from gateway.domain.orders import (
    Leg,
    Order,
    OrderSignature,
    OrderSpec,
    OrderType,
    Side,
    TimeInForce,
)
from gateway.store import commit_memory
from gateway.store.driver_statements import DriverStatement
from gateway.store.tables import AccountRow, FillRow, OrderLegRow, OrderRow

ORDERS = OrderRow.__table__  # type: ignore[attr-defined]
LEGS = OrderLegRow.__table__  # type: ignore[attr-defined]
FILLS = FillRow.__table__  # type: ignore[attr-defined]
ACCOUNTS = AccountRow.__table__  # type: ignore[attr-defined]


# Hot-path statements are built once and run on the driver's cursor (driver_statements):
# building them per call, or SQLAlchemy's execution context, costs more than running them.
_INSERT_ORDERS = DriverStatement(insert(ORDERS))
_INSERT_FILLS = DriverStatement(insert(FILLS))
_SET_PRIORITY = DriverStatement(
    update(ORDERS)
    .where(ORDERS.c.id == bindparam("order_id"))
    .values(book_priority=bindparam("book_priority"))
)
_INSERT_LEGS = DriverStatement(insert(LEGS))
_ORDER_STATE_COLUMNS = (
    "status",
    "settlement",
    "filled_quantity",
    "filled_notional",
    "status_reason",
    "version",
    "updated_at",
    "price",
    "quantity",
)
# optimistic concurrency: the row changes only if nobody wrote since `previous_version`
_UPDATE_ORDER = DriverStatement(
    update(ORDERS)
    .where(ORDERS.c.id == bindparam("order_id"), ORDERS.c.version == bindparam("previous_version"))
    .values({name: bindparam(f"new_{name}") for name in _ORDER_STATE_COLUMNS})
)
# Text, not the dialects' `insert().on_conflict_do_nothing()`: SQLAlchemy cannot cache
# those, so every order paid a statement compile (~0.2 ms). SQLite and PostgreSQL share
# the syntax; the bound types keep each dialect's datetime handling.
_INSERT_ACCOUNTS = DriverStatement(
    text(
        "INSERT INTO accounts (address, created_at) VALUES (:address, :created_at) "
        "ON CONFLICT DO NOTHING"
    ).bindparams(
        bindparam("address", type_=ACCOUNTS.c.address.type),
        bindparam("created_at", type_=ACCOUNTS.c.created_at.type),
    )
)
_UPSERT_DIALECTS = frozenset({"sqlite", "postgresql"})
_ORDERS_BY_KEYS = select(ORDERS).where(
    tuple_(ORDERS.c.account, ORDERS.c.client_order_id).in_(bindparam("keys", expanding=True))
)


class StaleOrder(Exception):
    """The order changed since it was read (optimistic concurrency)."""


@dataclass(frozen=True, slots=True)
class StoredOrder:
    seq: int
    order: Order
    request_hash: str


_ACCOUNT_ROWS = "accounts"  # commit memory: addresses whose row exists


def ensure_accounts(connection: Connection, addresses: Sequence[str], now: datetime) -> None:
    """Create accounts that do not exist yet (portable upsert per dialect). Accounts that a
    committed transaction on this connection already ensured are skipped (the gateway never
    deletes one): most orders come from accounts that traded before."""
    known = commit_memory.kept(connection, _ACCOUNT_ROWS)
    missing = sorted({a for a in addresses if a not in known})
    if not missing:
        return
    commit_memory.note(connection, _ACCOUNT_ROWS, missing)
    rows = [{"address": a, "created_at": now} for a in missing]
    if connection.dialect.name in _UPSERT_DIALECTS:
        _INSERT_ACCOUNTS.executemany(connection, rows)
    else:  # pragma: no cover - other backends: check first
        existing = set(
            connection.execute(
                select(ACCOUNTS.c.address).where(
                    ACCOUNTS.c.address.in_([r["address"] for r in rows])
                )
            ).scalars()
        )
        absent = [r for r in rows if r["address"] not in existing]
        if absent:
            connection.execute(insert(ACCOUNTS), absent)


def _order_values(order: Order) -> dict[str, Any]:
    return {
        "status": order.status.value,
        "settlement": order.settlement.value,
        "filled_quantity": order.filled_quantity,
        "filled_notional": order.filled_notional,
        "status_reason": order.status_reason,
        "version": order.version,
        "updated_at": order.updated_at,
        "price": order.price,
        "quantity": order.quantity,
    }


def insert_orders(
    connection: Connection,
    orders: Sequence[tuple[Order, str]],
    priorities: dict[str, int | None] | None = None,
) -> None:
    """Insert new orders with their legs; `orders` pairs each order with its request hash;
    `priorities`: the book priority of those resting on the internal book."""
    rows, legs = [], []
    for order, request_hash in orders:
        spec = order.spec
        rows.append(
            {
                "id": order.id,
                "account": spec.account,
                "client_order_id": spec.client_order_id,
                "request_hash": request_hash,
                "instrument": spec.instrument,
                "side": spec.side.value,
                "order_type": spec.order_type.value,
                "time_in_force": spec.time_in_force.value,
                "post_only": spec.post_only,
                "stop_price": spec.stop_price,
                "expires_at": spec.expires_at,
                "created_at": order.created_at,
                "sig_nonce": None if spec.signed is None else str(spec.signed.nonce),
                "sig_deadline": None if spec.signed is None else spec.signed.deadline,
                "signature": None if spec.signed is None else spec.signed.signature.hex(),
                **_order_values(order),
                "book_priority": None if priorities is None else priorities.get(order.id),
            }
        )
        for position, leg in enumerate(spec.legs):
            legs.append(
                {
                    "order_id": order.id,
                    "position": position,
                    "instrument": leg.instrument,
                    "side": leg.side.value,
                    "ratio": leg.ratio,
                }
            )
    if rows:
        _INSERT_ORDERS.executemany(connection, rows)
    if legs:
        _INSERT_LEGS.executemany(connection, legs)


def update_order(connection: Connection, order: Order, *, previous_version: int) -> None:
    """Write a new version of an order; fails if someone else wrote in between."""
    changed = _UPDATE_ORDER.execute(
        connection,
        {
            "order_id": order.id,
            "previous_version": previous_version,
            **{f"new_{name}": value for name, value in _order_values(order).items()},
        },
    )
    if changed != 1:
        raise StaleOrder(order.id)


def _legs_for(connection: Connection, order_ids: Sequence[str]) -> dict[str, tuple[Leg, ...]]:
    if not order_ids:
        return {}
    legs: dict[str, list[Leg]] = {}
    for row in connection.execute(
        select(LEGS)
        .where(LEGS.c.order_id.in_(order_ids))
        .order_by(LEGS.c.order_id, LEGS.c.position)
    ):
        legs.setdefault(row.order_id, []).append(Leg(row.instrument, Side(row.side), row.ratio))
    return {order_id: tuple(items) for order_id, items in legs.items()}


def _to_stored(row: Any, legs: tuple[Leg, ...]) -> StoredOrder:
    spec = OrderSpec(
        account=row.account,
        client_order_id=row.client_order_id,
        side=Side(row.side),
        order_type=OrderType(row.order_type),
        quantity=row.quantity,
        time_in_force=TimeInForce(row.time_in_force),
        instrument=row.instrument,
        legs=legs,
        price=row.price,
        stop_price=row.stop_price,
        post_only=row.post_only,
        expires_at=row.expires_at,
        signed=None
        if row.signature is None
        else OrderSignature(
            int(row.sig_nonce), int(row.sig_deadline), bytes.fromhex(row.signature)
        ),
    )
    order = Order(
        id=row.id,
        spec=spec,
        status=OrderStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        filled_quantity=row.filled_quantity,
        filled_notional=row.filled_notional,
        settlement=SettlementStatus(row.settlement),
        status_reason=row.status_reason,
        version=row.version,
        price=row.price,
        quantity=row.quantity,
    )
    return StoredOrder(seq=row.seq, order=order, request_hash=row.request_hash)


def _load(
    connection: Connection, statement: Any, parameters: dict[str, Any] | None = None
) -> list[StoredOrder]:
    rows = connection.execute(statement, parameters or {}).all()
    legs = _legs_for(connection, [r.id for r in rows if r.instrument is None])
    return [_to_stored(row, legs.get(row.id, ())) for row in rows]


def get_order(connection: Connection, order_id: str) -> StoredOrder | None:
    found = _load(connection, select(ORDERS).where(ORDERS.c.id == order_id))
    return found[0] if found else None


def get_by_client_order_id(
    connection: Connection, account: str, client_order_id: str
) -> StoredOrder | None:
    found = _load(
        connection,
        select(ORDERS).where(
            ORDERS.c.account == account, ORDERS.c.client_order_id == client_order_id
        ),
    )
    return found[0] if found else None


def get_by_client_order_ids(
    connection: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], StoredOrder]:
    """Orders by (account, client_order_id), many at once."""
    if not keys:
        return {}
    found = _load(connection, _ORDERS_BY_KEYS, {"keys": list(keys)})
    return {(s.order.spec.account, s.order.spec.client_order_id): s for s in found}


def client_order_keys(connection: Connection) -> Iterator[tuple[str, str]]:
    """Every (account, client_order_id) in the store, streamed."""
    rows = connection.execution_options(yield_per=10_000).execute(
        select(ORDERS.c.account, ORDERS.c.client_order_id)
    )
    yield from ((account, client_order_id) for account, client_order_id in rows)


@dataclass(frozen=True, slots=True)
class OrderFilter:
    account: str | None = None
    status: OrderStatus | None = None
    instrument: str | None = None


def list_orders(
    connection: Connection, filters: OrderFilter, *, after_seq: int, limit: int
) -> list[StoredOrder]:
    """Orders in submission order after a cursor (keyset pagination: stable under inserts)."""
    statement = select(ORDERS).where(ORDERS.c.seq > after_seq)
    if filters.account is not None:
        statement = statement.where(ORDERS.c.account == filters.account)
    if filters.status is not None:
        statement = statement.where(ORDERS.c.status == filters.status.value)
    if filters.instrument is not None:
        statement = statement.where(ORDERS.c.instrument == filters.instrument)
    return _load(connection, statement.order_by(ORDERS.c.seq).limit(limit))


def open_orders_due(connection: Connection, now: datetime, limit: int) -> list[StoredOrder]:
    """Open good-till-date orders whose time has come."""
    statement = (
        select(ORDERS)
        .where(
            ORDERS.c.status.in_([OrderStatus.ACCEPTED.value, OrderStatus.PARTIALLY_FILLED.value]),
            ORDERS.c.expires_at.is_not(None),
            ORDERS.c.expires_at <= now,
        )
        .order_by(ORDERS.c.seq)
        .limit(limit)
    )
    return _load(connection, statement)


def _fill_row(fill: Fill) -> dict[str, Any]:
    return {
        "id": fill.id,
        "order_id": fill.order_id,
        "account": fill.account,
        "instrument": fill.instrument,
        "side": fill.side.value,
        "quantity": fill.quantity,
        "price": fill.price,
        "fee": fill.fee,
        "gas": fill.gas or None,
        "trade_id": fill.trade_id,
        "venue": fill.venue,
        "executed_at": fill.executed_at,
        "settlement": fill.settlement.value,
    }


def insert_fill(connection: Connection, fill: Fill) -> None:
    connection.execute(insert(FILLS).values(**_fill_row(fill)))


def insert_fills(connection: Connection, fills: Sequence[Fill]) -> None:
    """Many fills in one statement."""
    if fills:
        _INSERT_FILLS.executemany(connection, [_fill_row(fill) for fill in fills])


def set_book_priorities(
    connection: Connection, priorities: Sequence[tuple[str, int | None]]
) -> None:
    """`set_book_priority` for many orders in one statement."""
    if priorities:
        _SET_PRIORITY.executemany(
            connection, [{"order_id": o, "book_priority": p} for o, p in priorities]
        )


def fills_for_order(connection: Connection, order_id: str) -> list[Fill]:
    rows = connection.execute(
        select(FILLS).where(FILLS.c.order_id == order_id).order_by(FILLS.c.executed_at, FILLS.c.id)
    )
    return [_fill(r) for r in rows]


def _fill(r: Any) -> Fill:
    return Fill(
        id=r.id,
        order_id=r.order_id,
        account=r.account,
        instrument=r.instrument,
        side=Side(r.side),
        quantity=r.quantity,
        price=r.price,
        fee=r.fee,
        venue=r.venue,
        executed_at=r.executed_at,
        settlement=SettlementStatus(r.settlement),
        tx_hash=r.tx_hash,
        gas=r.gas or Decimal(0),
        trade_id=r.trade_id,
    )


def open_orders(connection: Connection) -> list[StoredOrder]:
    """Every working order, oldest first (rebuilds the risk ledger at start-up)."""
    statement = (
        select(ORDERS)
        .where(
            ORDERS.c.status.in_([OrderStatus.ACCEPTED.value, OrderStatus.PARTIALLY_FILLED.value])
        )
        .order_by(ORDERS.c.seq)
    )
    return _load(connection, statement)


def open_signed_order_accounts(connection: Connection) -> list[tuple[str, str]]:
    """(id, account) of every working order that carries a signature: two columns, no
    order built (the key follower scans them every cycle, a market maker's many quotes
    included)."""
    statement = select(ORDERS.c.id, ORDERS.c.account).where(
        ORDERS.c.status.in_([OrderStatus.ACCEPTED.value, OrderStatus.PARTIALLY_FILLED.value]),
        ORDERS.c.signature.is_not(None),
    )
    return [(order_id, account) for order_id, account in connection.execute(statement)]


def signed_nonce_keys(connection: Connection) -> Iterator[tuple[str, int]]:
    """(account, nonce) of every stored signed order (streamed: a market maker's millions)."""
    statement = select(ORDERS.c.account, ORDERS.c.sig_nonce).where(ORDERS.c.sig_nonce.is_not(None))
    for account, nonce in connection.execution_options(yield_per=10_000).execute(statement):
        yield account, int(nonce)


def nonce_holders(
    connection: Connection, keys: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], list[str]]:
    """For each (account, nonce), the client order ids of the stored orders signed with it
    (the index on (account, sig_nonce) answers it)."""
    holders: dict[tuple[str, int], list[str]] = {}
    for account, nonce in dict.fromkeys(keys):
        statement = select(ORDERS.c.client_order_id).where(
            ORDERS.c.account == account, ORDERS.c.sig_nonce == str(nonce)
        )
        found = list(connection.scalars(statement))
        if found:
            holders[(account, nonce)] = found
    return holders


def get_orders(connection: Connection, order_ids: Sequence[str]) -> list[StoredOrder]:
    """The orders with these ids (those that exist), read in chunks."""
    found: list[StoredOrder] = []
    ids = list(order_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found += _load(connection, select(ORDERS).where(ORDERS.c.id.in_(chunk)))
    return found


def all_fills(connection: Connection) -> list[Fill]:
    """Every fill in execution order (positions are folded from them)."""
    rows = connection.execute(select(FILLS).order_by(FILLS.c.executed_at, FILLS.c.id))
    return [_fill(r) for r in rows]


def open_immediate_orders(connection: Connection) -> list[StoredOrder]:
    """Open ioc/fok orders: only an order being routed is ever in that state."""
    statement = (
        select(ORDERS)
        .where(
            ORDERS.c.status.in_([OrderStatus.ACCEPTED.value, OrderStatus.PARTIALLY_FILLED.value]),
            ORDERS.c.time_in_force.in_([TimeInForce.IOC.value, TimeInForce.FOK.value]),
        )
        .order_by(ORDERS.c.seq)
    )
    return _load(connection, statement)


def set_book_priority(connection: Connection, order_id: str, priority: int | None) -> None:
    connection.execute(update(ORDERS).where(ORDERS.c.id == order_id).values(book_priority=priority))


def book_orders(connection: Connection) -> list[tuple[StoredOrder, int]]:
    """Open orders resting on the internal book, in time priority: replaying them in this
    order rebuilds the books exactly (they did not cross when they rested)."""
    statement = (
        select(ORDERS)
        .where(
            ORDERS.c.book_priority.is_not(None),
            ORDERS.c.status.in_([OrderStatus.ACCEPTED.value, OrderStatus.PARTIALLY_FILLED.value]),
        )
        .order_by(ORDERS.c.book_priority)
    )
    rows = list(connection.execute(statement))
    legs = _legs_for(connection, [r.id for r in rows])
    return [(_to_stored(r, legs.get(r.id, ())), int(r.book_priority)) for r in rows]


def max_book_priority(connection: Connection) -> int:
    value = connection.execute(select(func.max(ORDERS.c.book_priority))).scalar()
    return int(value or 0)
