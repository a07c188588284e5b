"""Writing one batch of validated import rows: each creates, updates or leaves a product.

``write_batch`` runs inside the caller's transaction and never ends it (the runner commits
a batch with its checkpoint). Per row, exactly one of:

- *created*: no live product has the SKU (``create`` or ``upsert``). Absent columns take
  the defaults of ``POST /products``; the slug is generated from the name as that endpoint
  does (``base``, ``base-2``… the first free), also among the batch's new rows.
- *updated* (``upsert``): the live product differs in a column the row gives, or in its
  category set when the row gives categories. Only those columns are set (an absent one
  never changes or deletes anything), ``version`` is bumped, ``updated_at`` moves.
- *unchanged* (``upsert``): nothing the row gives differs. Nothing is written.
- an error: the SKU exists in ``create`` mode, or the merged ``compare_at_price`` would be
  below the merged price.

A dry run gives the same counts and errors, and writes and locks no catalog row.

PostgreSQL: the batch is ``COPY``-ed into a session-private staging table and compared with
the catalog in one read-only query (each row finds its product through the SKU index). The
products to update are then locked in id order and updated by one ``UPDATE … FROM`` staging,
if they are still as compared (same ``version``); unchanged rows are neither written nor
locked. New rows go in through one ``INSERT … SELECT … ON CONFLICT DO NOTHING``. A row
overtaken by a concurrent request (its product changed, or its SKU or new slug taken
meanwhile) is compared again: a SKU created meanwhile becomes an update in ``upsert`` and
an error in ``create``. Elsewhere (SQLite, one writer at a time) a plainer ORM path does the
same without the retries.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

import psycopg
import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from app.db import db, new_id, on_postgresql, utcnow
from app.products.models import DEFAULT_LOW_STOCK_THRESHOLD, Category, Product
from app.products.slugs import SLUG_ATTEMPTS, slugify
from app.products.transfer.rows import ROW_FIELD, BatchOutcome, Mode, RowError, ValidRow

# The product columns a row may give (``ValidRow.fields`` holds a subset).
PRODUCT_COLUMNS = (
    "name",
    "description",
    "price",
    "compare_at_price",
    "stock",
    "low_stock_threshold",
    "is_active",
    "image_upload_id",
)
REQUIRED_ON_CREATE = ("name", "price")
# What a new product takes for a column its row does not give (``ProductCreateSchema``'s
# defaults, except ``stock``, which that schema requires and an import does not).
DEFAULTS: Mapping[str, Any] = {
    "description": "",
    "compare_at_price": None,
    "stock": 0,
    "low_stock_threshold": DEFAULT_LOW_STOCK_THRESHOLD,
    "is_active": True,
    "image_upload_id": None,
}
SKU_EXISTS = "A product with this SKU already exists."
BELOW_PRICE = "Must be greater than or equal to price."
REQUIRED = "Missing data for required field."
CHANGED_MEANWHILE = "Concurrent changes to this product, its SKU or its slug kept overtaking it; import the row again."
# A row whose product changed, or whose new SKU or slug was taken, by a concurrent request
# after it was classified is classified again, at most this often in all.
WRITE_ATTEMPTS = SLUG_ATTEMPTS
SLUG_FALLBACK = "product"  # as POST /products
_IN_CHUNK = 900  # bound values per IN (…) on SQLite, whose oldest versions allow 999


def write_batch(rows: Sequence[ValidRow], *, mode: Mode, dry_run: bool) -> BatchOutcome:
    """Write (or, in a dry run, classify) one batch of rows with distinct SKUs.

    Runs in the caller's transaction on ``db.session``; never commits or rolls it back.
    ``changed_ids``: the products created or updated (none in a dry run). The caller tells
    the catalog cache (``catalog_changed``).
    """
    if not rows:
        return BatchOutcome()
    if on_postgresql():
        outcome = _write_postgresql(rows, mode=mode, dry_run=dry_run)
    else:
        outcome = _write_portable(rows, mode=mode, dry_run=dry_run)
    outcome.errors.sort(key=lambda error: error.row)
    return outcome


# --- deciding what each row does (both backends) -------------------------------------


@dataclass(frozen=True)
class _Match:
    """The live product that has a row's SKU, compared with the row."""

    product_id: uuid.UUID
    version: int  # as compared
    fields_differ: bool  # some column the row gives differs
    categories_differ: bool  # the row gives categories and the set differs
    below_price: bool  # the merged compare_at_price would be below the merged price

    @property
    def differs(self) -> bool:
        return self.fields_differ or self.categories_differ


