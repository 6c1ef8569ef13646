"""segments: rules, members and history, rollups, RFM scores, cohort settings, initiatives

Revision ID: 0007_segments
Revises: 0005_triggers
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import retento.core.db.types

revision = '0007_segments'
down_revision = '0005_triggers'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('customer_rollups',
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('orders_count', sa.Integer(), nullable=False),
    sa.Column('orders_total', retento.core.db.types.Amount(precision=18, scale=2), nullable=False),
    sa.Column('purchase_days', sa.Integer(), nullable=False),
    sa.Column('first_day_total', retento.core.db.types.Amount(precision=18, scale=2), nullable=False),
    sa.Column('first_order_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_order_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customer_rollups'))
    )
    with op.batch_alter_table('customer_rollups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_rollups_last_order_at'), ['last_order_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_customer_rollups_site_id'), ['site_id'], unique=False)

    op.create_table('rfm_scores',
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('frequency', sa.Integer(), nullable=False),
    sa.Column('recency', sa.Integer(), nullable=False),
    sa.Column('age', sa.Integer(), nullable=False),
    sa.Column('monetary', retento.core.db.types.Amount(precision=18, scale=2), nullable=False),
    sa.Column('r', sa.Integer(), nullable=False),
    sa.Column('f', sa.Integer(), nullable=False),
    sa.Column('m', sa.Integer(), nullable=False),
    sa.Column('cell', sa.String(length=64), nullable=False),
    sa.Column('expected_purchases', sa.Float(), nullable=True),
    sa.Column('ltv', retento.core.db.types.Amount(precision=18, scale=2), nullable=True),
    sa.Column('computed_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_rfm_scores'))
    )
    with op.batch_alter_table('rfm_scores', schema=None) as batch_op:
        batch_op.create_index('ix_rfm_scores_site_cell', ['site_id', 'cell'], unique=False)

    op.create_table('segment_dirty',
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('queued_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('claim', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_segment_dirty'))
    )
    with op.batch_alter_table('segment_dirty', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_segment_dirty_claim'), ['claim'], unique=False)
    op.create_table('marketing_initiatives',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('started_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('created_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_marketing_initiatives_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_marketing_initiatives')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_marketing_initiatives_idempotency_key'))
    )
    with op.batch_alter_table('marketing_initiatives', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_marketing_initiatives_site_id'), ['site_id'], unique=False)

    op.create_table('segment_settings',
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('rfm', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('threshold_days', sa.Integer(), nullable=True),
    sa.Column('computed_threshold_days', sa.Float(), nullable=True),
    sa.Column('rfm_computed_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_segment_settings_site_id_sites')),
    sa.PrimaryKeyConstraint('site_id', name=op.f('pk_segment_settings'))
    )
    op.create_table('segments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('rules', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('time_dependent', sa.Boolean(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('computed_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_segments_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_segments'))
    )
    with op.batch_alter_table('segments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_segments_site_id'), ['site_id'], unique=False)
        batch_op.create_index('uq_segments_site_code', ['site_id', 'code'], unique=True)

    op.create_table('segment_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('segment_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('entered', sa.Boolean(), nullable=False),
    sa.Column('at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_segment_changes_segment_id_segments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_segment_changes'))
    )
    with op.batch_alter_table('segment_changes', schema=None) as batch_op:
        batch_op.create_index('ix_segment_changes_customer', ['customer_id', 'id'], unique=False)
        batch_op.create_index('ix_segment_changes_segment', ['segment_id', 'id'], unique=False)

    op.create_table('segment_members',
    sa.Column('segment_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('since', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_segment_members_segment_id_segments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('segment_id', 'customer_id', name=op.f('pk_segment_members'))
    )
    with op.batch_alter_table('segment_members', schema=None) as batch_op:
        batch_op.create_index('ix_segment_members_customer', ['customer_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('segment_members', schema=None) as batch_op:
        batch_op.drop_index('ix_segment_members_customer')

    op.drop_table('segment_members')
    with op.batch_alter_table('segment_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_segment_changes_segment')
        batch_op.drop_index('ix_segment_changes_customer')

    op.drop_table('segment_changes')
    with op.batch_alter_table('segments', schema=None) as batch_op:
        batch_op.drop_index('uq_segments_site_code')
        batch_op.drop_index(batch_op.f('ix_segments_site_id'))

    op.drop_table('segments')
    op.drop_table('segment_settings')
    with op.batch_alter_table('marketing_initiatives', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_marketing_initiatives_site_id'))

    op.drop_table('marketing_initiatives')
    with op.batch_alter_table('segment_dirty', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_segment_dirty_claim'))

    op.drop_table('segment_dirty')
    with op.batch_alter_table('rfm_scores', schema=None) as batch_op:
        batch_op.drop_index('ix_rfm_scores_site_cell')

    op.drop_table('rfm_scores')
    with op.batch_alter_table('customer_rollups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_rollups_site_id'))
        batch_op.drop_index(batch_op.f('ix_customer_rollups_last_order_at'))

    op.drop_table('customer_rollups')
