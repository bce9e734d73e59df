"""orders: an index on (account, sig_nonce) of signed orders, so that intake can ask which
stored orders hold a nonce (a signed order may not take a nonce another order holds)
without scanning a market maker's every order

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 20:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_SIGNED = sa.text("sig_nonce IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_orders_account_sig_nonce",
        "orders",
        ["account", "sig_nonce"],
        sqlite_where=_SIGNED,
        postgresql_where=_SIGNED,
    )


def downgrade() -> None:
    op.drop_index("ix_orders_account_sig_nonce", table_name="orders")
