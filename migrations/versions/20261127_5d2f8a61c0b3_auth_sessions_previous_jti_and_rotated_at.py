"""auth sessions: the refresh token spent last, and when

Revision ID: 5d2f8a61c0b3
Revises: 3e5b9c0d7a41
Create Date: 2026-11-27 09:00:00.000000

A refresh rotation keeps the jti it spent (``previous_jti``) and its time (``rotated_at``):
that token, presented again within ``REFRESH_REUSE_GRACE_SECONDS`` (a client whose answer
was lost, or a second thread of it), gets the session's current token again instead of
revoking the session. Existing sessions start with neither: their next reuse of a spent
token revokes them, as before.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5d2f8a61c0b3'
down_revision = '3e5b9c0d7a41'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('previous_jti', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('rotated_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.drop_column('rotated_at')
        batch_op.drop_column('previous_jti')
