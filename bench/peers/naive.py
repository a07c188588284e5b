"""What a user would write instead: flask-smorest + Flask-SQLAlchemy, COUNT + OFFSET per page.

The same table and the same fields as ``GET /api/v1/products`` (categories loaded eagerly,
active live products, newest first), written the way the libraries' tutorials show: ORM
objects, ``db.paginate`` (a ``COUNT(*)`` and an ``OFFSET`` query per request), a
marshmallow schema dumped by ``@blp.response``. No cache.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from decimal import Decimal

import marshmallow as ma
import sqlalchemy as sa
from flask import Flask
from flask.views import MethodView
from flask_smorest import Api, Blueprint
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)

product_categories = sa.Table(
    "product_categories",
    Base.metadata,
    sa.Column("product_id", sa.Uuid(), sa.ForeignKey("products.id"), primary_key=True),
    sa.Column("category_id", sa.Uuid(), sa.ForeignKey("categories.id"), primary_key=True),
)


class Category(Base):
    __tablename__ = "categories"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    slug: Mapped[str]
    name: Mapped[str]


class Product(Base):
    __tablename__ = "products"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    sku: Mapped[str]
    slug: Mapped[str]
    name: Mapped[str]
    description: Mapped[str]
    price: Mapped[Decimal] = mapped_column(sa.Numeric(12, 2))
    compare_at_price: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 2))
    stock: Mapped[int]
    low_stock_threshold: Mapped[int]
    is_active: Mapped[bool]
    version: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    categories: Mapped[list[Category]] = relationship(secondary=product_categories, order_by=Category.name)


class CategorySchema(ma.Schema):
    id = ma.fields.UUID()
    slug = ma.fields.String()
    name = ma.fields.String()


class ProductSchema(ma.Schema):
    id = ma.fields.UUID()
    sku = ma.fields.String()
    slug = ma.fields.String()
    name = ma.fields.String()
    description = ma.fields.String()
    price = ma.fields.Decimal(as_string=True)
    compare_at_price = ma.fields.Decimal(as_string=True, allow_none=True)
    stock = ma.fields.Integer()
    in_stock = ma.fields.Function(lambda p: p.stock > 0)
    low_stock = ma.fields.Function(lambda p: p.stock <= p.low_stock_threshold)
    is_active = ma.fields.Boolean()
    categories = ma.fields.List(ma.fields.Nested(CategorySchema))
    version = ma.fields.Integer()
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()


class MetaSchema(ma.Schema):
    page = ma.fields.Integer()
    per_page = ma.fields.Integer()
    total = ma.fields.Integer()
    total_pages = ma.fields.Integer()


class ProductPageSchema(ma.Schema):
    data = ma.fields.List(ma.fields.Nested(ProductSchema))
    meta = ma.fields.Nested(MetaSchema)


class PageArgsSchema(ma.Schema):
    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1))
    per_page = ma.fields.Integer(load_default=20, validate=ma.validate.Range(min=1, max=100))


blp = Blueprint("products", __name__, url_prefix="/api/v1")


@blp.route("/products")
class Products(MethodView):
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, ProductPageSchema)
    def get(self, args: dict[str, int]) -> dict[str, object]:
        stmt = (
            sa.select(Product)
            .where(Product.deleted_at.is_(None), Product.is_active.is_(True))
            .options(selectinload(Product.categories))
            .order_by(Product.created_at.desc(), Product.id.desc())
        )
        page = db.paginate(stmt, page=args["page"], per_page=args["per_page"], error_out=False)
        meta = {"page": page.page, "per_page": page.per_page, "total": page.total, "total_pages": page.pages}
        return {"data": page.items, "meta": meta}


app = Flask(__name__)
app.config.update(
    SQLALCHEMY_DATABASE_URI=os.environ["DATABASE_URL"],
    API_TITLE="naive",
    API_VERSION="v1",
    OPENAPI_VERSION="3.1.0",
)
db.init_app(app)
Api(app).register_blueprint(blp)
