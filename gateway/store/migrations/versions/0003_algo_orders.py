"""algo orders: persisted parent orders of the execution algorithms

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 17:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import gateway.store.column_types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "algo_orders",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("account", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
        sa.Column("instrument", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("spec", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column(
            "created_at", gateway.store.column_types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", gateway.store.column_types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_algo_orders_active", "algo_orders", ["active"])
    op.create_index("ix_algo_orders_account", "algo_orders", ["account"])


def downgrade() -> None:
    op.drop_index("ix_algo_orders_account", table_name="algo_orders")
    op.drop_index("ix_algo_orders_active", table_name="algo_orders")
    op.drop_table("algo_orders")
