"""orders: revenue per site, 15-minute UTC slot and currency for the dashboard (orders/revenue.py), and how far the
stored slots reach (filled by the worker from the orders; until then the dashboard reads the orders)

Revision ID: 0023_order_revenue
Revises: 0022_custom_field_index
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

import retento.core.db.types

revision = '0023_order_revenue'
down_revision = '0022_custom_field_index'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'order_revenue_buckets',
        sa.Column('site_id', sa.Integer(), nullable=False),
        sa.Column('slot', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('orders', sa.Integer(), nullable=False),
        sa.Column('total', retento.core.db.types.Amount(), nullable=False),
        sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_order_revenue_buckets_site_id_sites')),
        sa.PrimaryKeyConstraint('site_id', 'slot', 'currency', name=op.f('pk_order_revenue_buckets')),
    )
    op.create_table(
        'order_revenue_rollup',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('through_slot', sa.BigInteger(), nullable=True),
        sa.Column('updated_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_order_revenue_rollup')),
    )


def downgrade() -> None:
    op.drop_table('order_revenue_rollup')
    op.drop_table('order_revenue_buckets')
