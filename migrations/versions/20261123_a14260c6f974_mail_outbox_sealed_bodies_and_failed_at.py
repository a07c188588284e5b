"""mail outbox: sealed bodies and failed_at

Revision ID: a14260c6f974
Revises: 8eb880e4b24e
Create Date: 2026-11-23 00:35:13.581132

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a14260c6f974'
down_revision = '8eb880e4b24e'
branch_labels = None
depends_on = None


def upgrade():
    # Rows written before this revision were stored in the clear: they stay not sensitive.
    with op.batch_alter_table('mail_outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sensitive', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('failed_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('mail_outbox', schema=None) as batch_op:
        batch_op.drop_column('failed_at')
        batch_op.drop_column('sensitive')
