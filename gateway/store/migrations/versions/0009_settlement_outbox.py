"""settlement outbox: batch chain ids and outcomes, fill refusal reasons, chain cursors

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 20:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import gateway.store.column_types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _text(name: str, length: int | None = None) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=True)


def upgrade() -> None:
    with op.batch_alter_table("settlement_batches") as batch:
        batch.add_column(_text("chain_batch_id", 78))
        batch.add_column(_text("block_hash", 66))
        batch.add_column(_text("reason", 200))
        batch.add_column(
            sa.Column(
                "updated_at", gateway.store.column_types.UtcDateTime(timezone=True), nullable=True
            )
        )
    with op.batch_alter_table("fills") as batch:
        batch.add_column(_text("settlement_reason", 200))
    op.create_index("ix_fills_settlement", "fills", ["settlement", "batch_id"])
    op.create_table(
        "chain_cursors",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("cursor", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column(
            "updated_at", gateway.store.column_types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("chain_cursors")
    op.drop_index("ix_fills_settlement", table_name="fills")
    with op.batch_alter_table("fills") as batch:
        batch.drop_column("settlement_reason")
    with op.batch_alter_table("settlement_batches") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("reason")
        batch.drop_column("block_hash")
        batch.drop_column("chain_batch_id")
