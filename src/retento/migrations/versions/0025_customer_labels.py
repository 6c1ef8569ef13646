"""customers.labels: each customer's tags, interests and granted consents in one JSON list (`tag:vip`,
`interest:x`, `consent:email`), filled from the label tables; a GIN index (jsonb_path_ops) on it on PostgreSQL
for segment rules on tags, interests and consent

Revision ID: 0025_customer_labels
Revises: 0024_customer_search_trgm
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0025_customer_labels'
down_revision = '0024_customer_search_trgm'
branch_labels = None
depends_on = None

# every customer's labels, sorted, from the three label tables
LABELS = """
    SELECT customer_id, 'tag:' || tag AS label FROM customer_tags
    UNION SELECT customer_id, 'interest:' || interest FROM customer_interests
    UNION SELECT customer_id, 'consent:' || channel FROM customer_consents WHERE granted
"""


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    json = postgresql.JSONB() if pg else sa.JSON()
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('labels', json, server_default=sa.text("'[]'"), nullable=False))
    labels = LABELS
    if pg:
        op.execute(f"UPDATE customers SET labels = l.labels FROM (SELECT customer_id, "
                   f"jsonb_agg(label ORDER BY label) AS labels FROM ({labels}) x GROUP BY customer_id) l "
                   f"WHERE customers.id = l.customer_id")
        op.create_index('ix_customers_labels', 'customers', ['labels'], unique=False,
                        postgresql_using='gin', postgresql_ops={'labels': 'jsonb_path_ops'})
    else:
        op.execute(f"UPDATE customers SET labels = (SELECT json_group_array(label) FROM "
                   f"(SELECT label FROM ({labels}) x WHERE x.customer_id = customers.id ORDER BY label)) "
                   f"WHERE id IN (SELECT customer_id FROM ({labels}) y)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index('ix_customers_labels', table_name='customers')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('labels')
