"""risk controls: kill switches, per-account limits and hedge policies

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 16:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import gateway.store.column_types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "risk_controls",
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
        sa.Column("kill_switch", sa.Boolean(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("limits", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("hedge", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column(
            "updated_at", gateway.store.column_types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("scope"),
    )


def downgrade() -> None:
    op.drop_table("risk_controls")
