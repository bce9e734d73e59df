"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 13:58:51.526675
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import gateway.store.column_types


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('accounts',
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('created_at', gateway.store.column_types.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('address')
    )
    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('audit_log',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('entity_id', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.Column('payload', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', gateway.store.column_types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('prev_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    op.create_table('settlement_batches',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('created_at', gateway.store.column_types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('tx_hash', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=True),
    sa.Column('block_number', sa.BigInteger(), nullable=True),
    sa.Column('operator_nonce', sa.BigInteger(), nullable=True),
    sa.Column('gas_used', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('orders',
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('account', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('client_order_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('request_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('instrument', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('side', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
    sa.Column('order_type', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('time_in_force', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
    sa.Column('post_only', sa.Boolean(), nullable=False),
    sa.Column('quantity', gateway.store.column_types.DecimalText(length=100), nullable=False),
    sa.Column('price', gateway.store.column_types.DecimalText(length=100), nullable=True),
    sa.Column('stop_price', gateway.store.column_types.DecimalText(length=100), nullable=True),
    sa.Column('expires_at', gateway.store.column_types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('settlement', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('filled_quantity', gateway.store.column_types.DecimalText(length=100), nullable=False),
    sa.Column('filled_notional', gateway.store.column_types.DecimalText(length=100), nullable=False),
    sa.Column('status_reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', gateway.store.column_types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', gateway.store.column_types.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account'], ['accounts.address'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('account', 'client_order_id', name='uq_orders_account_client_order_id'),
    sa.UniqueConstraint('id')
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_account_seq', ['account', 'seq'], unique=False)
        batch_op.create_index('ix_orders_instrument_seq', ['instrument', 'seq'], unique=False)
        batch_op.create_index('ix_orders_status_seq', ['status', 'seq'], unique=False)

    op.create_table('fills',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('order_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('account', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('instrument', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('side', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
    sa.Column('quantity', gateway.store.column_types.DecimalText(length=100), nullable=False),
    sa.Column('price', gateway.store.column_types.DecimalText(length=100), nullable=False),
    sa.Column('fee', gateway.store.column_types.DecimalText(length=100), nullable=False),
    sa.Column('venue', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('executed_at', gateway.store.column_types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('settlement', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('batch_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('tx_hash', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=True),
    sa.Column('block_number', sa.BigInteger(), nullable=True),
    sa.Column('log_index', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['settlement_batches.id'], ),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.create_index('ix_fills_account', ['account'], unique=False)
        batch_op.create_index('ix_fills_order_id', ['order_id'], unique=False)

    op.create_table('order_legs',
    sa.Column('order_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('instrument', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('side', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
    sa.Column('ratio', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ),
    sa.PrimaryKeyConstraint('order_id', 'position')
    )



def downgrade() -> None:

    op.drop_table('order_legs')
    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.drop_index('ix_fills_order_id')
        batch_op.drop_index('ix_fills_account')

    op.drop_table('fills')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_status_seq')
        batch_op.drop_index('ix_orders_instrument_seq')
        batch_op.drop_index('ix_orders_account_seq')

    op.drop_table('orders')
    op.drop_table('settlement_batches')
    op.drop_table('audit_log')
    op.drop_table('audit_head')
    op.drop_table('accounts')

