"""catalog: full-text search with relevance, an index for public counts

Revision ID: 26ffb3b73349
Revises: f1727783bb49
Create Date: 2026-11-24 06:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '26ffb3b73349'
down_revision = 'f1727783bb49'
branch_labels = None
depends_on = None

# ?q= on PostgreSQL: full-text search over a stored, weighted document (name A, SKU B,
# description D: ts_rank then puts a name match above a description match), plus
# substring matching on SKU and name (their trigram indexes stay). Description substrings
# are no longer searched, so its trigram index goes. The document and its index exist on
# PostgreSQL only; the models declare them as managed by migrations
# (products.info["migration_managed"]), other backends search with LIKE.
SEARCH_DOCUMENT = (
    "setweight(to_tsvector('english'::regconfig, name), 'A') || "
    "setweight(to_tsvector('english'::regconfig, sku), 'B') || "
    "setweight(to_tsvector('english'::regconfig, description), 'D')"
)


LISTED = "deleted_at IS NULL AND is_active IS true"


def upgrade():
    # The count behind a public list's total: an index-only scan of this partial index.
    op.create_index(
        'ix_products_listed_price', 'products', ['price'], unique=False,
        sqlite_where=sa.text(LISTED), postgresql_where=sa.text(LISTED),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute(f"ALTER TABLE products ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ({SEARCH_DOCUMENT}) STORED")
        op.create_index('ix_products_search_vector', 'products', ['search_vector'], unique=False, postgresql_using='gin')
    op.drop_index('ix_products_description_trgm', table_name='products')


def downgrade():
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.create_index(
            'ix_products_description_trgm', 'products', ['description'], unique=False,
            postgresql_using='gin', postgresql_ops={'description': 'gin_trgm_ops'},
        )
        op.drop_index('ix_products_search_vector', table_name='products')
        op.drop_column('products', 'search_vector')
    else:
        op.create_index('ix_products_description_trgm', 'products', ['description'], unique=False)
    op.drop_index('ix_products_listed_price', table_name='products')
