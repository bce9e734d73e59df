"""execution benchmarks: arrival prices of parent orders, gas paid per fill (for TCA)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 19:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import gateway.store.column_types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _decimal(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, gateway.store.column_types.DecimalText(length=100), nullable=True)


def upgrade() -> None:
    op.create_table(
        "execution_benchmarks",
        sa.Column("parent_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("parent_kind", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("instrument", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("side", sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
        _decimal("bid"),
        _decimal("ask"),
        _decimal("mid"),
        sa.Column("legs", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column(
            "observed_at", gateway.store.column_types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("parent_id"),
    )
    with op.batch_alter_table("fills") as batch:
        batch.add_column(_decimal("gas"))


def downgrade() -> None:
    with op.batch_alter_table("fills") as batch:
        batch.drop_column("gas")
    op.drop_table("execution_benchmarks")
