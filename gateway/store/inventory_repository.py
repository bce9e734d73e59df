"""Reads of the operator's inventory: its wallet's trades, their pending part, its nonces,
and the exchange executions that hedge it. SQLAlchemy Core, portable SQL."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Connection, func, or_, select

from gateway.domain.inventory import HedgeExecution, InventoryTrade
from gateway.domain.lifecycle import SettlementStatus
from gateway.domain.orders import Side
from gateway.store.order_repository import FILLS, ORDERS
from gateway.store.venue_orders import VENUE_ORDERS


def orders_of(connection: Connection, account: str) -> int:
    """How many orders the account has (the inventory's next nonce counts from it)."""
    statement = select(func.count()).select_from(ORDERS).where(ORDERS.c.account == account)
    return int(connection.execute(statement).scalar_one())


def trades(connection: Connection, wallet: str) -> list[InventoryTrade]:
    """Every fill of the inventory wallet that settles on chain (a trade), oldest first;
    failed ones are void."""
    rows = connection.execute(
        select(FILLS)
        .where(
            FILLS.c.account == wallet,
            FILLS.c.trade_id.is_not(None),
            FILLS.c.settlement != SettlementStatus.FAILED.value,
        )
        .order_by(FILLS.c.executed_at, FILLS.c.id)
    )
    return [
        InventoryTrade(
            r.instrument,
            Side(r.side),
            r.quantity,
            r.price,
            r.settlement == SettlementStatus.SETTLED.value,
        )
        for r in rows
    ]


def pending_trades(connection: Connection, wallet: str) -> list[InventoryTrade]:
    return [t for t in trades(connection, wallet) if not t.settled]


def hedges(connection: Connection, wallet: str) -> list[HedgeExecution]:
    """What the operator's exchange accounts executed for the inventory: the exchange
    children of orders whose fills traded with this inventory wallet, and of its own hedge
    orders (a legged strategy's clips)."""
    its_trades = select(FILLS.c.trade_id).where(
        FILLS.c.account == wallet, FILLS.c.trade_id.is_not(None)
    )
    traded_with_it = select(FILLS.c.order_id).where(
        FILLS.c.trade_id.in_(its_trades), FILLS.c.account != wallet
    )
    rows = connection.execute(
        select(
            VENUE_ORDERS.c.instrument,
            VENUE_ORDERS.c.venue,
            VENUE_ORDERS.c.side,
            VENUE_ORDERS.c.filled,
            VENUE_ORDERS.c.filled_notional,
            VENUE_ORDERS.c.fee,
        )
        .join(ORDERS, ORDERS.c.id == VENUE_ORDERS.c.order_id)
        .where(
            VENUE_ORDERS.c.filled > 0,
            or_(ORDERS.c.account == wallet, VENUE_ORDERS.c.order_id.in_(traded_with_it)),
        )
        .order_by(VENUE_ORDERS.c.created_at, VENUE_ORDERS.c.client_order_id)
    )
    return [
        HedgeExecution(
            r.instrument, r.venue, Side(r.side), r.filled, r.filled_notional / r.filled, r.fee
        )
        for r in rows
    ]


def hedge_fees(connection: Connection, wallet: str, client_prefix: str) -> dict[str, Decimal]:
    """Per instrument, the fee per unit the inventory's hedge orders whose client order ids
    start with `client_prefix` paid (a legged strategy's clips)."""
    rows = connection.execute(
        select(FILLS.c.instrument, FILLS.c.quantity, FILLS.c.fee)
        .join(ORDERS, ORDERS.c.id == FILLS.c.order_id)
        .where(ORDERS.c.account == wallet, ORDERS.c.client_order_id.startswith(client_prefix))
    )
    # summed here, exactly: SQL's SUM of a decimal column is a float on SQLite
    quantities: dict[str, Decimal] = {}
    fees: dict[str, Decimal] = {}
    for instrument, quantity, fee in rows:
        quantities[instrument] = quantities.get(instrument, Decimal(0)) + quantity
        fees[instrument] = fees.get(instrument, Decimal(0)) + fee
    return {i: fees[i] / q for i, q in quantities.items() if q}
