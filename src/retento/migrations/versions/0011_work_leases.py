"""work: lease columns (token, owner, until) of the outbox tables worked with retento.core.work leases

Revision ID: 0011_work_leases
Revises: 0010_trigger_webhook_deliveries
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

import retento.core.db.types

revision = '0011_work_leases'
down_revision = '0010_trigger_webhook_deliveries'
branch_labels = None
depends_on = None

TABLES = ('msg_messages', 'webhook_deliveries')


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('lease_token', sa.String(length=32), nullable=True))
            batch_op.add_column(sa.Column('lease_owner', sa.String(length=64), nullable=True))
            batch_op.add_column(sa.Column('lease_until', retento.core.db.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('lease_until')
            batch_op.drop_column('lease_owner')
            batch_op.drop_column('lease_token')
