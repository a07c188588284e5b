"""baseline

Revision ID: fdfee475f6a4
Revises: 
Create Date: 2026-11-22 07:46:14.630824

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'fdfee475f6a4'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
