"""trigger run log by event: explain reads the entries about an entity's last events by event id instead of
paging through the entity's whole log

Revision ID: 0029_trigger_runs_event
Revises: 0028_gap_histograms
Create Date: 2026-12-05
"""
from alembic import op

revision = '0029_trigger_runs_event'
down_revision = '0028_gap_histograms'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_trigger_runs_event', 'trigger_runs', ['event_id'])


def downgrade() -> None:
    op.drop_index('ix_trigger_runs_event', table_name='trigger_runs')
