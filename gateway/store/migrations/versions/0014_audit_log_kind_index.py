"""audit log: an index on (kind, seq), so reading one kind of record (the reorgs the
operator's list of settlement batches reports) does not scan the whole log

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 14:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_log_kind_seq", "audit_log", ["kind", "seq"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_kind_seq", table_name="audit_log")
