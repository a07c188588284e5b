"""products: a sale's stock update is a HOT update (no stock index, fillfactor 90)

Revision ID: 7c8a58ece09f
Revises: 70ed97065d8a
Create Date: 2026-11-25 09:00:00.000000

Every sale and cancel updates ``stock``, ``version`` and ``updated_at``. With ``stock``
indexed, each of those UPDATEs wrote a new entry into every index of the table (fourteen,
three of them GIN); without it none of the updated columns is indexed, and with free room on
the page (fillfactor 90) PostgreSQL updates the row in place (heap-only tuple). The stock
index served nothing: ``in_stock`` filters match most of the catalog. Pages already full
gain their room as they are rewritten (or at the next VACUUM FULL).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '7c8a58ece09f'
down_revision = '70ed97065d8a'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_products_stock'))
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE products SET (fillfactor = 90)')


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE products RESET (fillfactor)')
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_products_stock'), ['stock'], unique=False)