@dataclass
class _Plan:
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    updates: list[tuple[ValidRow, _Match]] = field(default_factory=list)
    creates: list[ValidRow] = field(default_factory=list)


def _plan(rows: Iterable[ValidRow], matches: Mapping[str, _Match], mode: Mode) -> _Plan:
    plan = _Plan()
    for row in rows:
        match = matches.get(row.sku)
        error = _row_error(row, match, mode)
        if error is not None:
            plan.errors.append(error)
        elif match is None:
            plan.creates.append(row)
        elif match.differs:
            plan.updates.append((row, match))
        else:
            plan.unchanged += 1
    return plan


def _row_error(row: ValidRow, match: _Match | None, mode: Mode) -> RowError | None:
    def error(column: str, message: str) -> RowError:
        return RowError(row=row.number, sku=row.sku, field=column, message=message)

    if match is not None:
        if mode == Mode.CREATE:
            return error("sku", SKU_EXISTS)
        return error("compare_at_price", BELOW_PRICE) if match.below_price else None
    # Validation requires these and checks the pair; a new row must not fail in SQL.
    for column in REQUIRED_ON_CREATE:
        if row.fields.get(column) is None:
            return error(column, REQUIRED)
    compare_at_price: Decimal | None = row.fields.get("compare_at_price")
    if compare_at_price is not None and compare_at_price < row.fields["price"]:
        return error("compare_at_price", BELOW_PRICE)
    return None


def _category_ids(row: ValidRow) -> list[uuid.UUID] | None:
    """The row's categories without repeats, in a stable order; None: the column is absent."""
    return None if row.category_ids is None else sorted(set(row.category_ids))


def _new_slugs(names: Sequence[str]) -> list[str]:
    """The slugs ``POST /products`` would give products named ``names``, created in order.

    Each is ``slugify(name)`` or, when taken by a live product or an earlier name here,
    ``base-2``, ``base-3``… the first free one. Live slugs are looked up by equality (the
    unique index), a window of suffixes at a time, so a batch costs a query or two.
    """
    bases = [slugify(name, fallback=SLUG_FALLBACK) for name in names]
    per_base = Counter(bases)
    checked: set[str] = set()
    taken: set[str] = set()
    reach = dict.fromkeys(per_base, 1)  # base-2 … base-<reach> are checked
    wanted = set(per_base)
    while True:
        taken |= _live_slugs_among(wanted - checked)
        checked |= wanted
        slugs, short = _assign_slugs(bases, taken, checked)
        if not short:
            return slugs
        wanted = set()
        for base in short:
            start, reach[base] = reach[base] + 1, 2 * reach[base] + per_base[base]
            wanted.update(f"{base}-{n}" for n in range(start, reach[base] + 1))


def _assign_slugs(bases: Sequence[str], taken: set[str], checked: set[str]) -> tuple[list[str], set[str]]:
    """Each base's first slug neither ``taken`` nor given to an earlier row; the bases whose
    answer rests on a slug not yet ``checked`` (the slugs are then to be assigned again)."""
    given: set[str] = set()
    slugs: list[str] = []
    short: set[str] = set()
    for base in bases:
        slug, n = base, 1
        while slug in taken or slug in given:
            n += 1
            slug = f"{base}-{n}"
        if slug not in checked:
            short.add(base)
        given.add(slug)
        slugs.append(slug)
    return slugs, short


def _live_slugs_among(candidates: set[str]) -> set[str]:
    if not candidates:
        return set()
    if on_postgresql():
        return set(db.session.scalars(_LIVE_SLUGS, {"slugs": sorted(candidates)}))
    found: set[str] = set()
    for chunk in _chunks(sorted(candidates)):
        stmt = sa.select(Product.slug).where(Product.deleted_at.is_(None), Product.slug.in_(chunk))
        found.update(db.session.scalars(stmt))
    return found


