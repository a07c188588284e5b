"""A storefront scenario written against the client generated from the OpenAPI document.

``tests/contract/test_generated_client.py`` generates ``storefront_client`` from the served
document, type-checks this module with ``mypy --strict`` beside it, then runs ``run``.
Required fields are used as they are typed — ``Decimal(order.total)``,
``meta.total_pages + 1`` — with no ``Unset`` narrowed away; only the unions the API
really has (a success or an error body, page or cursor meta, a full or sparse product)
are told apart.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from storefront_client import AuthenticatedClient, Client
from storefront_client.api.auth import login, logout, refresh_tokens, register, verify_email
from storefront_client.api.orders import cancel_order, list_order_events, place_order
from storefront_client.api.products import create_category, create_product, list_categories, list_products
from storefront_client.models import (
    Cancel,
    CategoryCreate,
    CategoryEnvelope,
    CategoryPage,
    CursorMeta,
    Login,
    OrderCreate,
    OrderEnvelope,
    OrderEventItems,
    OrderLineIn,
    PageMeta,
    Product,
    ProductCreate,
    ProductEnvelope,
    ProductOrFieldsList,
    Register,
    ShippingAddressIn,
    ShippingAddressInCountry,
    TokenPairEnvelope,
    UserEnvelope,
    VerifyEmail,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome:
    user_id: uuid.UUID
    order_number: str
    order_total: Decimal
    replayed_same_order: bool
    pages_after_last: int
    next_cursor: str | None
    event_count: int
    final_status: str
    refreshed: bool
    logged_out: bool


def expect(parsed: object, kind: type[T]) -> T:
    """The success body, or a failure naming what came back instead."""
    if not isinstance(parsed, kind):
        raise AssertionError(f"expected {kind.__name__}, got {parsed!r}")
    return parsed


def run(
    *,
    base_url: str,
    httpx_args: dict[str, Any],
    staff_token: str,
    email: str,
    password: str,
    mailed_token: Callable[[str], str],
) -> Outcome:
    """``mailed_token``: the verification token mailed to an address (a client's user
    pastes it, or opens the link)."""
    anonymous = Client(base_url=base_url, httpx_args=httpx_args)
    staff = AuthenticatedClient(base_url=base_url, token=staff_token, httpx_args=httpx_args)

    user = expect(
        register.sync(client=anonymous, body=Register(email=email, password=password, full_name="Typed Client")),
        UserEnvelope,
    ).data
    # Only a verified address may place orders.
    verified = verify_email.sync_detailed(client=anonymous, body=VerifyEmail(token=mailed_token(email)))
    assert verified.status_code == 204, verified.content
    tokens = expect(login.sync(client=anonymous, body=Login(email=email, password=password)), TokenPairEnvelope).data
    customer = AuthenticatedClient(base_url=base_url, token=tokens.access_token, httpx_args=httpx_args)

    category = expect(create_category.sync(client=staff, body=CategoryCreate(name="Typed Teas")), CategoryEnvelope)
    categories = expect(list_categories.sync(client=anonymous), CategoryPage)
    assert categories.meta.total == 1 and categories.data[0].slug == category.data.slug
    body = ProductCreate(sku="typed-1", name="Typed Tea", price="4.50", stock=10, category_ids=[category.data.id])
    product = expect(create_product.sync(client=staff, body=body), ProductEnvelope).data
    assert product.sku == "TYPED-1" and Decimal(product.price) == Decimal("4.50")
    assert product.compare_at_price is None and product.categories[0].id == category.data.id

    by_page = expect(list_products.sync(client=anonymous, per_page=1), ProductOrFieldsList)
    page_meta = by_page.meta
    assert isinstance(page_meta, PageMeta)
    pages_after_last = page_meta.total_pages + 1
    by_cursor = expect(list_products.sync(client=anonymous, limit=1), ProductOrFieldsList)
    cursor_meta = by_cursor.meta
    assert isinstance(cursor_meta, CursorMeta) and cursor_meta.has_more is False
    listed = by_cursor.data[0]
    assert isinstance(listed, Product) and listed.stock == 10

    order_body = OrderCreate(
        items=[OrderLineIn(product_id=product.id, quantity=2)],
        shipping_address=ShippingAddressIn(
            name="Ann Lee",
            line1="1 Main St",
            city="Springfield",
            postal_code="12345",
            country=ShippingAddressInCountry.US,
        ),
    )
    key = str(uuid.uuid4())
    first = place_order.sync_detailed(client=customer, body=order_body, idempotency_key=key)
    again = place_order.sync_detailed(client=customer, body=order_body, idempotency_key=key)
    assert first.status_code == 201 and again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    order = expect(first.parsed, OrderEnvelope).data
    replay = expect(again.parsed, OrderEnvelope).data
    total = Decimal(order.total)
    assert total == Decimal(order.items[0].line_total) == Decimal("9.00")

    cancelled = expect(
        cancel_order.sync(order.id, client=customer, body=Cancel(reason="changed my mind")), OrderEnvelope
    ).data
    events = expect(list_order_events.sync(order.id, client=customer), OrderEventItems)
    assert [e.to_status for e in events.data] == ["pending", "cancelled"]

    refresher = AuthenticatedClient(base_url=base_url, token=tokens.refresh_token, httpx_args=httpx_args)
    rotated = expect(refresh_tokens.sync(client=refresher), TokenPairEnvelope).data
    after = AuthenticatedClient(base_url=base_url, token=rotated.access_token, httpx_args=httpx_args)
    logged_out = logout.sync_detailed(client=after).status_code == 204

    return Outcome(
        user_id=user.id,
        order_number=order.number,
        order_total=total,
        replayed_same_order=replay.id == order.id,
        pages_after_last=pages_after_last,
        next_cursor=cursor_meta.next_cursor,
        event_count=events.meta.total,
        final_status=cancelled.status,
        refreshed=rotated.refresh_token != tokens.refresh_token,
        logged_out=logged_out,
    )
