"""access: API keys, Sign-In with Ethereum sessions and nonces

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25 22:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import gateway.store.column_types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _text(name: str, length: int | None = None, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=nullable)


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, gateway.store.column_types.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        _text("key_id", 40),
        _text("role", 16),
        _text("scopes", 64),
        _text("accounts"),
        _text("label", 100, nullable=True),
        _text("salt", 64),
        _text("secret_hash", 64),
        _time("created_at"),
        _time("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("key_id"),
    )
    op.create_table(
        "access_sessions",
        _text("token_hash", 64),
        _text("address", 42),
        _time("created_at"),
        _time("expires_at"),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_table(
        "siwe_nonces",
        _text("nonce", 40),
        _time("created_at"),
        _time("expires_at"),
        _time("used_at", nullable=True),
        sa.PrimaryKeyConstraint("nonce"),
    )
    op.create_index("ix_siwe_nonces_expires_at", "siwe_nonces", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_siwe_nonces_expires_at", table_name="siwe_nonces")
    op.drop_table("siwe_nonces")
    op.drop_table("access_sessions")
    op.drop_table("api_keys")
