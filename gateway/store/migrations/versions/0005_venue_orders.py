"""venue orders: every child a gateway order sent to a venue, recorded before it is sent

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 19:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import gateway.store.column_types


def _text(name: str, length: int, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=nullable)


def _decimal(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, gateway.store.column_types.DecimalText(length=100), nullable=nullable)


def _time(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, gateway.store.column_types.UtcDateTime(timezone=True), nullable=False)


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "venue_orders",
        _text("client_order_id", 64),
        _text("order_id", 40),
        _text("venue", 32),
        _text("instrument", 64),
        _text("side", 4),
        _text("order_type", 16),
        _text("time_in_force", 4),
        _decimal("quantity"),
        _decimal("price", nullable=True),
        _text("venue_order_id", 128, nullable=True),
        _text("status", 10),
        _decimal("filled"),
        _decimal("filled_notional"),
        _decimal("fee"),
        _text("reason", 200, nullable=True),
        _time("created_at"),
        _time("updated_at"),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.PrimaryKeyConstraint("client_order_id"),
    )
    op.create_index("ix_venue_orders_order_id", "venue_orders", ["order_id"])
    op.create_index("ix_venue_orders_status", "venue_orders", ["status"])


def downgrade() -> None:
    op.drop_index("ix_venue_orders_status", table_name="venue_orders")
    op.drop_index("ix_venue_orders_order_id", table_name="venue_orders")
    op.drop_table("venue_orders")
