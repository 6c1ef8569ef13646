"""messaging: a campaign's audience may be a segment

Revision ID: 0008_campaign_segment
Revises: 0006_messaging
Create Date: 2026-11-25
"""
from alembic import op
import sqlalchemy as sa

revision = '0008_campaign_segment'
down_revision = '0006_messaging'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('msg_campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('segment_id', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('msg_campaigns', schema=None) as batch_op:
        batch_op.drop_column('segment_id')
