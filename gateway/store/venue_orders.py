"""Children of gateway orders on venues (`venue_orders`), SQLAlchemy Core, portable SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from gateway.domain.orders import OrderType, Side, TimeInForce
from gateway.domain.venue_child import VenueChild, VenueChildStatus
from gateway.store.tables import VenueOrderRow

VENUE_ORDERS = VenueOrderRow.__table__  # type: ignore[attr-defined]


def insert_child(connection: Connection, child: VenueChild, now: datetime) -> None:
    connection.execute(
        insert(VENUE_ORDERS).values(
            client_order_id=child.client_order_id,
            order_id=child.order_id,
            venue=child.venue,
            instrument=child.instrument,
            side=child.side.value,
            order_type=child.order_type.value,
            time_in_force=child.time_in_force.value,
            quantity=child.quantity,
            price=child.price,
            venue_order_id=child.venue_order_id,
            status=child.status.value,
            filled=child.filled,
            filled_notional=child.filled_notional,
            fee=child.fee,
            reason=child.reason,
            created_at=now,
            updated_at=now,
        )
    )


def update_child(connection: Connection, child: VenueChild, now: datetime) -> None:
    connection.execute(
        update(VENUE_ORDERS)
        .where(VENUE_ORDERS.c.client_order_id == child.client_order_id)
        .values(
            venue_order_id=child.venue_order_id,
            status=child.status.value,
            filled=child.filled,
            filled_notional=child.filled_notional,
            fee=child.fee,
            reason=child.reason,
            updated_at=now,
        )
    )


def get_child(connection: Connection, client_order_id: str) -> VenueChild | None:
    row = connection.execute(
        select(VENUE_ORDERS).where(VENUE_ORDERS.c.client_order_id == client_order_id)
    ).first()
    return None if row is None else _child(row)


def children_of(connection: Connection, order_id: str) -> list[VenueChild]:
    rows = connection.execute(
        select(VENUE_ORDERS)
        .where(VENUE_ORDERS.c.order_id == order_id)
        .order_by(VENUE_ORDERS.c.created_at, VENUE_ORDERS.c.client_order_id)
    )
    return [_child(r) for r in rows]


def unfinished_children(connection: Connection) -> list[VenueChild]:
    """Children whose venue outcome is not final: what a restart must look up."""
    rows = connection.execute(
        select(VENUE_ORDERS)
        .where(VENUE_ORDERS.c.status != VenueChildStatus.DONE.value)
        .order_by(VENUE_ORDERS.c.created_at, VENUE_ORDERS.c.client_order_id)
    )
    return [_child(r) for r in rows]


def _child(r: Any) -> VenueChild:
    return VenueChild(
        client_order_id=r.client_order_id,
        order_id=r.order_id,
        venue=r.venue,
        instrument=r.instrument,
        side=Side(r.side),
        order_type=OrderType(r.order_type),
        time_in_force=TimeInForce(r.time_in_force),
        quantity=r.quantity,
        price=r.price,
        status=VenueChildStatus(r.status),
        venue_order_id=r.venue_order_id,
        filled=r.filled,
        filled_notional=r.filled_notional,
        fee=r.fee,
        reason=r.reason,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )
