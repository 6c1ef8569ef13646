"""orders: on PostgreSQL the index by customer also carries each order's status, site, total and creation time
(INCLUDE), so the segments' rollups and gaps of a few customers are rebuilt by an index-only scan (one or two
index pages per customer instead of one heap page per order); SQLite keeps the plain index

Revision ID: 0034_orders_customer_covering
Revises: 0033_customer_merges
Create Date: 2026-12-07
"""
from alembic import op

revision = '0034_orders_customer_covering'
down_revision = '0033_customer_merges'
branch_labels = None
depends_on = None

INCLUDED = ['status', 'site_id', 'total', 'created_at']


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index('ix_orders_customer_id', table_name='orders')
        op.create_index('ix_orders_customer_id', 'orders', ['customer_id'], unique=False,
                        postgresql_include=INCLUDED)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index('ix_orders_customer_id', table_name='orders')
        op.create_index('ix_orders_customer_id', 'orders', ['customer_id'], unique=False)
