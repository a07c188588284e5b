"""uploads: processing attempts

Revision ID: 3e5b9c0d7a41
Revises: 7c8a58ece09f
Create Date: 2026-11-26 09:00:00.000000

A product image's job counts its starts in the row, committed before it works: a run
killed outright (the OOM killer, kill -9) on RQ's last try runs none of our code, and the
upkeep, which queues such an image again, fails it once the count reaches its cap instead
of relaying it until the upload expires. Existing rows start at 0.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3e5b9c0d7a41'
down_revision = '7c8a58ece09f'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_column('attempts')
