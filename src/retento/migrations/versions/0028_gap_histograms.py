"""customer_gaps and segment_gap_counts: each customer's gaps between consecutive purchase days counted per length,
and each site's histogram of them (kept from the customers' deltas), so the lifecycle threshold (the median gap)
is read from the histogram instead of a pass over every order; both filled from the orders

Revision ID: 0028_gap_histograms
Revises: 0027_task_idempotency
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = '0028_gap_histograms'
down_revision = '0027_task_idempotency'
branch_labels = None
depends_on = None

DAY = {"postgresql": "((o.created_at AT TIME ZONE 'UTC')::date - DATE '1970-01-01')",
       "sqlite": "(CAST(strftime('%s', substr(o.created_at, 1, 10)) AS INTEGER) / 86400)"}
GAPS = """
    INSERT INTO customer_gaps (customer_id, site_id, gap, n)
    SELECT customer_id, min(site_id), gap, count(*) FROM (
        SELECT customer_id, site_id, day - lag(day) OVER (PARTITION BY customer_id ORDER BY day) AS gap FROM (
            SELECT o.customer_id, min(o.site_id) AS site_id, {day} AS day FROM orders o
            WHERE o.customer_id IS NOT NULL
              AND o.status IN (SELECT code FROM statuses WHERE group_code <> 'cancel')
            GROUP BY o.customer_id, {day}) days) lagged
    WHERE gap IS NOT NULL GROUP BY customer_id, gap
"""


def upgrade() -> None:
    op.create_table(
        'customer_gaps',
        sa.Column('customer_id', sa.BigInteger(), nullable=False),
        sa.Column('gap', sa.Integer(), nullable=False),
        sa.Column('site_id', sa.Integer(), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('customer_id', 'gap', name=op.f('pk_customer_gaps')),
    )
    op.create_index(op.f('ix_customer_gaps_site_id'), 'customer_gaps', ['site_id'], unique=False)
    op.create_table(
        'segment_gap_counts',
        sa.Column('site_id', sa.Integer(), nullable=False),
        sa.Column('gap', sa.Integer(), nullable=False),
        sa.Column('n', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('site_id', 'gap', name=op.f('pk_segment_gap_counts')),
    )
    op.execute(GAPS.format(day=DAY[op.get_bind().dialect.name]))
    op.execute("INSERT INTO segment_gap_counts (site_id, gap, n) "
               "SELECT site_id, gap, sum(n) FROM customer_gaps GROUP BY site_id, gap")


def downgrade() -> None:
    op.drop_table('segment_gap_counts')
    op.drop_index(op.f('ix_customer_gaps_site_id'), table_name='customer_gaps')
    op.drop_table('customer_gaps')
