"""Bench data, written in this process through the app (same secrets as the servers)."""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from functools import cache

from bench import harness

PRODUCTS = int(os.environ.get("BENCH_PRODUCTS", "10000"))
CUSTOMERS = 100
ORDER_PRODUCTS = 200  # products orders are spread over, restocked generously before each run
STAFF_EMAIL = "bench-staff@example.com"


@dataclass(frozen=True)
class Catalog:
    product_ids: list[str]
    order_product_ids: list[str]
    customer_tokens: list[str]


@cache
def catalog(ctx: harness.Context) -> Catalog:
    """The demo catalog (``BENCH_PRODUCTS``, 10,000), customers with fresh access tokens,
    the order products restocked; then fresh statistics (VACUUM ANALYZE)."""
    import sqlalchemy as sa

    from app import create_app
    from app.auth.sessions import open_session
    from app.db import db, utcnow
    from app.orders.models import Order
    from app.products.models import Product
    from app.products.seed import seed_catalog
    from app.users import service as users_service
    from config import ProductionConfig

    ctx.prepare_database()
    app = create_app(ProductionConfig(harness.app_environment()))
    with app.app_context():
        started = time.perf_counter()
        result = seed_catalog(products=PRODUCTS)
        print(
            f"seed: {result.products_created} products created, {result.products_existing} already there "
            f"({time.perf_counter() - started:.1f} s)"
        )
        live = sa.select(Product.id).where(Product.is_active.is_(True), Product.deleted_at.is_(None))
        product_ids = [str(i) for i in db.session.scalars(live.order_by(Product.sku).limit(1000))]
        order_ids = [str(i) for i in db.session.scalars(live.order_by(Product.sku.desc()).limit(ORDER_PRODUCTS))]
        db.session.execute(sa.update(Product).where(Product.id.in_(order_ids)).values(stock=1_000_000))
        tokens = []
        customer_ids = []
        for n in range(CUSTOMERS):
            email = f"bench-customer-{n}@example.com"
            user = users_service.find_by_email(email) or users_service.create(
                email=email, password=secrets.token_urlsafe(16) + "-Aa1", full_name=f"Bench {n}", verified=True
            )
            user.email_verified_at = user.email_verified_at or utcnow()  # only verified addresses order
            customer_ids.append(user.id)
            tokens.append(open_session(user, user_agent="bench", ip=harness.HOST).access_token)
        # Each run starts where a fresh database would: the customers' orders of earlier
        # runs go (their lines and events with them), so runs are alike and no customer
        # piles up thousands of unpaid orders for placement to look through.
        db.session.execute(sa.delete(Order).where(Order.user_id.in_(customer_ids)))
        db.session.commit()
        db.engine.dispose()
    # What autovacuum would do after a bulk load and the deletes above (it may be off on the
    # bench's server: this machine's is): fresh statistics, GIN pending lists merged, the
    # deleted orders' rows and index entries gone before placement measures.
    harness.psql("VACUUM ANALYZE products, product_categories, categories, orders, order_items, order_events")
    return Catalog(product_ids, order_ids, tokens)


@cache
def staff_token(ctx: harness.Context) -> str:
    """A fresh access token of the bench's staff account (``products:import``, ``uploads:write``)."""
    from app import create_app
    from app.auth.sessions import open_session
    from app.db import db
    from app.permissions import Role
    from app.users import service as users_service
    from config import ProductionConfig

    ctx.prepare_database()
    app = create_app(ProductionConfig(harness.app_environment()))
    with app.app_context():
        user = users_service.find_by_email(STAFF_EMAIL) or users_service.create(
            email=STAFF_EMAIL, password=secrets.token_urlsafe(16) + "-Aa1", full_name="Bench Staff", role=Role.STAFF
        )
        token = open_session(user, user_agent="bench", ip=harness.HOST).access_token
        db.session.commit()
        db.engine.dispose()
    return token
