"""messaging: a started campaign's customer-id slices, planned by several workers in parallel; runs indexed
by (campaign, customer) so that a slice finds its own

Revision ID: 0009_campaign_slices
Revises: 0008_campaign_start
Create Date: 2026-11-25
"""
from alembic import op
import sqlalchemy as sa

revision = '0009_campaign_slices'
down_revision = '0008_campaign_start'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('msg_campaign_slices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('lo', sa.BigInteger(), nullable=False),
    sa.Column('hi', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['msg_campaigns.id'],
                            name=op.f('fk_msg_campaign_slices_campaign_id_msg_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_msg_campaign_slices'))
    )
    with op.batch_alter_table('msg_campaign_slices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_msg_campaign_slices_campaign_id'), ['campaign_id'], unique=False)
    with op.batch_alter_table('msg_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_msg_runs_campaign_id')
        batch_op.create_index('ix_msg_runs_campaign', ['campaign_id', 'customer_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('msg_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_msg_runs_campaign')
        batch_op.create_index('ix_msg_runs_campaign_id', ['campaign_id'], unique=False)
    with op.batch_alter_table('msg_campaign_slices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_msg_campaign_slices_campaign_id'))
    op.drop_table('msg_campaign_slices')
