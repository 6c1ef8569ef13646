"""triggers, timers, run log, tasks, order tags

Revision ID: 0005_triggers
Revises: 0004_webhooks
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import retento.core.db.types

revision = '0005_triggers'
down_revision = '0004_webhooks'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('triggers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('definition', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_triggers')),
    sa.UniqueConstraint('name', name=op.f('uq_triggers_name'))
    )
    op.create_table('tasks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('due_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('manager_id', sa.Integer(), nullable=True),
    sa.Column('customer_id', sa.BigInteger(), nullable=True),
    sa.Column('order_id', sa.BigInteger(), nullable=True),
    sa.Column('done', sa.Boolean(), nullable=False),
    sa.Column('done_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('actor_type', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['manager_id'], ['managers.id'], name=op.f('fk_tasks_manager_id_managers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tasks'))
    )
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index('ix_tasks_customer', ['customer_id'], unique=False)
        batch_op.create_index('ix_tasks_manager', ['manager_id', 'done', 'due_at'], unique=False)
        batch_op.create_index('ix_tasks_order', ['order_id'], unique=False)

    op.create_table('trigger_firings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('trigger_id', sa.Integer(), nullable=False),
    sa.Column('entity', sa.String(length=16), nullable=False),
    sa.Column('entity_id', sa.BigInteger(), nullable=False),
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('customer_id', sa.BigInteger(), nullable=True),
    sa.Column('order_id', sa.BigInteger(), nullable=True),
    sa.Column('at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['trigger_id'], ['triggers.id'], name=op.f('fk_trigger_firings_trigger_id_triggers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trigger_firings')),
    sa.UniqueConstraint('trigger_id', 'entity', 'entity_id', 'event_id', name=op.f('uq_trigger_firings_trigger_id_entity_entity_id_event_id'))
    )
    with op.batch_alter_table('trigger_firings', schema=None) as batch_op:
        batch_op.create_index('ix_trigger_firings_at', ['trigger_id', 'at'], unique=False)
        batch_op.create_index('ix_trigger_firings_customer', ['trigger_id', 'customer_id', 'at'], unique=False)
        batch_op.create_index('ix_trigger_firings_order', ['trigger_id', 'order_id', 'at'], unique=False)

    op.create_table('trigger_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('trigger_id', sa.Integer(), nullable=False),
    sa.Column('at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('phase', sa.String(length=16), nullable=False),
    sa.Column('event_id', sa.BigInteger(), nullable=True),
    sa.Column('timer_id', sa.BigInteger(), nullable=True),
    sa.Column('customer_id', sa.BigInteger(), nullable=True),
    sa.Column('order_id', sa.BigInteger(), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('actions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['trigger_id'], ['triggers.id'], name=op.f('fk_trigger_runs_trigger_id_triggers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trigger_runs'))
    )
    with op.batch_alter_table('trigger_runs', schema=None) as batch_op:
        batch_op.create_index('ix_trigger_runs_customer', ['customer_id', 'id'], unique=False)
        batch_op.create_index('ix_trigger_runs_order', ['order_id', 'id'], unique=False)
        batch_op.create_index('ix_trigger_runs_trigger', ['trigger_id', 'id'], unique=False)

    op.create_table('trigger_timers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('trigger_id', sa.Integer(), nullable=False),
    sa.Column('entity', sa.String(length=16), nullable=False),
    sa.Column('entity_id', sa.BigInteger(), nullable=False),
    sa.Column('customer_id', sa.BigInteger(), nullable=True),
    sa.Column('order_id', sa.BigInteger(), nullable=True),
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('due_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['trigger_id'], ['triggers.id'], name=op.f('fk_trigger_timers_trigger_id_triggers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trigger_timers')),
    sa.UniqueConstraint('trigger_id', 'entity', 'entity_id', 'event_id', name=op.f('uq_trigger_timers_trigger_id_entity_entity_id_event_id'))
    )
    with op.batch_alter_table('trigger_timers', schema=None) as batch_op:
        batch_op.create_index('ix_trigger_timers_due', ['state', 'due_at'], unique=False)
        batch_op.create_index('ix_trigger_timers_entity', ['entity', 'entity_id', 'state'], unique=False)

    op.create_table('trigger_webhook_calls',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('trigger_id', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('secret', sa.String(length=200), nullable=True),
    sa.Column('body', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['trigger_id'], ['triggers.id'], name=op.f('fk_trigger_webhook_calls_trigger_id_triggers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trigger_webhook_calls')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_trigger_webhook_calls_idempotency_key'))
    )
    with op.batch_alter_table('trigger_webhook_calls', schema=None) as batch_op:
        batch_op.create_index('ix_trigger_webhook_calls_due', ['state', 'next_at'], unique=False)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tags', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False, server_default='[]'))



def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('tags')

    with op.batch_alter_table('trigger_webhook_calls', schema=None) as batch_op:
        batch_op.drop_index('ix_trigger_webhook_calls_due')

    op.drop_table('trigger_webhook_calls')
    with op.batch_alter_table('trigger_timers', schema=None) as batch_op:
        batch_op.drop_index('ix_trigger_timers_entity')
        batch_op.drop_index('ix_trigger_timers_due')

    op.drop_table('trigger_timers')
    with op.batch_alter_table('trigger_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_trigger_runs_trigger')
        batch_op.drop_index('ix_trigger_runs_order')
        batch_op.drop_index('ix_trigger_runs_customer')

    op.drop_table('trigger_runs')
    with op.batch_alter_table('trigger_firings', schema=None) as batch_op:
        batch_op.drop_index('ix_trigger_firings_order')
        batch_op.drop_index('ix_trigger_firings_customer')
        batch_op.drop_index('ix_trigger_firings_at')

    op.drop_table('trigger_firings')
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_order')
        batch_op.drop_index('ix_tasks_manager')
        batch_op.drop_index('ix_tasks_customer')

    op.drop_table('tasks')
    op.drop_table('triggers')
