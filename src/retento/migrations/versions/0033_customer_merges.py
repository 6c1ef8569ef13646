"""customer_merges: where each merged-away duplicate customer went (its id and externalId answer with the kept one)

Revision ID: 0033_customer_merges
Revises: 0032_loyalty_ops_no_account_fk
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0033_customer_merges'
down_revision = '0032_loyalty_ops_no_account_fk'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'customer_merges',
        sa.Column('merged_id', sa.BigInteger(), nullable=False),
        sa.Column('kept_id', sa.BigInteger(), nullable=False),
        sa.Column('site_id', sa.Integer(), nullable=False),
        sa.Column('merged_external_id', sa.String(length=64), nullable=True),
        sa.Column('merged_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('idempotency_key', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('merged_id', name=op.f('pk_customer_merges')),
    )
    with op.batch_alter_table('customer_merges') as batch:
        batch.create_index(batch.f('ix_customer_merges_kept_id'), ['kept_id'], unique=False)
        batch.create_index(batch.f('ix_customer_merges_idempotency_key'), ['idempotency_key'], unique=False)
        batch.create_index('ix_customer_merges_external', ['site_id', 'merged_external_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('customer_merges') as batch:
        batch.drop_index('ix_customer_merges_external')
        batch.drop_index(batch.f('ix_customer_merges_idempotency_key'))
        batch.drop_index(batch.f('ix_customer_merges_kept_id'))
    op.drop_table('customer_merges')
