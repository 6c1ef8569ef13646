"""assist imports and evaluations kept in the database: an upload's progress is the same in every API process
(before, each process kept its own in memory) and the worker imports it batch by batch, resuming after a restart

Revision ID: 0031_assist_imports
Revises: 0030_loyalty_ops_order_partial
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import retento.core.db.types

revision = '0031_assist_imports'
down_revision = '0030_loyalty_ops_order_partial'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TIME = retento.core.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('assist_imports',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('batches', JSON, nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('counts', JSON, nullable=False),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('due_at', TIME, nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', TIME, nullable=False),
    sa.Column('finished_at', TIME, nullable=True),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_assist_imports_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assist_imports'))
    )
    op.create_index('ix_assist_imports_due', 'assist_imports', ['state', 'due_at'])
    op.create_index('ix_assist_imports_site', 'assist_imports', ['site_id', 'id'])
    op.create_table('assist_evaluations',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('file', sa.String(length=255), nullable=False),
    sa.Column('figures', JSON, nullable=False),
    sa.Column('created_at', TIME, nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_assist_evaluations_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assist_evaluations'))
    )
    op.create_index('ix_assist_evaluations_site', 'assist_evaluations', ['site_id', 'id'])


def downgrade() -> None:
    op.drop_table('assist_evaluations')
    op.drop_table('assist_imports')
