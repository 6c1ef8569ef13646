"""customer_gaps: one row per customer, the gap counts in one text (`gap:n` items joined by commas), where it was a
row per customer and gap length; the incremental path gets the old counts from the DELETE that drops the row (one
index entry and one heap row per customer instead of a dozen), and the table is a tenth of the size. Refilled
from the orders; the sites' histograms (`segment_gap_counts`) are unchanged

Revision ID: 0036_customer_gaps_one_row
Revises: 0035_trigger_timers_entity_key
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0036_customer_gaps_one_row'
down_revision = '0035_trigger_timers_entity_key'
branch_labels = None
depends_on = None

DAY = {"postgresql": "((o.created_at AT TIME ZONE 'UTC')::date - DATE '1970-01-01')",
       "sqlite": "(CAST(strftime('%s', substr(o.created_at, 1, 10)) AS INTEGER) / 86400)"}
JOIN = {"postgresql": "string_agg({item}, ',')", "sqlite": "group_concat({item}, ',')"}
GAPS = """
    SELECT customer_id, min(site_id) AS site_id, gap, count(*) AS n FROM (
        SELECT customer_id, site_id, day - lag(day) OVER (PARTITION BY customer_id ORDER BY day) AS gap FROM (
            SELECT o.customer_id, min(o.site_id) AS site_id, {day} AS day FROM orders o
            WHERE o.customer_id IS NOT NULL
              AND o.status IN (SELECT code FROM statuses WHERE group_code <> 'cancel')
            GROUP BY o.customer_id, {day}) days) lagged
    WHERE gap IS NOT NULL GROUP BY customer_id, gap
"""


def _gaps(name: str, *, one_row: bool) -> str:
    gaps = GAPS.format(day=DAY[name])
    if not one_row:
        return f"INSERT INTO customer_gaps (customer_id, site_id, gap, n) SELECT * FROM ({gaps}) g"
    joined = JOIN[name].format(item="CAST(gap AS TEXT) || ':' || CAST(n AS TEXT)")
    return (f"INSERT INTO customer_gaps (customer_id, site_id, gaps) SELECT customer_id, min(site_id), {joined} "
            f"FROM ({gaps}) g GROUP BY customer_id")


def _table(one_row: bool) -> None:
    op.drop_index(op.f('ix_customer_gaps_site_id'), table_name='customer_gaps')
    op.drop_table('customer_gaps')
    key = ['customer_id'] if one_row else ['customer_id', 'gap']
    columns = [sa.Column('gaps', sa.Text(), nullable=False)] if one_row else [
        sa.Column('gap', sa.Integer(), nullable=False), sa.Column('n', sa.Integer(), nullable=False)]
    op.create_table(
        'customer_gaps',
        sa.Column('customer_id', sa.BigInteger(), nullable=False),
        sa.Column('site_id', sa.Integer(), nullable=False),
        *columns,
        sa.PrimaryKeyConstraint(*key, name=op.f('pk_customer_gaps')),
    )
    op.create_index(op.f('ix_customer_gaps_site_id'), 'customer_gaps', ['site_id'], unique=False)
    op.execute(_gaps(op.get_bind().dialect.name, one_row=one_row))


def upgrade() -> None:
    _table(one_row=True)


def downgrade() -> None:
    _table(one_row=False)
