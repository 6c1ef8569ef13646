"""messaging: a campaign's audience kind (ids, segment, everyone, rules) and its rule tree

Revision ID: 0015_campaign_audience
Revises: 0014_loyalty
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0015_campaign_audience'
down_revision = '0014_loyalty'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('msg_campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('audience', sa.String(length=16), server_default='ids', nullable=False))
        batch_op.add_column(sa.Column('rules', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
                                      nullable=True))
    op.execute("UPDATE msg_campaigns SET audience = 'segment' WHERE segment_id IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('msg_campaigns', schema=None) as batch_op:
        batch_op.drop_column('rules')
        batch_op.drop_column('audience')
