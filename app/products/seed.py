"""Demo data for a first look: a few categories and N products, created idempotently.

Demo products are recognised by their SKU (``DEMO-00001`` …), so running the seed twice,
or with a larger N, only adds what is missing (a demo product deleted since stays deleted).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from app.db import db
from app.products.models import Category, Product

DEMO_CATEGORIES = (
    ("apparel", "Apparel", "Shirts, hoodies and socks."),
    ("books", "Books", "Paper and ink."),
    ("electronics", "Electronics", "Things with batteries."),
    ("home", "Home", "For the kitchen and the living room."),
    ("outdoors", "Outdoors", "Tents, boots and bottles."),
    ("toys", "Toys", "For every age."),
)
_ADJECTIVES = ("Sturdy", "Handy", "Classic", "Compact", "Deluxe", "Everyday", "Bright", "Quiet", "Rugged", "Cosy")
_NOUNS = ("Lamp", "Mug", "Backpack", "Notebook", "Kettle", "Hoodie", "Speaker", "Puzzle", "Bottle", "Blanket")
SKU_PREFIX = "DEMO-"
BATCH = 1000


@dataclass(frozen=True)
class SeedResult:
    categories_created: int
    products_created: int
    products_existing: int


def demo_sku(n: int) -> str:
    return f"{SKU_PREFIX}{n:05d}"


def seed_catalog(*, products: int) -> SeedResult:
    """Create the demo categories and demo products 1…``products`` that are missing; commit."""
    if products < 0:
        raise ValueError("products must not be negative")
    categories, categories_created = _ensure_categories()
    existing = set(db.session.scalars(sa.select(Product.sku).where(Product.sku.startswith(SKU_PREFIX))))
    taken_slugs = set(db.session.scalars(sa.select(Product.slug).where(Product.deleted_at.is_(None))))
    created = skipped = 0
    for n in range(1, products + 1):
        if demo_sku(n) in existing:
            skipped += 1
            continue
        product = _demo_product(n, categories)
        if product.slug in taken_slugs:
            product.slug = f"{product.slug}-demo"
        taken_slugs.add(product.slug)
        db.session.add(product)
        created += 1
        if created % BATCH == 0:
            db.session.commit()
    db.session.commit()
    return SeedResult(categories_created=categories_created, products_created=created, products_existing=skipped)


def _ensure_categories() -> tuple[list[Category], int]:
    found = {c.slug: c for c in db.session.scalars(sa.select(Category))}
    created = 0
    for slug, name, description in DEMO_CATEGORIES:
        if slug not in found:
            found[slug] = Category(slug=slug, name=name, description=description)
            db.session.add(found[slug])
            created += 1
    db.session.flush()
    return [found[slug] for slug, _, _ in DEMO_CATEGORIES], created


def _demo_product(n: int, categories: list[Category]) -> Product:
    """Deterministic, varied data: prices 0.99…200.98, some on sale, some sold out or inactive."""
    name = f"{_ADJECTIVES[n % len(_ADJECTIVES)]} {_NOUNS[(n // len(_ADJECTIVES)) % len(_NOUNS)]} {n}"
    price = (Decimal((n * 7919) % 20000) + Decimal(99)) / 100
    compare_at = (price * Decimal("1.25")).quantize(Decimal("0.01")) if n % 5 == 0 else None
    in_categories = [categories[n % len(categories)]]
    if n % 3 == 0:
        in_categories.append(categories[(n + 1) % len(categories)])
    return Product(
        sku=demo_sku(n),
        slug=name.lower().replace(" ", "-"),
        name=name,
        description=f"{name}: a demo product for trying out the Storefront API.",
        price=price,
        compare_at_price=compare_at,
        stock=0 if n % 10 == 0 else (n * 37) % 120 + 1,
        is_active=n % 25 != 0,
        categories=in_categories,
    )
