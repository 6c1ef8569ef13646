"""segments: per-order category facts and per-customer category rollups (kept from one-order deltas), segment
sizes per day (filled from the current orders and the membership history)

Revision ID: 0017_category_rollups
Revises: 0016_console_users
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

import retento.core.db.types

revision = '0017_category_rollups'
down_revision = '0016_console_users'
branch_labels = None
depends_on = None

FACTS = """
INSERT INTO order_category_facts (order_id, category, customer_id, site_id, amount, at)
SELECT o.id, i.category, MIN(o.customer_id), MIN(o.site_id), SUM(i.price * i.quantity - i.discount), MIN(o.created_at)
FROM orders o JOIN order_items i ON i.order_id = o.id
WHERE o.customer_id IS NOT NULL AND i.category IS NOT NULL
  AND o.status IN (SELECT code FROM statuses WHERE group_code <> 'cancel')
GROUP BY o.id, i.category
"""
ROLLUPS = """
INSERT INTO customer_category_rollups (customer_id, category, site_id, orders_count, amount, first_order_at,
                                       last_order_at)
SELECT customer_id, category, MIN(site_id), COUNT(*), SUM(amount), MIN(at), MAX(at)
FROM order_category_facts GROUP BY customer_id, category
"""
SIZES = """
INSERT INTO segment_sizes (segment_id, day, size)
SELECT segment_id, day, SUM(delta) OVER (PARTITION BY segment_id ORDER BY day)
FROM (SELECT segment_id, {day} AS day, SUM(CASE WHEN entered THEN 1 ELSE -1 END) AS delta
      FROM segment_changes GROUP BY segment_id, {day}) AS d
"""


def upgrade() -> None:
    op.create_table('order_category_facts',
    sa.Column('order_id', sa.BigInteger(), nullable=False),
    sa.Column('category', sa.String(length=255), nullable=False),
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('amount', retento.core.db.types.Amount(precision=18, scale=2), nullable=False),
    sa.Column('at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('order_id', 'category', name=op.f('pk_order_category_facts'))
    )
    with op.batch_alter_table('order_category_facts', schema=None) as batch_op:
        batch_op.create_index('ix_order_category_facts_customer', ['customer_id', 'category'], unique=False)
        batch_op.create_index('ix_order_category_facts_window', ['site_id', 'category', 'at', 'customer_id'],
                              unique=False)
    op.create_table('customer_category_rollups',
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('category', sa.String(length=255), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('orders_count', sa.Integer(), nullable=False),
    sa.Column('amount', retento.core.db.types.Amount(precision=18, scale=2), nullable=False),
    sa.Column('first_order_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_order_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', 'category', name=op.f('pk_customer_category_rollups'))
    )
    with op.batch_alter_table('customer_category_rollups', schema=None) as batch_op:
        batch_op.create_index('ix_customer_category_rollups_site',
                              ['site_id', 'category', 'last_order_at', 'customer_id'], unique=False)
    op.create_table('segment_sizes',
    sa.Column('segment_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_segment_sizes_segment_id_segments'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('segment_id', 'day', name=op.f('pk_segment_sizes'))
    )
    op.execute(FACTS)
    op.execute(ROLLUPS)
    day = ("((at AT TIME ZONE 'UTC')::date)" if op.get_bind().dialect.name == "postgresql"
           else "substr(at, 1, 10)")
    op.execute(SIZES.format(day=day))


def downgrade() -> None:
    op.drop_table('segment_sizes')
    with op.batch_alter_table('customer_category_rollups', schema=None) as batch_op:
        batch_op.drop_index('ix_customer_category_rollups_site')
    op.drop_table('customer_category_rollups')
    with op.batch_alter_table('order_category_facts', schema=None) as batch_op:
        batch_op.drop_index('ix_order_category_facts_window')
        batch_op.drop_index('ix_order_category_facts_customer')
    op.drop_table('order_category_facts')
