"""webhooks: the trigger `webhook` action is delivered by the webhooks domain (one outbox, one delivery log, one
signature format); `trigger_webhook_calls` moves into `webhook_deliveries`

Revision ID: 0010_trigger_webhook_deliveries
Revises: 0009_trigger_misses
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import retento.core.db.types

revision = '0010_trigger_webhook_deliveries'
down_revision = '0009_trigger_misses'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trigger_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('url', sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column('secret', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=200), nullable=True))
        batch_op.alter_column('subscription_id', existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column('event_id', existing_type=sa.BigInteger(), nullable=True)
        batch_op.create_unique_constraint(batch_op.f('uq_webhook_deliveries_idempotency_key'), ['idempotency_key'])
        batch_op.create_foreign_key(batch_op.f('fk_webhook_deliveries_trigger_id_triggers'), 'triggers',
                                    ['trigger_id'], ['id'], ondelete='CASCADE')
        batch_op.create_index('ix_webhook_deliveries_trigger', ['trigger_id', 'id'], unique=False)
    op.execute(
        "INSERT INTO webhook_deliveries (trigger_id, idempotency_key, url, secret, event_type, payload, status, "
        "attempts, next_attempt_at, last_status_code, last_error, created_at, delivered_at) "
        "SELECT trigger_id, idempotency_key, url, secret, 'trigger', body, "
        "CASE state WHEN 'sent' THEN 'delivered' ELSE state END, attempts, "
        "CASE state WHEN 'pending' THEN next_at END, last_status, last_error, created_at, sent_at "
        "FROM trigger_webhook_calls ORDER BY id")
    with op.batch_alter_table('trigger_webhook_calls', schema=None) as batch_op:
        batch_op.drop_index('ix_trigger_webhook_calls_due')
    op.drop_table('trigger_webhook_calls')


def downgrade() -> None:
    op.create_table('trigger_webhook_calls',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('trigger_id', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('secret', sa.String(length=200), nullable=True),
    sa.Column('body', JSON, nullable=False),
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
    op.execute(
        "INSERT INTO trigger_webhook_calls (trigger_id, idempotency_key, url, secret, body, state, attempts, next_at, "
        "last_status, last_error, created_at, sent_at) "
        "SELECT trigger_id, idempotency_key, url, secret, payload, "
        "CASE status WHEN 'delivered' THEN 'sent' ELSE status END, attempts, "
        "COALESCE(next_attempt_at, created_at), last_status_code, last_error, created_at, delivered_at "
        "FROM webhook_deliveries WHERE trigger_id IS NOT NULL AND idempotency_key IS NOT NULL ORDER BY id")
    op.execute("DELETE FROM webhook_deliveries WHERE subscription_id IS NULL")
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_deliveries_trigger')
        batch_op.drop_constraint(batch_op.f('fk_webhook_deliveries_trigger_id_triggers'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_webhook_deliveries_idempotency_key'), type_='unique')
        batch_op.alter_column('event_id', existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column('subscription_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('idempotency_key')
        batch_op.drop_column('secret')
        batch_op.drop_column('url')
        batch_op.drop_column('trigger_id')
