"""work: attempts of delayed trigger runs (a run whose firing breaks is retried with backoff, then failed)

Revision ID: 0012_timer_attempts
Revises: 0011_work_leases
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = '0012_timer_attempts'
down_revision = '0011_work_leases'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('trigger_timers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('trigger_timers', schema=None) as batch_op:
        batch_op.drop_column('attempts')
