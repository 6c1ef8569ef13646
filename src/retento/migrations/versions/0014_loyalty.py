"""loyalty: programs, accounts and the append-only points ledger (operations, lots, moves), runs

Revision ID: 0014_loyalty
Revises: 0013_trigger_debug
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import retento.core.db.types

revision = '0014_loyalty'
down_revision = '0013_trigger_debug'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('loyalty_programs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('settings', JSON, nullable=False),
    sa.Column('created_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_loyalty_programs_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loyalty_programs')),
    sa.UniqueConstraint('site_id', name=op.f('uq_loyalty_programs_site_id'))
    )
    op.create_table('loyalty_accounts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('program_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('level', sa.String(length=64), nullable=True),
    sa.Column('joined_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_loyalty_accounts_customer_id_customers')),
    sa.ForeignKeyConstraint(['program_id'], ['loyalty_programs.id'], name=op.f('fk_loyalty_accounts_program_id_loyalty_programs')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_loyalty_accounts_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loyalty_accounts')),
    sa.UniqueConstraint('program_id', 'customer_id', name=op.f('uq_loyalty_accounts_program_id_customer_id'))
    )
    with op.batch_alter_table('loyalty_accounts', schema=None) as batch_op:
        batch_op.create_index('ix_loyalty_accounts_customer', ['customer_id'], unique=False)

    op.create_table('loyalty_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('up_to', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('created_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['program_id'], ['loyalty_programs.id'], name=op.f('fk_loyalty_runs_program_id_loyalty_programs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loyalty_runs')),
    sa.UniqueConstraint('program_id', 'kind', 'up_to', name=op.f('uq_loyalty_runs_program_id_kind_up_to'))
    )
    op.create_table('loyalty_operations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('amount', retento.core.db.types.Amount(precision=18, scale=2), nullable=False),
    sa.Column('purchase', retento.core.db.types.Amount(precision=18, scale=2), nullable=False),
    sa.Column('order_id', sa.BigInteger(), nullable=True),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('details', JSON, nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('actor_type', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['loyalty_accounts.id'], name=op.f('fk_loyalty_operations_account_id_loyalty_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loyalty_operations')),
    sa.UniqueConstraint('account_id', 'idempotency_key', name=op.f('uq_loyalty_operations_account_id_idempotency_key'))
    )
    with op.batch_alter_table('loyalty_operations', schema=None) as batch_op:
        batch_op.create_index('ix_loyalty_operations_account', ['account_id', 'id'], unique=False)
        batch_op.create_index('ix_loyalty_operations_order', ['order_id'], unique=False)

    op.create_table('loyalty_lots',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('operation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('order_id', sa.BigInteger(), nullable=True),
    sa.Column('amount', retento.core.db.types.Amount(precision=18, scale=2), nullable=False),
    sa.Column('active_from', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['loyalty_accounts.id'], name=op.f('fk_loyalty_lots_account_id_loyalty_accounts')),
    sa.ForeignKeyConstraint(['operation_id'], ['loyalty_operations.id'], name=op.f('fk_loyalty_lots_operation_id_loyalty_operations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loyalty_lots'))
    )
    with op.batch_alter_table('loyalty_lots', schema=None) as batch_op:
        batch_op.create_index('ix_loyalty_lots_account', ['account_id', 'expires_at'], unique=False)
        batch_op.create_index('ix_loyalty_lots_expiry', ['site_id', 'expires_at'], unique=False)

    op.create_table('loyalty_moves',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('lot_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('operation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('amount', retento.core.db.types.Amount(precision=18, scale=2), nullable=False),
    sa.ForeignKeyConstraint(['lot_id'], ['loyalty_lots.id'], name=op.f('fk_loyalty_moves_lot_id_loyalty_lots')),
    sa.ForeignKeyConstraint(['operation_id'], ['loyalty_operations.id'], name=op.f('fk_loyalty_moves_operation_id_loyalty_operations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loyalty_moves'))
    )
    with op.batch_alter_table('loyalty_moves', schema=None) as batch_op:
        batch_op.create_index('ix_loyalty_moves_lot', ['lot_id'], unique=False)
        batch_op.create_index('ix_loyalty_moves_operation', ['operation_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('loyalty_moves', schema=None) as batch_op:
        batch_op.drop_index('ix_loyalty_moves_operation')
        batch_op.drop_index('ix_loyalty_moves_lot')

    op.drop_table('loyalty_moves')
    with op.batch_alter_table('loyalty_lots', schema=None) as batch_op:
        batch_op.drop_index('ix_loyalty_lots_expiry')
        batch_op.drop_index('ix_loyalty_lots_account')

    op.drop_table('loyalty_lots')
    with op.batch_alter_table('loyalty_operations', schema=None) as batch_op:
        batch_op.drop_index('ix_loyalty_operations_order')
        batch_op.drop_index('ix_loyalty_operations_account')

    op.drop_table('loyalty_operations')
    op.drop_table('loyalty_runs')
    with op.batch_alter_table('loyalty_accounts', schema=None) as batch_op:
        batch_op.drop_index('ix_loyalty_accounts_customer')

    op.drop_table('loyalty_accounts')
    op.drop_table('loyalty_programs')
