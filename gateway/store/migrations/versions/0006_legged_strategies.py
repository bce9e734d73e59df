"""legged strategies: the legging state of strategies executed leg by leg on exchanges

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 20:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import gateway.store.column_types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "legged_strategies",
        sa.Column("order_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("account", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column(
            "created_at", gateway.store.column_types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", gateway.store.column_types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.PrimaryKeyConstraint("order_id"),
    )
    op.create_index("ix_legged_strategies_active", "legged_strategies", ["active"])


def downgrade() -> None:
    op.drop_index("ix_legged_strategies_active", table_name="legged_strategies")
    op.drop_table("legged_strategies")
