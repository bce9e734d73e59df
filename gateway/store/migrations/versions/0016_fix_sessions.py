"""fix sessions: the acceptor's sequence numbers, the messages it sent (for resends), and
which order each ClOrdID names

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 21:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import gateway.store.column_types

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def _text(name: str, length: int | None = None) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=False)


def _time(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, gateway.store.column_types.UtcDateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "fix_sessions",
        _text("session_key", 200),
        sa.Column("next_sender", sa.BigInteger(), nullable=False),
        sa.Column("next_target", sa.BigInteger(), nullable=False),
        _time("updated_at"),
        sa.Column("key_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column(
            "logged_on_at", gateway.store.column_types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.PrimaryKeyConstraint("session_key"),
    )
    op.create_table(
        "fix_messages",
        _text("session_key", 200),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        _text("raw"),
        _time("sent_at"),
        sa.PrimaryKeyConstraint("session_key", "seq"),
    )
    op.create_table(
        "fix_orders",
        _text("session_key", 200),
        _text("cl_ord_id", 64),
        _text("order_id", 64),
        _time("bound_at"),
        sa.PrimaryKeyConstraint("session_key", "cl_ord_id"),
    )
    op.create_index("ix_fix_orders_order_id", "fix_orders", ["order_id"])


def downgrade() -> None:
    op.drop_index("ix_fix_orders_order_id", table_name="fix_orders")
    op.drop_table("fix_orders")
    op.drop_table("fix_messages")
    op.drop_table("fix_sessions")
