"""customers: a GIN index (jsonb_path_ops) on custom_fields for segment rules on a custom field (PostgreSQL
only; SQLite has no such index)

Revision ID: 0022_custom_field_index
Revises: 0021_inbox
Create Date: 2026-12-05
"""
from alembic import op

revision = '0022_custom_field_index'
down_revision = '0021_inbox'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index('ix_customers_custom_fields', 'customers', ['custom_fields'], unique=False,
                        postgresql_using='gin', postgresql_ops={'custom_fields': 'jsonb_path_ops'})


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index('ix_customers_custom_fields', table_name='customers')