def _chunks(values: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# --- PostgreSQL ------------------------------------------------------------------------

STAGING = "product_import_staging"
# Bit of each column (and of ``categories``) in a staged row's ``given`` mask.
_BITS = {column: 1 << i for i, column in enumerate((*PRODUCT_COLUMNS, "categories"))}


def _given(column: str) -> str:
    return f"(s.given & {_BITS[column]}) <> 0"


def _row_or_product(column: str) -> str:
    """The value after the row is applied: the row's when it gives the column."""
    return f"CASE WHEN {_given(column)} THEN s.{column} ELSE p.{column} END"


def _row_or_default(column: str) -> str:
    return f"CASE WHEN {_given(column)} THEN s.{column} ELSE :default_{column} END"


# The statements below are built from this module's constants only (hence ``noqa: S608``);
# every value goes in as a bound parameter or through COPY.

# Session-private, emptied by every commit; the column types are the catalog's, so values
# are rounded as they will be stored before they are compared.
_CREATE_STAGING = f"""
CREATE TEMP TABLE IF NOT EXISTS {STAGING} (
    sku text NOT NULL,
    given integer NOT NULL,
    name text,
    description text,
    price numeric(12, 2),
    compare_at_price numeric(12, 2),
    stock integer,
    low_stock_threshold integer,
    is_active boolean,
    image_upload_id uuid,
    category_ids uuid[]
) ON COMMIT DELETE ROWS
"""
_EMPTY_STAGING = f"DELETE FROM {STAGING}"  # noqa: S608
_STAGED_COLUMNS = ("sku", "given", *PRODUCT_COLUMNS, "category_ids")
_COPY = f"COPY {STAGING} ({', '.join(_STAGED_COLUMNS)}) FROM STDIN"
# Each staged row looks its product up through the unique index (the LATERAL … LIMIT 1
# keeps the planner from scanning the whole catalog instead): the cost follows the batch,
# not the catalog. Reads only, so that a dry run locks nothing.
_CLASSIFY = sa.text(f"""
SELECT s.sku, p.id, p.version,
       {" OR ".join(f"({_given(c)} AND p.{c} IS DISTINCT FROM s.{c})" for c in PRODUCT_COLUMNS)} AS fields_differ,
       CASE WHEN {_given("categories")} THEN
           ARRAY(SELECT pc.category_id FROM product_categories AS pc
                 WHERE pc.product_id = p.id ORDER BY pc.category_id) IS DISTINCT FROM s.category_ids
       ELSE false END AS categories_differ,
       COALESCE(({_row_or_product("compare_at_price")}) < ({_row_or_product("price")}), false) AS below_price
FROM {STAGING} AS s
CROSS JOIN LATERAL (
    SELECT id, version, {", ".join(PRODUCT_COLUMNS)} FROM products
    WHERE products.sku = s.sku AND products.deleted_at IS NULL LIMIT 1
) AS p
""")  # noqa: S608
# The products to update, locked in id order (as orders take theirs, so that the two never
# deadlock), as they are now: one that moved since it was classified is classified again.
_LOCK = sa.text("""
SELECT p.id, p.version, p.deleted_at IS NULL AS live
FROM unnest(CAST(:ids AS uuid[])) AS u(id)
CROSS JOIN LATERAL (SELECT id, version, deleted_at FROM products WHERE products.id = u.id FOR NO KEY UPDATE) AS p
""")
_UPDATE = sa.text(f"""
UPDATE products AS p SET
    {", ".join(f"{c} = {_row_or_product(c)}" for c in PRODUCT_COLUMNS)},
    version = p.version + 1,
    updated_at = :now
FROM {STAGING} AS s
WHERE p.id = ANY(CAST(:ids AS uuid[])) AND s.sku = p.sku
""")  # noqa: S608
# Without a conflict target: a SKU or a slug taken by a concurrent request meanwhile skips
# the row (it is classified again), never fails the batch. In SKU order, so that two imports
# creating the same SKUs wait for each other rather than deadlock.
_INSERT = sa.text(f"""
INSERT INTO products (id, sku, slug, {", ".join(PRODUCT_COLUMNS)}, version, created_at, updated_at)
SELECT n.id, s.sku, n.slug, {", ".join(_row_or_default(c) if c in DEFAULTS else f"s.{c}" for c in PRODUCT_COLUMNS)},
       1, :now, :now
FROM unnest(CAST(:ids AS uuid[]), CAST(:skus AS text[]), CAST(:slugs AS text[])) AS n(id, sku, slug)
JOIN {STAGING} AS s ON s.sku = n.sku
ORDER BY s.sku
ON CONFLICT DO NOTHING
RETURNING id, sku
""")  # noqa: S608
_UNLINK_CATEGORIES = sa.text("DELETE FROM product_categories WHERE product_id = ANY(CAST(:ids AS uuid[]))")
_LINK_CATEGORIES = sa.text(f"""
INSERT INTO product_categories (product_id, category_id)
SELECT n.id, c.id
FROM unnest(CAST(:ids AS uuid[]), CAST(:skus AS text[])) AS n(id, sku)
JOIN {STAGING} AS s ON s.sku = n.sku
CROSS JOIN LATERAL unnest(s.category_ids) AS c(id)
""")  # noqa: S608
_KEEP_STAGED = sa.text(f"DELETE FROM {STAGING} WHERE NOT (sku = ANY(CAST(:skus AS text[])))")  # noqa: S608
_LIVE_SLUGS = sa.text("""
SELECT p.slug FROM unnest(CAST(:slugs AS text[])) AS c(slug)
CROSS JOIN LATERAL (SELECT slug FROM products WHERE products.slug = c.slug AND products.deleted_at IS NULL LIMIT 1) AS p
""")


def _write_postgresql(rows: Sequence[ValidRow], *, mode: Mode, dry_run: bool) -> BatchOutcome:
    connection = db.session.connection()
    # A batch's estimated costs reach the JIT thresholds, and compiling would take longer
    # than these statements run; off until the batch is written (a rollback restores it too).
    jit = connection.execute(sa.text("SHOW jit")).scalar_one()
    connection.execute(sa.text("SET LOCAL jit = off"))
    _stage(connection, rows)
    outcome = _write_staged(connection, rows, mode=mode, dry_run=dry_run)
    connection.execute(sa.text("SELECT set_config('jit', :jit, true)"), {"jit": jit})
    return outcome


def _write_staged(connection: sa.Connection, rows: Sequence[ValidRow], *, mode: Mode, dry_run: bool) -> BatchOutcome:
    """Classify the staged rows, then write them; rows overtaken by concurrent changes, again."""
    outcome = BatchOutcome()
    pending: Sequence[ValidRow] = rows
    for _attempt in range(WRITE_ATTEMPTS):
        matches = {sku: _Match(*found) for sku, *found in connection.execute(_CLASSIFY).tuples()}
        plan = _plan(pending, matches, mode)
        outcome.unchanged += plan.unchanged
        outcome.errors += plan.errors
        if dry_run:
            outcome.updated, outcome.created = len(plan.updates), len(plan.creates)
            return outcome
        now = utcnow()
        moved = _update_postgresql(connection, plan.updates, now, outcome)
        created = _insert_postgresql(connection, plan.creates, now)
        outcome.created += len(created)
        outcome.changed_ids += created.values()
        _link_categories(connection, [(created[row.sku], row) for row in plan.creates if row.sku in created])
        pending = [*moved, *(row for row in plan.creates if row.sku not in created)]
        if not pending:
            return outcome
        connection.execute(_KEEP_STAGED, {"skus": [row.sku for row in pending]})
    outcome.errors += [RowError(row.number, row.sku, ROW_FIELD, CHANGED_MEANWHILE) for row in pending]
    return outcome


def _stage(connection: sa.Connection, rows: Sequence[ValidRow]) -> None:
    """Empty the staging table (several batches may share a transaction) and copy ``rows`` in."""
    driver = cast(psycopg.Connection[Any], connection.connection.driver_connection)
    with driver.cursor() as cursor:
        cursor.execute(_CREATE_STAGING)
        cursor.execute(_EMPTY_STAGING)
        with cursor.copy(_COPY) as copy:
            for row in rows:
                given = sum(_BITS[column] for column in row.fields) | (
                    _BITS["categories"] if row.category_ids is not None else 0
                )
                copy.write_row(
                    (row.sku, given, *(row.fields.get(column) for column in PRODUCT_COLUMNS), _category_ids(row))
                )


def _update_postgresql(
    connection: sa.Connection, updates: Sequence[tuple[ValidRow, _Match]], now: datetime, outcome: BatchOutcome
) -> list[ValidRow]:
    """Lock the products, update those still as classified; the rows of the others."""
    if not updates:
        return []
    ids = sorted(match.product_id for _, match in updates)
    now_live = {found.id: found.version for found in connection.execute(_LOCK, {"ids": ids}) if found.live}
    current = [(row, match) for row, match in updates if now_live.get(match.product_id) == match.version]
    if current:
        connection.execute(_UPDATE, {"ids": [match.product_id for _, match in current], "now": now})
        outcome.updated += len(current)
        outcome.changed_ids += [match.product_id for _, match in current]
        recategorised = [(match.product_id, row) for row, match in current if match.categories_differ]
        if recategorised:
            connection.execute(_UNLINK_CATEGORIES, {"ids": [product_id for product_id, _ in recategorised]})
            _link_categories(connection, recategorised)
    return [row for row, match in updates if now_live.get(match.product_id) != match.version]


def _insert_postgresql(connection: sa.Connection, creates: Sequence[ValidRow], now: datetime) -> dict[str, uuid.UUID]:
    """Insert the new rows; the SKU → id of those inserted (the others lost a race)."""
    if not creates:
        return {}
    values: dict[str, Any] = {
        "ids": [new_id() for _ in creates],
        "skus": [row.sku for row in creates],
        "slugs": _new_slugs([row.fields["name"] for row in creates]),
        "now": now,
        **{f"default_{column}": value for column, value in DEFAULTS.items()},
    }
    return {found.sku: found.id for found in connection.execute(_INSERT, values)}


def _link_categories(connection: sa.Connection, products: Sequence[tuple[uuid.UUID, ValidRow]]) -> None:
    """Link each product to its row's (staged) categories; rows without categories add none."""
    given = [(product_id, row.sku) for product_id, row in products if row.category_ids]
    if given:
        ids, skus = zip(*given, strict=True)
        connection.execute(_LINK_CATEGORIES, {"ids": list(ids), "skus": list(skus)})


# --- elsewhere (SQLite): the ORM --------------------------------------------------------


def _write_portable(rows: Sequence[ValidRow], *, mode: Mode, dry_run: bool) -> BatchOutcome:
    products: dict[str, Product] = {}
    for chunk in _chunks([row.sku for row in rows]):
        stmt = (
            sa.select(Product)
            .options(selectinload(Product.categories))
            .where(Product.sku.in_(chunk), Product.deleted_at.is_(None))
        )
        products.update((product.sku, product) for product in db.session.scalars(stmt))
    matches = {row.sku: _compare(row, products[row.sku]) for row in rows if row.sku in products}
    plan = _plan(rows, matches, mode)
    outcome = BatchOutcome(unchanged=plan.unchanged, errors=plan.errors)
    if dry_run:
        outcome.updated, outcome.created = len(plan.updates), len(plan.creates)
        return outcome
    slugs = _new_slugs([row.fields["name"] for row in plan.creates])
    categories = _categories([*plan.creates, *(row for row, _ in plan.updates)])
    now = utcnow()
    for row, match in plan.updates:
        product = products[row.sku]
        for column, value in row.fields.items():
            setattr(product, column, value)
        if match.categories_differ:
            product.categories = [categories[i] for i in _category_ids(row) or ()]
        # Set even when only the categories changed, so that the UPDATE (and its version
        # bump) runs, as PATCH /products does.
        product.updated_at = now
        outcome.changed_ids.append(product.id)
    for row, slug in zip(plan.creates, slugs, strict=True):
        product = Product(
            id=new_id(),
            sku=row.sku,
            slug=slug,
            **{**DEFAULTS, **row.fields},
            categories=[categories[i] for i in _category_ids(row) or ()],
            created_at=now,
            updated_at=now,
        )
        db.session.add(product)
        outcome.changed_ids.append(product.id)
    db.session.flush()
    outcome.updated, outcome.created = len(plan.updates), len(plan.creates)
    return outcome


def _compare(row: ValidRow, product: Product) -> _Match:
    def merged(column: str) -> Any:
        return row.fields[column] if column in row.fields else getattr(product, column)

    category_ids = _category_ids(row)
    compare_at_price, price = merged("compare_at_price"), merged("price")
    return _Match(
        product_id=product.id,
        version=product.version,
        fields_differ=any(getattr(product, column) != value for column, value in row.fields.items()),
        categories_differ=category_ids is not None and set(category_ids) != {c.id for c in product.categories},
        below_price=compare_at_price is not None and compare_at_price < price,
    )


def _categories(rows: Iterable[ValidRow]) -> dict[uuid.UUID, Category]:
    wanted = sorted({category_id for row in rows for category_id in row.category_ids or ()})
    found: dict[uuid.UUID, Category] = {}
    for chunk in _chunks(wanted):
        found.update((c.id, c) for c in db.session.scalars(sa.select(Category).where(Category.id.in_(chunk))))
    return found
