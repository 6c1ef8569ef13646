"""console speed: the lifecycle cohort report stored per site (what the console reads instead of every
purchase); trigger run log by time (the Triggers list's last-24-hour counts)

Revision ID: 0020_console_speed
Revises: 0019_journeys
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

import retento.core.db.types

revision = '0020_console_speed'
down_revision = '0019_journeys'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('segment_settings') as batch:
        batch.add_column(sa.Column('cohort_report', retento.core.db.types.JSONType, nullable=True))
        batch.add_column(sa.Column('cohort_computed_at', retento.core.db.types.UTCDateTime(timezone=True),
                                   nullable=True))
    op.create_index('ix_trigger_runs_at', 'trigger_runs', ['at', 'trigger_id', 'phase', 'outcome'])


def downgrade() -> None:
    op.drop_index('ix_trigger_runs_at', table_name='trigger_runs')
    with op.batch_alter_table('segment_settings') as batch:
        batch.drop_column('cohort_computed_at')
        batch.drop_column('cohort_report')
