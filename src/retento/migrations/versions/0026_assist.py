"""assist: imported tickets, documentation sections, tasks and identifiers with their vectors; marks of suggestions

Revision ID: 0026_assist
Revises: 0025_customer_labels
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

from retento.core.db.types import JSONType, UTCDateTime

revision = '0026_assist'
down_revision = '0025_customer_labels'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('assist_items',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('external_id', sa.String(length=500), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.Column('resolution', sa.String(length=255), nullable=True),
    sa.Column('tags', JSONType, nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=True),
    sa.Column('page', sa.String(length=500), nullable=True),
    sa.Column('anchor', sa.String(length=255), nullable=True),
    sa.Column('url', sa.String(length=1000), nullable=True),
    sa.Column('meta', JSONType, nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.Column('embedder', sa.String(length=32), nullable=False),
    sa.Column('rev', sa.BigInteger(), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_assist_items_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assist_items')),
    sa.UniqueConstraint('site_id', 'kind', 'external_id', name='uq_assist_items_key')
    )
    with op.batch_alter_table('assist_items', schema=None) as batch_op:
        batch_op.create_index('ix_assist_items_rev', ['site_id', 'rev'], unique=False)

    op.create_table('assist_marks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('ticket', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=12), nullable=False),
    sa.Column('sources', JSONType, nullable=False),
    sa.Column('first_response_seconds', sa.Float(), nullable=True),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_assist_marks_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assist_marks')),
    sa.UniqueConstraint('site_id', 'idempotency_key', name='uq_assist_marks_key')
    )
    with op.batch_alter_table('assist_marks', schema=None) as batch_op:
        batch_op.create_index('ix_assist_marks_site', ['site_id', 'created_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('assist_marks', schema=None) as batch_op:
        batch_op.drop_index('ix_assist_marks_site')

    op.drop_table('assist_marks')
    with op.batch_alter_table('assist_items', schema=None) as batch_op:
        batch_op.drop_index('ix_assist_items_rev')

    op.drop_table('assist_items')
