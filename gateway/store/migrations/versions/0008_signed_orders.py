"""signed orders: the owner's EIP-712 nonce, deadline and signature stored with the order

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 20:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        # a uint256 does not fit a BIGINT: decimal text
        batch.add_column(
            sa.Column("sig_nonce", sqlmodel.sql.sqltypes.AutoString(length=78), nullable=True)
        )
        batch.add_column(sa.Column("sig_deadline", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("signature", sqlmodel.sql.sqltypes.AutoString(length=132), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("signature")
        batch.drop_column("sig_deadline")
        batch.drop_column("sig_nonce")
