"""customers: a trigram GIN index (pg_trgm) over first name, last name, email, phone and external id for the
console's substring search (PostgreSQL only, and only where the extension exists and may be created: without it
the search works unindexed)

Revision ID: 0024_customer_search_trgm
Revises: 0023_order_revenue
Create Date: 2026-12-05
"""
import logging

import sqlalchemy as sa
from alembic import op

revision = '0024_customer_search_trgm'
down_revision = '0023_order_revenue'
branch_labels = None
depends_on = None

COLUMNS = ('first_name', 'last_name', 'email', 'phone', 'external_id')
log = logging.getLogger("alembic.runtime.migration")


def _trigrams(bind: sa.Connection) -> bool:
    """pg_trgm installed, or installed now; False when the server lacks it or this role may not create it."""
    if bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).scalar():
        return True
    if not bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).scalar():
        log.warning("pg_trgm is not available: the customer search stays unindexed")
        return False
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as e:
        log.warning("pg_trgm could not be created (%s): the customer search stays unindexed", e.orig)
        return False
    return True


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and _trigrams(bind):
        op.create_index('ix_customers_search', 'customers', list(COLUMNS), unique=False, postgresql_using='gin',
                        postgresql_ops={c: 'gin_trgm_ops' for c in COLUMNS})


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index('ix_customers_search', table_name='customers', if_exists=True)
