"""/products and /categories: the catalog."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response
from flask.views import MethodView
from werkzeug.routing import BaseConverter

from app.api import Api, Blueprint
from app.permissions import optional_principal
from app.products import category_service, reads, service
from app.products.etags import etag_of
from app.products.models import Category, Product
from app.products.permissions import can_write
from app.products.schemas import (
    CategoryCreateSchema,
    CategoryQueryArgsSchema,
    CategorySchema,
    ProductCreateSchema,
    ProductItemArgsSchema,
    ProductQueryArgsSchema,
    ProductSchema,
    ProductUpdateSchema,
)
from app.products.slugs import RESERVED_SLUGS
from app.products.transfer import routes as transfer_routes
from app.schema import IfMatchSchema, IfNoneMatchSchema

blp = Blueprint("products", __name__, url_prefix="/api/v1", description="The catalog: products and categories")

ViewResult = tuple[Product, dict[str, str]]
ETAG_HEADER = {
    "ETag": {
        "description": "The product's version, for If-Match and If-None-Match",
        "required": True,
        "schema": {"type": "string"},
    }
}
_CACHE_CONTROL = {
    "description": "public, max-age=0, must-revalidate for what anyone may see (shared caches may keep it and "
    "revalidate it with If-None-Match); private, no-store for what staff see",
    "schema": {"type": "string"},
}
_VARY = {"description": "Authorization: staff see inactive products too", "schema": {"type": "string"}}
READ_HEADERS = {**ETAG_HEADER, "Cache-Control": _CACHE_CONTROL, "Vary": _VARY}
LIST_HEADERS = {
    "ETag": {"description": "The page's entity tag, for If-None-Match", "schema": {"type": "string"}},
    "Cache-Control": _CACHE_CONTROL,
    "Vary": _VARY,
}
CATEGORY_HEADERS = {
    "ETag": {"description": "For If-None-Match", "schema": {"type": "string"}},
    "Cache-Control": {"description": "public, max-age=0, must-revalidate", "schema": {"type": "string"}},
    "Vary": {"description": "Authorization (as on every catalog read)", "schema": {"type": "string"}},
}
# A 304 of a list carries the Link header its 200 would.
_LINK = {"Link": {"$ref": "#/components/headers/Link"}}
NOT_MODIFIED = "Not Modified: the If-None-Match ETag is current"


class ProductRefConverter(BaseConverter):
    """``{id_or_slug}`` of a product: anything but the paths of their own under /products/
    (``imports``, ``exports``), so that only their routes answer there."""

    regex = rf"(?!(?:{'|'.join(sorted(RESERVED_SLUGS))})(?:/|$))[^/]+"


def register_converters(app: Flask, api: Api) -> None:
    app.url_map.converters["product_ref"] = ProductRefConverter
    api.register_converter(
        ProductRefConverter, lambda _converter: {"type": "string", "not": {"enum": sorted(RESERVED_SLUGS)}}
    )


def _early_answer() -> Response | None:
    """Anonymous catalog reads the cache holds are answered before argument parsing
    (``reads.early_answer``); the app's hooks (rate limits first) have run already."""
    answer = reads.early_answer()
    return answer.response() if answer is not None else None


blp.before_request(_early_answer)


def _location(product: Product) -> str:
    return f"{blp.url_prefix}/products/{product.id}"


