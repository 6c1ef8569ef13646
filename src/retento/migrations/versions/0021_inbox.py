"""inbox: dialogs, messages, cycles, business connections, exclusions

Revision ID: 0021_inbox
Revises: 0020_console_speed
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

from retento.core.db.types import JSONType, UTCDateTime

revision = '0021_inbox'
down_revision = '0020_console_speed'
branch_labels = None
depends_on = None
BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('inbox_connections',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('user_chat_id', sa.String(length=64), nullable=False),
    sa.Column('user_name', sa.String(length=255), nullable=True),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('can_reply', sa.Boolean(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_inbox_connections_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox_connections'))
    )
    op.create_table('inbox_dialogs',
    sa.Column('id', BigId, nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('account', sa.String(length=128), nullable=False),
    sa.Column('peer', sa.String(length=128), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=True),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('tags', JSONType, nullable=False),
    sa.Column('unread', sa.Integer(), nullable=False),
    sa.Column('cycle_id', sa.BigInteger(), nullable=True),
    sa.Column('last_message_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_inbound_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_inbox_dialogs_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox_dialogs')),
    sa.UniqueConstraint('site_id', 'channel', 'account', 'peer', name='uq_inbox_dialogs_peer')
    )
    with op.batch_alter_table('inbox_dialogs', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_dialogs_assignee', ['assignee_id', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbox_dialogs_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_inbox_dialogs_list', ['site_id', 'state', 'last_message_at'], unique=False)

    op.create_table('inbox_exclusions',
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('peer', sa.String(length=128), nullable=False),
    sa.Column('note', sa.String(length=255), nullable=True),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_inbox_exclusions_site_id_sites')),
    sa.PrimaryKeyConstraint('site_id', 'channel', 'peer', name=op.f('pk_inbox_exclusions'))
    )
    op.create_table('inbox_settings',
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('assignment', sa.String(length=16), nullable=False),
    sa.Column('operators', JSONType, nullable=False),
    sa.Column('last_assigned_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_inbox_settings_site_id_sites')),
    sa.PrimaryKeyConstraint('site_id', name=op.f('pk_inbox_settings'))
    )
    op.create_table('inbox_cycles',
    sa.Column('id', BigId, nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('dialog_id', BigId, nullable=False),
    sa.Column('opened_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('first_response_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('responder_id', sa.Integer(), nullable=True),
    sa.Column('closed_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['dialog_id'], ['inbox_dialogs.id'], name=op.f('fk_inbox_cycles_dialog_id_inbox_dialogs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox_cycles'))
    )
    with op.batch_alter_table('inbox_cycles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbox_cycles_dialog_id'), ['dialog_id'], unique=False)

    op.create_table('inbox_dialog_orders',
    sa.Column('dialog_id', BigId, nullable=False),
    sa.Column('order_id', sa.BigInteger(), nullable=False),
    sa.Column('linked_at', UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['dialog_id'], ['inbox_dialogs.id'], name=op.f('fk_inbox_dialog_orders_dialog_id_inbox_dialogs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('dialog_id', 'order_id', name=op.f('pk_inbox_dialog_orders'))
    )
    op.create_table('inbox_messages',
    sa.Column('id', BigId, nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('dialog_id', BigId, nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('provider_id', sa.String(length=255), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('media', JSONType, nullable=True),
    sa.Column('reply_to', sa.String(length=255), nullable=True),
    sa.Column('buttons', JSONType, nullable=True),
    sa.Column('payload', sa.String(length=1024), nullable=True),
    sa.Column('outbox_id', sa.BigInteger(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('sent_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('edited_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('edits', JSONType, nullable=True),
    sa.Column('deleted_at', UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['dialog_id'], ['inbox_dialogs.id'], name=op.f('fk_inbox_messages_dialog_id_inbox_dialogs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox_messages')),
    sa.UniqueConstraint('dialog_id', 'provider_id', name='uq_inbox_messages_provider'),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_inbox_messages_idempotency_key'))
    )
    with op.batch_alter_table('inbox_messages', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_messages_dialog', ['dialog_id', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('inbox_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_messages_dialog')

    op.drop_table('inbox_messages')
    op.drop_table('inbox_dialog_orders')
    with op.batch_alter_table('inbox_cycles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbox_cycles_dialog_id'))

    op.drop_table('inbox_cycles')
    op.drop_table('inbox_settings')
    op.drop_table('inbox_exclusions')
    with op.batch_alter_table('inbox_dialogs', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_dialogs_list')
        batch_op.drop_index(batch_op.f('ix_inbox_dialogs_customer_id'))
        batch_op.drop_index('ix_inbox_dialogs_assignee')

    op.drop_table('inbox_dialogs')
    op.drop_table('inbox_connections')
