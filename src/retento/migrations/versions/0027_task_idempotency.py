"""tasks: an idempotency key per actor (the console's task form sent twice creates one task)

Revision ID: 0027_task_idempotency
Revises: 0026_assist
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = '0027_task_idempotency'
down_revision = '0026_assist'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tasks') as batch:
        batch.add_column(sa.Column('idempotency_key', sa.String(length=64), nullable=True))
        batch.create_unique_constraint(op.f('uq_tasks_actor_type_actor_id_idempotency_key'), ['actor_type', 'actor_id', 'idempotency_key'])


def downgrade() -> None:
    with op.batch_alter_table('tasks') as batch:
        batch.drop_constraint(op.f('uq_tasks_actor_type_actor_id_idempotency_key'), type_='unique')
        batch.drop_column('idempotency_key')