@blp.route("/products")
class Products(MethodView):
    @blp.arguments(ProductQueryArgsSchema, location="query")
    @blp.arguments(IfNoneMatchSchema, location="headers")
    @blp.response(200, ProductSchema(many=True), headers=LIST_HEADERS)
    @blp.alt_response(304, description=NOT_MODIFIED, headers={**LIST_HEADERS, **_LINK}, success=True)
    # No ``security``: anyone may call it. A token sent is read (staff see more), and must
    # be valid. (``security: [{}, bearerAuth]`` would say so too, but openapi-python-client
    # then demands an AuthenticatedClient of anonymous callers.)
    @blp.alt_response(401, response="UNAUTHORIZED", description="A token was sent and is not valid")
    @blp.doc(operationId="list_products")
    def get(self, args: dict[str, Any], headers: dict[str, str]) -> Response:
        """List products (inactive ones and the is_active filter: staff only)."""
        return reads.list_products(
            args=args,
            fields=args.pop("sparse_fields", None),
            viewer=optional_principal(),
            if_none_match=headers.get("if_none_match"),
        ).response()

    @can_write
    @blp.arguments(ProductCreateSchema)
    @blp.response(201, ProductSchema, headers=ETAG_HEADER)
    @blp.alt_response(409, response="CONFLICT")
    @blp.doc(operationId="create_product")
    def post(self, data: dict[str, Any]) -> tuple[Product, int, dict[str, str]]:
        """Create a product (409 on a duplicate SKU or slug)."""
        product = service.create(data=data)
        return product, 201, {"Location": _location(product), "ETag": etag_of(product)}


@blp.route("/products/<product_ref:id_or_slug>")
class ProductItem(MethodView):
    @blp.arguments(ProductItemArgsSchema, location="query")
    @blp.arguments(IfNoneMatchSchema, location="headers")
    @blp.response(200, ProductSchema, headers=READ_HEADERS)
    @blp.alt_response(304, description=NOT_MODIFIED, headers=READ_HEADERS, success=True)
    @blp.alt_response(404, response="NOT_FOUND")
    # No ``security``: anyone may call it. A token sent is read (staff see more), and must
    # be valid. (``security: [{}, bearerAuth]`` would say so too, but openapi-python-client
    # then demands an AuthenticatedClient of anonymous callers.)
    @blp.alt_response(401, response="UNAUTHORIZED", description="A token was sent and is not valid")
    @blp.doc(operationId="get_product")
    def get(self, args: dict[str, Any], headers: dict[str, str], id_or_slug: str) -> Response:
        """One product, by id or slug, with its ETag."""
        return reads.get_product(
            ref=id_or_slug,
            fields=args.get("sparse_fields"),
            viewer=optional_principal(),
            if_none_match=headers.get("if_none_match"),
        ).response()

    @can_write
    @blp.arguments(IfMatchSchema, location="headers")
    @blp.arguments(ProductCreateSchema)
    @blp.response(200, ProductSchema, headers=ETAG_HEADER)
    @blp.alt_response(412, response="PRECONDITION_FAILED")
    @blp.alt_response(409, response="CONFLICT")
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
    @blp.alt_response(409, response="CONFLICT")
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
    @blp.arguments(IfNoneMatchSchema, location="headers")
    @blp.response(200, CategorySchema(many=True), headers=CATEGORY_HEADERS)
    @blp.alt_response(304, description=NOT_MODIFIED, headers={**CATEGORY_HEADERS, **_LINK}, success=True)
    @blp.doc(operationId="list_categories")
    def get(self, args: dict[str, Any], headers: dict[str, str]) -> Response:
        """List categories."""
        return reads.list_categories(args=args, if_none_match=headers.get("if_none_match")).response()

    @can_write
    @blp.arguments(CategoryCreateSchema)
    @blp.response(201, CategorySchema)
    @blp.alt_response(409, response="CONFLICT")
    @blp.doc(operationId="create_category")
    def post(self, data: dict[str, Any]) -> tuple[Category, int, dict[str, str]]:
        """Create a category (409 on a duplicate slug)."""
        category = category_service.create(data=data)
        return category, 201, {"Location": f"{blp.url_prefix}/categories/{category.id}"}


@blp.route("/categories/<id_or_slug>")
class CategoryItem(MethodView):
    @blp.arguments(IfNoneMatchSchema, location="headers")
    @blp.response(200, CategorySchema, headers=CATEGORY_HEADERS)
    @blp.alt_response(304, description=NOT_MODIFIED, headers=CATEGORY_HEADERS, success=True)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(operationId="get_category")
    def get(self, headers: dict[str, str], id_or_slug: str) -> Response:
        """One category, by id or slug."""
        return reads.get_category(ref=id_or_slug, if_none_match=headers.get("if_none_match")).response()


transfer_routes.register(blp)
