"""loyalty: card numbers of accounts (RetailCRM v5 loyalty accounts carry one), promo codes and personal discounts
converted into points once (loyalty_codes)

Revision ID: 0018_loyalty_codes
Revises: 0017_category_rollups
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

import retento.core.db.types

revision = '0018_loyalty_codes'
down_revision = '0017_category_rollups'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('loyalty_accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('card_number', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_loyalty_accounts_program_id_card_number'),
                                          ['program_id', 'card_number'])
    op.create_table('loyalty_codes',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('program_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('account_id', BIG_ID, nullable=False),
    sa.Column('operation_id', BIG_ID, nullable=False),
    sa.Column('created_at', retento.core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['loyalty_accounts.id'],
                            name=op.f('fk_loyalty_codes_account_id_loyalty_accounts')),
    sa.ForeignKeyConstraint(['operation_id'], ['loyalty_operations.id'],
                            name=op.f('fk_loyalty_codes_operation_id_loyalty_operations')),
    sa.ForeignKeyConstraint(['program_id'], ['loyalty_programs.id'],
                            name=op.f('fk_loyalty_codes_program_id_loyalty_programs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loyalty_codes')),
    sa.UniqueConstraint('program_id', 'code', name=op.f('uq_loyalty_codes_program_id_code'))
    )


def downgrade() -> None:
    op.drop_table('loyalty_codes')
    with op.batch_alter_table('loyalty_accounts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_loyalty_accounts_program_id_card_number'), type_='unique')
        batch_op.drop_column('card_number')
