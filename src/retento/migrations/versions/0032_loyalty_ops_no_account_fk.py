"""loyalty operations' account reference without the database's per-row check: every writer of operations locks
the account's row in the same transaction and accounts are never deleted; the check was a third of an expiry run
over a million accounts (an operation per account)

Revision ID: 0032_loyalty_ops_no_account_fk
Revises: 0031_assist_imports
Create Date: 2026-12-06
"""
from alembic import op

revision = '0032_loyalty_ops_no_account_fk'
down_revision = '0031_assist_imports'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('loyalty_operations', schema=None) as batch_op:
        batch_op.drop_constraint('fk_loyalty_operations_account_id_loyalty_accounts', type_='foreignkey')


def downgrade() -> None:
    with op.batch_alter_table('loyalty_operations', schema=None) as batch_op:
        batch_op.create_foreign_key('fk_loyalty_operations_account_id_loyalty_accounts', 'loyalty_accounts',
                                    ['account_id'], ['id'])
