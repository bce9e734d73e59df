"""replicas: role leases with fencing tokens, the replicas' heartbeats, the stream events every
replica follows, the replay memory and rate buckets they share, and room for a routed
order's request hash

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 17:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import gateway.store.column_types

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _text(name: str, length: int | None = None) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=False)


def _time(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, gateway.store.column_types.UtcDateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "leases",
        _text("role", 64),
        _text("holder", 128),
        _text("address", 256),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("takeovers", sa.BigInteger(), nullable=False),
        _time("acquired_at"),
        _time("renewed_at"),
        _time("expires_at"),
        sa.PrimaryKeyConstraint("role"),
    )
    op.create_table(
        "replicas",
        _text("replica_id", 128),
        _text("address", 256),
        sa.Column("pid", sa.Integer(), nullable=False),
        _time("started_at"),
        _time("seen_at"),
        sa.PrimaryKeyConstraint("replica_id"),
    )
    op.create_table(
        "stream_events",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True),
        _time("at"),
        _text("payload"),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_stream_events_at", "stream_events", ["at"])
    op.create_table(
        "replay_signatures",
        _text("signature", 64),
        sa.Column("forget_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("signature"),
    )
    op.create_index("ix_replay_signatures_forget_at_ms", "replay_signatures", ["forget_at_ms"])
    op.create_table(
        "rate_buckets",
        _text("subject", 200),
        sa.Column("tokens", sa.Float(), nullable=False),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("subject"),
    )
    with op.batch_alter_table("orders") as table:
        # a routed order's request hash is the body's sha256 and `:smart` (70 characters):
        # PostgreSQL refused it where SQLite never checked the length
        table.alter_column(
            "request_hash", type_=sa.String(length=80), existing_type=sa.String(length=64)
        )


def downgrade() -> None:
    with op.batch_alter_table("orders") as table:
        table.alter_column(
            "request_hash", type_=sa.String(length=64), existing_type=sa.String(length=80)
        )
    op.drop_table("rate_buckets")
    op.drop_index("ix_replay_signatures_forget_at_ms", table_name="replay_signatures")
    op.drop_table("replay_signatures")
    op.drop_index("ix_stream_events_at", table_name="stream_events")
    op.drop_table("stream_events")
    op.drop_table("replicas")
    op.drop_table("leases")
