"""internal book: each resting order's time priority; the trade pairing a maker and a taker fill

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("book_priority", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("fills") as batch:
        batch.add_column(
            sa.Column("trade_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True)
        )
    op.create_index("ix_fills_trade_id", "fills", ["trade_id"])


def downgrade() -> None:
    op.drop_index("ix_fills_trade_id", table_name="fills")
    with op.batch_alter_table("fills") as batch:
        batch.drop_column("trade_id")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("book_priority")
