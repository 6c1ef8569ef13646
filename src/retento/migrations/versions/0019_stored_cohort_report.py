"""segments: the lifecycle cohort report stored per site (what the console reads instead of every purchase)

Revision ID: 0019_stored_cohort_report
Revises: 0018_loyalty_codes
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

import retento.core.db.types

revision = '0019_stored_cohort_report'
down_revision = '0018_loyalty_codes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('segment_settings') as batch:
        batch.add_column(sa.Column('cohort_report', retento.core.db.types.JSONType, nullable=True))
        batch.add_column(sa.Column('cohort_computed_at', retento.core.db.types.UTCDateTime(timezone=True),
                                   nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('segment_settings') as batch:
        batch.drop_column('cohort_computed_at')
        batch.drop_column('cohort_report')
