"""triggers: the triggers an event's data ruled out by their guard, and those that scheduled a run, share one
run-log row per event

Revision ID: 0009_trigger_misses
Revises: 0008_campaign_start
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0009_trigger_misses'
down_revision = '0008_campaign_start'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('trigger_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('misses', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True))
        batch_op.add_column(sa.Column('scheduled', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True))
        batch_op.alter_column('trigger_id', existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM trigger_runs WHERE trigger_id IS NULL")
    with op.batch_alter_table('trigger_runs', schema=None) as batch_op:
        batch_op.alter_column('trigger_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('scheduled')
        batch_op.drop_column('misses')
