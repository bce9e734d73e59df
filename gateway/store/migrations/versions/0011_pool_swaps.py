"""pool swaps: the exact AMM swap behind each pool fill settled inside the batch

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "pool_swaps",
        sa.Column("fill_id", text(length=40), sa.ForeignKey("fills.id"), primary_key=True),
        sa.Column("pair", text(length=42), nullable=False),
        sa.Column("token_in", text(length=42), nullable=False),
        sa.Column("token_out", text(length=42), nullable=False),
        sa.Column("amount_in", text(length=80), nullable=False),
        sa.Column("amount_out", text(length=80), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pool_swaps")
