"""contract signatures: an order's signature may be a contract owner's (EIP-1271), up to the
wallet's 520 bytes (1040 hex characters), not only 65-byte ECDSA

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26 10:00:00
"""

from __future__ import annotations

import sqlmodel
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.alter_column(
            "signature",
            type_=sqlmodel.sql.sqltypes.AutoString(length=1040),
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=132),
            existing_nullable=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.alter_column(
            "signature",
            type_=sqlmodel.sql.sqltypes.AutoString(length=132),
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=1040),
            existing_nullable=True,
        )
