"""/products and /categories: the catalog."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from app.api import Blueprint
from app.pagination import Page
from app.permissions import optional_principal
from app.products import category_service, service
from app.products.etags import etag_of, if_none_match_hits
from app.products.models import Category, Product
from app.products.permissions import can_write
from app.products.schemas import (
    CategoryCreateSchema,
    CategoryQueryArgsSchema,
    CategorySchema,
    IfMatchSchema,
    IfNoneMatchSchema,
    ProductCreateSchema,
    ProductItemArgsSchema,
    ProductQueryArgsSchema,
    ProductSchema,
    ProductUpdateSchema,
    restrict_fields,
)

blp = Blueprint("products", __name__, url_prefix="/api/v1", description="The catalog: products and categories")

ViewResult = tuple[Product, dict[str, str]]
ETAG_HEADER = {
    "ETag": {
        "description": "The product's version, for If-Match and If-None-Match",
        "required": True,
        "schema": {"type": "string"},
    }
}


def _location(product: Product) -> str:
    return f"{blp.url_prefix}/products/{product.id}"


@blp.route("/products")
class Products(MethodView):
    @blp.arguments(ProductQueryArgsSchema, location="query")
    @blp.response(200, ProductSchema(many=True))
    @blp.doc(operationId="list_products")
    def get(self, args: dict[str, Any]) -> Page[Product]:
        """List products (inactive ones and the is_active filter: staff only)."""
        restrict_fields(args.pop("sparse_fields", None))
        return service.list_(args=args, viewer=optional_principal())

    @can_write
    @blp.arguments(ProductCreateSchema)
    @blp.response(201, ProductSchema, headers=ETAG_HEADER)
    @blp.doc(operationId="create_product")
    def post(self, data: dict[str, Any]) -> tuple[Product, int, dict[str, str]]:
        """Create a product (409 on a duplicate SKU or slug)."""
        product = service.create(data=data)
        return product, 201, {"Location": _location(product), "ETag": etag_of(product)}


@blp.route("/products/<id_or_slug>")
class ProductItem(MethodView):
    @blp.arguments(ProductItemArgsSchema, location="query")
    @blp.arguments(IfNoneMatchSchema, location="headers")
    @blp.response(200, ProductSchema, headers=ETAG_HEADER)
    @blp.alt_response(
        304, description="Not Modified: the If-None-Match ETag is current", success=True, headers=ETAG_HEADER
    )
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(operationId="get_product")
    def get(self, args: dict[str, Any], headers: dict[str, str], id_or_slug: str) -> ViewResult | Response:
        """One product, by id or slug, with its ETag."""
        restrict_fields(args.get("sparse_fields"))
        product = service.get(ref=id_or_slug, viewer=optional_principal())
        etag = etag_of(product)
        if if_none_match_hits(headers.get("if_none_match"), product):
            return Response(status=304, headers={"ETag": etag})
        return product, {"ETag": etag}

    @can_write
    @blp.arguments(IfMatchSchema, location="headers")
    @blp.arguments(ProductCreateSchema)
    @blp.response(200, ProductSchema, headers=ETAG_HEADER)
    @blp.alt_response(412, response="PRECONDITION_FAILED")
    @blp.doc(operationId="replace_product")
    def put(self, headers: dict[str, str], data: dict[str, Any], id_or_slug: str) -> ViewResult:
        """Replace a product's writable fields (If-Match honoured)."""
        product = service.update(ref=id_or_slug, data=data, if_match=headers.get("if_match"))
        return product, {"ETag": etag_of(product)}

    @can_write
    @blp.arguments(IfMatchSchema, location="headers")
    @blp.arguments(ProductUpdateSchema, required=False)
    @blp.response(200, ProductSchema, headers=ETAG_HEADER)
    @blp.alt_response(412, response="PRECONDITION_FAILED")
    @blp.doc(operationId="update_product")
    def patch(self, headers: dict[str, str], data: dict[str, Any], id_or_slug: str) -> ViewResult:
        """Change some of a product's fields (If-Match honoured)."""
        product = service.update(ref=id_or_slug, data=data, if_match=headers.get("if_match"))
        return product, {"ETag": etag_of(product)}

    @can_write
    @blp.arguments(IfMatchSchema, location="headers")
    @blp.response(204)
    @blp.alt_response(412, response="PRECONDITION_FAILED")
    @blp.doc(operationId="delete_product")
    def delete(self, headers: dict[str, str], id_or_slug: str) -> None:
        """Soft-delete a product (If-Match honoured)."""
        service.delete(ref=id_or_slug, if_match=headers.get("if_match"))


@blp.route("/categories")
class Categories(MethodView):
    @blp.arguments(CategoryQueryArgsSchema, location="query")
    @blp.response(200, CategorySchema(many=True))
    @blp.doc(operationId="list_categories")
    def get(self, args: dict[str, Any]) -> Page[Category]:
        """List categories."""
        return category_service.list_(args=args)

    @can_write
    @blp.arguments(CategoryCreateSchema)
    @blp.response(201, CategorySchema)
    @blp.doc(operationId="create_category")
    def post(self, data: dict[str, Any]) -> tuple[Category, int, dict[str, str]]:
        """Create a category (409 on a duplicate slug)."""
        category = category_service.create(data=data)
        return category, 201, {"Location": f"{blp.url_prefix}/categories/{category.id}"}


@blp.route("/categories/<id_or_slug>")
class CategoryItem(MethodView):
    @blp.response(200, CategorySchema)
    @blp.doc(operationId="get_category")
    def get(self, id_or_slug: str) -> Category:
        """One category, by id or slug."""
        return category_service.get(ref=id_or_slug)
