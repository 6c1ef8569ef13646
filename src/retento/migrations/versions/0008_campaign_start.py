"""messaging: campaigns to a segment; runs and messages written set-based (no per-row key checks, partial
provider index, one index for reports)

Revision ID: 0008_campaign_start
Revises: 0006_messaging
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = '0008_campaign_start'
down_revision = '0006_messaging'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('msg_campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('segment_id', sa.Integer(), nullable=True))
    with op.batch_alter_table('msg_runs', schema=None) as batch_op:
        batch_op.drop_constraint('fk_msg_runs_campaign_id_msg_campaigns', type_='foreignkey')
        batch_op.drop_constraint('fk_msg_runs_cascade_id_msg_cascades', type_='foreignkey')
    with op.batch_alter_table('msg_messages', schema=None) as batch_op:
        batch_op.drop_constraint('fk_msg_messages_template_id_msg_templates', type_='foreignkey')
        batch_op.drop_index('ix_msg_messages_provider')
        batch_op.create_index('ix_msg_messages_provider', ['channel', 'provider_id'], unique=False,
                              postgresql_where=sa.text('provider_id IS NOT NULL'),
                              sqlite_where=sa.text('provider_id IS NOT NULL'))
        batch_op.drop_index('ix_msg_messages_campaign_id')
        batch_op.drop_index('ix_msg_messages_cascade_id')
        batch_op.create_index('ix_msg_messages_cascade', ['cascade_id', 'campaign_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('msg_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_msg_messages_cascade')
        batch_op.create_index('ix_msg_messages_cascade_id', ['cascade_id'], unique=False)
        batch_op.create_index('ix_msg_messages_campaign_id', ['campaign_id'], unique=False)
        batch_op.drop_index('ix_msg_messages_provider')
        batch_op.create_index('ix_msg_messages_provider', ['channel', 'provider_id'], unique=False)
        batch_op.create_foreign_key('fk_msg_messages_template_id_msg_templates', 'msg_templates', ['template_id'],
                                    ['id'])
    with op.batch_alter_table('msg_runs', schema=None) as batch_op:
        batch_op.create_foreign_key('fk_msg_runs_cascade_id_msg_cascades', 'msg_cascades', ['cascade_id'], ['id'])
        batch_op.create_foreign_key('fk_msg_runs_campaign_id_msg_campaigns', 'msg_campaigns', ['campaign_id'],
                                    ['id'])
    with op.batch_alter_table('msg_campaigns', schema=None) as batch_op:
        batch_op.drop_column('segment_id')
