"""dead man's switch: callers' cancel-all countdowns and the stream sessions that asked for
cancel-on-disconnect

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import gateway.store.column_types

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _text(name: str, length: int | None = None) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=False)


def _time(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, gateway.store.column_types.UtcDateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "dead_man_countdowns",
        _text("scope", 64),
        _text("accounts"),
        sa.Column(
            "timeout_seconds", gateway.store.column_types.DecimalText(length=100), nullable=False
        ),
        _time("deadline"),
        _time("armed_at"),
        _time("refreshed_at"),
        sa.PrimaryKeyConstraint("scope"),
    )
    op.create_table(
        "cancel_on_disconnect_sessions",
        _text("session_id", 64),
        _text("accounts"),
        _time("opened_at"),
        sa.PrimaryKeyConstraint("session_id"),
    )


def downgrade() -> None:
    op.drop_table("cancel_on_disconnect_sessions")
    op.drop_table("dead_man_countdowns")
