"""loyalty operations' order index only over operations about an order: an expiry run writes an operation per
account, none about an order, and no longer adds an entry each to this index

Revision ID: 0030_loyalty_ops_order_partial
Revises: 0029_trigger_runs_event
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0030_loyalty_ops_order_partial'
down_revision = '0029_trigger_runs_event'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_loyalty_operations_order', table_name='loyalty_operations')
    op.create_index('ix_loyalty_operations_order', 'loyalty_operations', ['order_id'],
                    postgresql_where=sa.text('order_id IS NOT NULL'), sqlite_where=sa.text('order_id IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_loyalty_operations_order', table_name='loyalty_operations')
    op.create_index('ix_loyalty_operations_order', 'loyalty_operations', ['order_id'])
