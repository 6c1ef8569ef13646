"""triggers: a per-trigger debug switch (every evaluation is logged until `debug_until`)

Revision ID: 0013_trigger_debug
Revises: 0012_timer_attempts
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

import retento.core.db.types

revision = '0013_trigger_debug'
down_revision = '0012_timer_attempts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('triggers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('debug_until', retento.core.db.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('triggers', schema=None) as batch_op:
        batch_op.drop_column('debug_until')
