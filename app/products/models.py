"""The catalog: products, categories and the association between them."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import MIGRATION_MANAGED, Base, IdMixin, SoftDeleteMixin, TimestampMixin
from app.uploads.urls import content_url, thumbnail_urls

DEFAULT_LOW_STOCK_THRESHOLD = 5
SKU_MAX = 64
SLUG_MAX = 120
NAME_MAX = 200
# The largest stock (and threshold) a product holds: PostgreSQL's ``integer``.
INT_MAX = 2_147_483_647
# ``?q=`` matches any part of these (trigram indexes on PostgreSQL); words anywhere in
# name, SKU and description through the full-text document below.
SUBSTRING_SEARCHED = ("name", "sku")
# PostgreSQL only, created by a migration (a stored generated ``tsvector`` and its GIN
# index): the models leave them out, the migration tooling leaves them alone.
SEARCH_VECTOR = "search_vector"
SEARCH_OBJECTS = frozenset({SEARCH_VECTOR, "ix_products_search_vector"})  # see app.db.include_object

# Only live (not soft-deleted) rows claim a SKU or slug, so a deleted product's can be reused.
_LIVE = sa.text("deleted_at IS NULL")
# What the public sees, exactly as the read queries write it (so the planner matches it).
_LISTED = sa.text("deleted_at IS NULL AND is_active IS true")

product_categories = sa.Table(
    "product_categories",
    Base.metadata,
    sa.Column("product_id", sa.Uuid(), sa.ForeignKey("products.id", ondelete="CASCADE"), primary_key=True),
    # The primary key serves lookups by product; this index serves ``?category=``.
    sa.Column("category_id", sa.Uuid(), sa.ForeignKey("categories.id", ondelete="CASCADE"), primary_key=True),
    sa.Index("ix_product_categories_category_id", "category_id"),
)


class Category(IdMixin, TimestampMixin, Base):
    __tablename__ = "categories"

    name: Mapped[str] = mapped_column(sa.String(NAME_MAX), index=True)
    slug: Mapped[str] = mapped_column(sa.String(SLUG_MAX), unique=True)
    description: Mapped[str | None] = mapped_column(sa.Text, default=None)

    def __repr__(self) -> str:
        return f"<Category {self.slug}>"


class Product(IdMixin, TimestampMixin, SoftDeleteMixin, Base):
    __tablename__ = "products"
    __table_args__ = (
        sa.CheckConstraint("price >= 0", name="price_non_negative"),
        sa.CheckConstraint(
            "compare_at_price IS NULL OR compare_at_price >= price", name="compare_at_price_not_below_price"
        ),
        sa.CheckConstraint("stock >= 0", name="stock_non_negative"),
        sa.CheckConstraint("low_stock_threshold >= 0", name="low_stock_threshold_non_negative"),
        sa.CheckConstraint("version >= 1", name="version_positive"),
        sa.Index("uq_products_sku", "sku", unique=True, sqlite_where=_LIVE, postgresql_where=_LIVE),
        sa.Index("uq_products_slug", "slug", unique=True, sqlite_where=_LIVE, postgresql_where=_LIVE),
        # The count behind a public list's ``total`` (with or without a price range) is an
        # index-only scan of this one rather than a pass over every row.
        sa.Index("ix_products_listed_price", "price", sqlite_where=_LISTED, postgresql_where=_LISTED),
        # Keyset pairs: every documented sort key with the id that breaks its ties.
        sa.Index("ix_products_name_id", "name", "id"),
        sa.Index("ix_products_price_id", "price", "id"),
        sa.Index("ix_products_created_at_id", "created_at", "id"),
        # ``?q=`` is also an ILIKE '%…%' over these columns; on PostgreSQL trigram GIN
        # indexes serve it (the migration creates the pg_trgm extension). One index per
        # column: the planner costs a multi-column GIN index as a whole and would not use
        # it. Elsewhere they are plain indexes, so that models and migrations agree on
        # every backend.
        *(
            sa.Index(
                f"ix_products_{column}_trgm",
                column,
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            )
            for column in SUBSTRING_SEARCHED
        ),
        # On PostgreSQL the table has fillfactor 90 (set by a migration; SQLAlchemy has no
        # table option for it): room on every page for the new versions of rows sales update.
        {"info": {MIGRATION_MANAGED: SEARCH_OBJECTS}},
    )

    sku: Mapped[str] = mapped_column(sa.String(SKU_MAX))
    slug: Mapped[str] = mapped_column(sa.String(SLUG_MAX))
    name: Mapped[str] = mapped_column(sa.String(NAME_MAX))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    price: Mapped[Decimal]
    compare_at_price: Mapped[Decimal | None] = mapped_column(default=None)
    # Not indexed: a sale's stock UPDATE then changes no indexed column and can be a HOT
    # update (no new entry in any of the table's indexes; see the fillfactor below).
    stock: Mapped[int] = mapped_column(default=0)
    low_stock_threshold: Mapped[int] = mapped_column(default=DEFAULT_LOW_STOCK_THRESHOLD)
    is_active: Mapped[bool] = mapped_column(default=True, index=True)
    # A ready product image (checked by the service); the key also keeps the upload from
    # being deleted while a live product shows it (a soft delete lets go of the image).
    image_upload_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("uploads.id", ondelete="RESTRICT"), default=None, index=True
    )
    version: Mapped[int] = mapped_column(default=1)

    categories: Mapped[list[Category]] = relationship(
        secondary=product_categories, order_by=[Category.name, Category.id]
    )

    # Every UPDATE runs ``… WHERE version = :seen`` and bumps it: optimistic locking.
    __mapper_args__: dict[str, Any] = {"version_id_col": version}

    @property
    def in_stock(self) -> bool:
        return self.stock > 0

    @property
    def low_stock(self) -> bool:
        return self.stock <= self.low_stock_threshold

    @property
    def image_url(self) -> str | None:
        return content_url(self.image_upload_id) if self.image_upload_id else None

    @property
    def thumbnails(self) -> dict[str, str] | None:
        return thumbnail_urls(self.image_upload_id) if self.image_upload_id else None

    def __repr__(self) -> str:
        return f"<Product {self.sku} v{self.version}>"
