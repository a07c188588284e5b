"""Reading the catalog: product lists and products, categories — from the cache when it can.

Each use case returns an ``Answer``: the body's bytes and headers, ready to send (a
cached answer is sent as stored, with the current stock laid in; nothing is serialized
again). What the public sees (anonymous callers and customers alike) is cached and may be
held by shared caches (``Cache-Control: public``, revalidated through the ``ETag`` on
every use, so never stale); what staff see (inactive products too) is neither.
See ``app.products.cache`` for why a cached answer is never stale.

A public answer is cached under its request's path and query arguments (Werkzeug's parse
of the query string, in a canonical order: a keyed hash of them). An entry therefore
exists only for a request that was validated and answered, and it answers exactly that
request again: ``early_answer`` serves an anonymous read from it before the arguments
are validated, or anything else is done for it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from operator import itemgetter
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import Response, current_app, g, request
from werkzeug.datastructures import MultiDict
from werkzeug.http import parse_etags

from app.db import db, read_outside_transaction
from app.errors import NotFound
from app.pagination import Page, SortKey, Totals, paginate_rows
from app.permissions import Principal
from app.products import cache, queries, rendering
from app.products.cache import State, newer
from app.products.permissions import sees_inactive
from app.schema import utc_text
from app.security import sends_credentials

PUBLIC = "public, max-age=0, must-revalidate"
PRIVATE = "private, no-store"
CATEGORY_SORTABLE = {"name": queries.CATEGORY.name, "created_at": queries.CATEGORY.created_at}
CATEGORY_DEFAULT_SORT = (SortKey("name"),)


@dataclass
class Answer:
    """A response ready to send: ``body`` None is a 304."""

    body: bytes | None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> int:
        return 200 if self.body is not None else 304

    def response(self) -> Response:
        body = self.body
        provider = current_app.json
        if body is not None and not _compact(provider):
            # Development (debug) answers are indented, as Flask writes its own.
            body = (provider.dumps(json.loads(body), indent=2) + "\n").encode()
        return current_app.response_class(body, status=self.status, headers=self.headers, mimetype="application/json")


def _compact(provider: Any) -> bool:
    compact = getattr(provider, "compact", None)
    return not ((compact is None and current_app.debug) or compact is False)


# --- entries: what the cache keeps ------------------------------------------------------------


@dataclass
class Entry:
    """A products answer without its volatile values: a template and, per item, the id,
    the state it was built with, and the low-stock threshold."""

    template: bytes
    volatile: tuple[str, ...]
    ids: list[str]
    states: list[State]
    thresholds: list[int]
    links: dict[str, dict[str, str]] = field(default_factory=dict)

    def dumps(self) -> bytes:
        # First line: the ids (the cache's read script fetches their states with the entry).
        header = {
            "volatile": self.volatile,
            "states": [s.dumps().decode() for s in self.states],
            "thresholds": self.thresholds,
            "links": self.links,
        }
        ids = ",".join(self.ids).encode()
        return ids + b"\n" + json.dumps(header, separators=(",", ":")).encode() + b"\n" + self.template

    @classmethod
    def loads(cls, payload: bytes) -> Entry:
        ids_line, header_line, template = payload.split(b"\n", 2)
        header = json.loads(header_line)
        return cls(
            template=template,
            volatile=tuple(header["volatile"]),
            ids=ids_line.decode().split(",") if ids_line else [],
            states=[State.loads(s.encode()) for s in header["states"]],
            thresholds=header["thresholds"],
            links=header["links"],
        )

    def current_states(self, stored: Sequence[State | None] | None) -> list[State]:
        """The newest known state of each item: its own, or what a sale stored since.
        ``stored``: what Redis holds (None: not cached, the entry's own are current)."""
        if stored is None or not self.ids:
            return self.states
        missing = [i for i, state in zip(self.ids, stored, strict=True) if state is None]
        if missing:  # lost by Redis (eviction, expiry): the database has them
            found = cache.database_states(uuid.UUID(i) for i in missing)
            cache.store_states(found)
            stored = [state or found.get(i) for i, state in zip(self.ids, stored, strict=True)]
        return [newer(own, later) for own, later in zip(self.states, stored, strict=True)]

    def body(self, states: Sequence[State]) -> bytes:
        return rendering.fill(self.template, self.volatile, states, self.thresholds)


def _request_key(kind: str) -> str:
    """The cache key of this request's public answer: a hash of its path and its arguments
    in a canonical form (``canonical_query``), keyed with the app's secret (entries of
    another ``SECRET_KEY``, whose cursors this app refuses, are never read)."""
    query = canonical_query(request.args)
    raw = request.environ.get("PATH_INFO", "").encode("latin-1") + b"?" + query.encode()
    digest = hashlib.blake2b(raw, key=_key_secret(current_app.config["SECRET_KEY"]), digest_size=16)
    return f"{kind}:{digest.hexdigest()}"


def canonical_query(args: MultiDict[str, str]) -> str:
    """The query arguments as the view reads them (Werkzeug's parse of the query string),
    written one way: by name, each name's values in their order. Every spelling of one
    request (``?a=1&b=2``, ``?b=2&a=1&&``, ``?%61=1&b=2``) is one key, so one entry, not
    one per spelling a client makes up; requests the view reads differently never share
    one."""
    return urlencode(sorted(args.items(multi=True), key=itemgetter(0)))


@functools.lru_cache(maxsize=4)
def _key_secret(secret: str) -> bytes:
    return hashlib.blake2b(secret.encode(), digest_size=32, person=b"catalog-keys").digest()


def _key(kind: str, values: Mapping[str, Any]) -> str:
    """A stable cache key for ``values`` (parsed query arguments)."""

    def plain(value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, Decimal | SortKey | uuid.UUID):
            return str(value)
        return value

    canonical = json.dumps({k: plain(v) for k, v in sorted(values.items())}, separators=(",", ":"))
    return f"{kind}:{hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()}"


# --- HTTP caching ------------------------------------------------------------------------------


def _cache_headers(public: bool, etag: str) -> dict[str, str]:
    return {"ETag": etag, "Cache-Control": PUBLIC if public else PRIVATE, "Vary": "Authorization"}


def _matches(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    tags = parse_etags(if_none_match)
    return tags.star_tag or tags.contains_weak(etag.strip('"'))


_URL_PARTS = ("wsgi.url_scheme", "HTTP_HOST", "SERVER_NAME", "SERVER_PORT", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING")


def _link_header(links: str) -> dict[str, str]:
    """``Page.headers()`` for ``links`` (JSON), remembered for the URLs asked for most (it
    is a tenth of a hit's cost)."""
    if links == "{}":
        return {}
    environ = request.environ
    url = (current_app.config.get("PUBLIC_BASE_URL"), *(environ.get(part) for part in _URL_PARTS))
    return _remembered_link_header(url, links)


@functools.lru_cache(maxsize=4096)
def _remembered_link_header(url: tuple[object, ...], links: str) -> dict[str, str]:
    # ``url``: what Page.headers reads (the request after ProxyFix, PUBLIC_BASE_URL), as the key.
    return Page(items=[], meta={}, links=json.loads(links)).headers()


def _list_etag(entry: Entry, states: Sequence[State]) -> str:
    digest = hashlib.blake2b(entry.template, digest_size=16)
    for state in states:
        digest.update(b"%d," % state.version)
    return f'"{digest.hexdigest()}"'


# --- products ------------------------------------------------------------------------------------


def list_products(
    *, args: Mapping[str, Any], fields: Sequence[str] | None, viewer: Principal | None, if_none_match: str | None
) -> Answer:
    """One page of the products ``viewer`` may see, matching the filters in ``args``."""
    public = not sees_inactive(viewer)
    queries.check_filters(args, viewer)
    if public and cache.readable():
        stock_dependent = _stock_dependent()
        key, found = _request_lookup("products", stock_dependent=stock_dependent)
        if found.payload is not None:
            rendered = _from_cache(found.payload, found.stored, item=False)
        else:
            count_key = _key("count", {k: v for k, v in args.items() if k not in _PAGING})
            totals = _CachedTotals(count_key, stock_dependent, found.tag)
            entry = _build_list(args, fields, viewer, totals=totals)
            cache.store(
                key,
                found.tag,
                entry.dumps(),
                states=dict(zip(entry.ids, entry.states, strict=True)),
                entries=totals.to_store(),
            )
            rendered = _render(entry, entry.states, item=False)
    else:
        entry = _build_list(args, fields, viewer, totals=None)
        rendered = _render(entry, entry.states, item=False)
    return _answer(rendered, public, if_none_match)


def _answer(rendered: Rendered, public: bool, if_none_match: str | None) -> Answer:
    headers = _cache_headers(public, rendered.etag)
    headers.update(_link_header(rendered.links))
    if _matches(if_none_match, rendered.etag):
        return Answer(None, headers)
    return Answer(rendered.body, headers)


def _stock_dependent() -> bool:
    """Whether the list asked for depends on stock (filtered on it); read from the query
    arguments as parsed, so that the early answer and the view agree."""
    return "in_stock" in request.args


# --- early answers: anonymous reads straight from the cache ----------------------------------

_EARLY_LOOKUP = "catalog_lookup"
# Endpoint → the kind of entry that answers it.
EARLY_KINDS = {
    "products.Products": "products",
    "products.ProductItem": "product",
    "products.Categories": "categories",
    "products.CategoryItem": "category",
}


def early_answer() -> Answer | None:
    """The cached answer to an anonymous GET of the catalog, or None (the view answers).

    An entry is keyed by the request's path and query arguments, and exists only if the
    view answered a request with exactly those for the public under the current
    generation: its arguments were valid then, and are now. Nothing is validated, no token is checked
    (there is none), no body is built. A miss is remembered for the view, which then
    needs no second lookup. Requests with credentials (an ``Authorization`` header, the
    dashboard's session cookie) always go to the view: who they are decides what they see.
    """
    kind = EARLY_KINDS.get(request.endpoint or "")
    if kind is None or request.method != "GET" or not cache.readable():
        return None
    if sends_credentials():
        return None
    key = _request_key(kind)
    found = cache.lookup(key, stock_dependent=kind == "products" and _stock_dependent())
    if found.payload is None:
        setattr(g, _EARLY_LOOKUP, (key, found))
        return None
    if_none_match = request.headers.get("If-None-Match")
    if kind in ("categories", "category"):
        return _plain_cached(found.payload, if_none_match)
    return _answer(_from_cache(found.payload, found.stored, item=kind == "product"), True, if_none_match)


def _request_lookup(kind: str, *, stock_dependent: bool = False) -> tuple[str, cache.Lookup]:
    """This request's entry: the early answer's lookup when it made one (a miss)."""
    key = _request_key(kind)
    early: tuple[str, cache.Lookup] | None = g.pop(_EARLY_LOOKUP, None)
    if early is not None and early[0] == key:
        return early
    return key, cache.lookup(key, stock_dependent=stock_dependent)


@dataclass(frozen=True)
class Rendered:
    body: bytes
    etag: str
    links: str  # the page's links (JSON), for the Link header


def _render(entry: Entry, states: Sequence[State], *, item: bool) -> Rendered:
    # A product's tag is its version, as app.products.etags.etag_of writes it.
    etag = f'"{entry.ids[0]}-v{states[0].version}"' if item else _list_etag(entry, states)
    return Rendered(entry.body(states), etag, json.dumps(entry.links))


def _from_cache(payload: bytes, stored: tuple[bytes | None, ...] | None, *, item: bool) -> Rendered:
    """A cached entry rendered with its products' stored states (as Redis holds them)."""
    states = None if stored is None else [cache.parse_state(raw) for raw in stored]
    if stored is not None and states is not None and None not in states:
        return _render_cached(payload, stored, item)
    entry = Entry.loads(payload)
    return _render(entry, entry.current_states(states), item=item)


@functools.lru_cache(maxsize=1024)
def _render_cached(payload: bytes, stored: tuple[bytes | None, ...], item: bool) -> Rendered:
    """What a cached entry renders to, given the stored states of its products: a pure
    function of its arguments, so each worker keeps the answers asked for most (without
    parsing them again: the key is the bytes Redis sent)."""
    entry = Entry.loads(payload)
    return _render(entry, entry.current_states([cache.parse_state(raw) for raw in stored]), item=item)


_PAGING = frozenset({"page", "per_page", "cursor", "limit", "sort"})


@dataclass
class _CachedTotals:
    """The ``total`` of a filter set, shared by its pages and sort orders until a write:
    looked up at ``key`` (under the page's tag); a total counted with the page is stored
    with the page's entry (``to_store``), in the same round trip."""

    key: str
    stock_dependent: bool
    tag: bytes | None
    found: int | None = None

    def known(self) -> int | None:
        if self.tag is None:  # Redis failed this request's lookup: not asked again (nor stored)
            return None
        cached = cache.lookup(self.key, stock_dependent=self.stock_dependent)
        if cached.payload is not None and cached.tag == self.tag:
            return int(cached.payload)
        return None

    def counted(self, total: int) -> None:
        self.found = total

    def to_store(self) -> dict[str, bytes]:
        return {} if self.found is None else {self.key: str(self.found).encode()}


def _build_list(
    args: Mapping[str, Any], fields: Sequence[str] | None, viewer: Principal | None, *, totals: Totals | None
) -> Entry:
    read_outside_transaction()
    stmt = queries.filtered(queries.visible(viewer), args, viewer)
    sortable, default_sort = queries.sorting(args)
    page = paginate_rows(
        stmt, args, sortable=sortable, default_sort=default_sort, tiebreak=queries.PRODUCT.id, totals=totals
    )
    entry = _entry(page.items, fields, template=lambda items: rendering.list_template(items, page.meta))
    entry.links = page.links
    return entry


def _entry(rows: Sequence[sa.Row[Any]], fields: Sequence[str] | None, *, template: Any) -> Entry:
    categories = queries.categories_of([row.id for row in rows])
    currency: str = current_app.config["CURRENCY"]
    items = [
        rendering.only(rendering.product_dict(r, categories.get(r.id, []), currency=currency), fields) for r in rows
    ]
    return Entry(
        template=template(items),
        volatile=rendering.volatile_fields(fields),
        ids=[str(row.id) for row in rows],
        states=[State(row.version, row.stock, utc_text(row.updated_at)) for row in rows],
        thresholds=[row.low_stock_threshold for row in rows],
    )


def get_product(
    *, ref: str, fields: Sequence[str] | None, viewer: Principal | None, if_none_match: str | None
) -> Answer:
    """A product by id or slug, as ``viewer`` may see it, with its ETag."""
    public = not sees_inactive(viewer)
    if public and cache.readable():
        key, found = _request_lookup("product")
        if found.payload is not None:
            rendered = _from_cache(found.payload, found.stored, item=True)
        else:
            entry = _build_item(ref, fields, viewer)
            cache.store(key, found.tag, entry.dumps(), states=dict(zip(entry.ids, entry.states, strict=True)))
            rendered = _render(entry, entry.states, item=True)
    else:
        entry = _build_item(ref, fields, viewer)
        rendered = _render(entry, entry.states, item=True)
    headers = _cache_headers(public, rendered.etag)
    if _matches(if_none_match, rendered.etag):
        return Answer(None, headers)
    return Answer(rendered.body, headers)


def _build_item(ref: str, fields: Sequence[str] | None, viewer: Principal | None) -> Entry:
    read_outside_transaction()
    row = db.session.execute(queries.by_ref(queries.visible(viewer), ref)).first()
    if row is None:
        raise NotFound("Product not found")
    return _entry([row], fields, template=lambda items: rendering.one_template(items[0]))


# --- categories ------------------------------------------------------------------------------------


def list_categories(*, args: Mapping[str, Any], if_none_match: str | None) -> Answer:
    """One page of categories (the same for everyone)."""
    return _plain_answer("categories", lambda: _category_page(args), if_none_match)


def get_category(*, ref: str, if_none_match: str | None) -> Answer:
    """A category by id or slug."""
    return _plain_answer("category", lambda: _category(ref), if_none_match)


PlainBuild = Callable[[], tuple[bytes, dict[str, dict[str, str]]]]


def _plain_answer(kind: str, build: PlainBuild, if_none_match: str | None) -> Answer:
    """A body without volatile parts: cached as it is, with the page's links."""
    if not cache.readable():
        body, links = build()
        return _plain(body, json.dumps(links), if_none_match)
    key, found = _request_lookup(kind)
    if found.payload is not None:
        return _plain_cached(found.payload, if_none_match)
    body, links = build()
    links_line = json.dumps(links)
    cache.store(key, found.tag, links_line.encode() + b"\n" + body)
    return _plain(body, links_line, if_none_match)


def _plain_cached(payload: bytes, if_none_match: str | None) -> Answer:
    links_line, body = payload.split(b"\n", 1)
    return _plain(body, links_line.decode(), if_none_match)


def _plain(body: bytes, links: str, if_none_match: str | None) -> Answer:
    etag = f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
    headers = _cache_headers(True, etag)  # the same for everyone, with the headers every catalog read has
    headers.update(_link_header(links))
    if _matches(if_none_match, etag):
        return Answer(None, headers)
    return Answer(body, headers)


_CATEGORY_COLUMNS = tuple(
    queries.CATEGORY[name] for name in ("id", "name", "slug", "description", "created_at", "updated_at")
)


def _category_dict(category: sa.Row[Any]) -> dict[str, Any]:
    """``CategorySchema().dump(category)``, from a row."""
    return {
        "id": str(category.id),
        "name": category.name,
        "slug": category.slug,
        "description": category.description,
        "created_at": utc_text(category.created_at),
        "updated_at": utc_text(category.updated_at),
    }


def _category_page(args: Mapping[str, Any]) -> tuple[bytes, dict[str, dict[str, str]]]:
    read_outside_transaction()
    page = paginate_rows(
        sa.select(*_CATEGORY_COLUMNS),
        args,
        sortable=CATEGORY_SORTABLE,
        default_sort=CATEGORY_DEFAULT_SORT,
        tiebreak=queries.CATEGORY.id,
    )
    body = rendering.plain({"data": [_category_dict(c) for c in page.items], "meta": page.meta})
    return body, page.links


def _category(ref: str) -> tuple[bytes, dict[str, dict[str, str]]]:
    try:
        criterion = queries.CATEGORY.id == uuid.UUID(ref)
    except ValueError:
        criterion = queries.CATEGORY.slug == ref
    read_outside_transaction()
    row = db.session.execute(sa.select(*_CATEGORY_COLUMNS).where(criterion)).first()
    if row is None:
        raise NotFound("Category not found")
    return rendering.plain({"data": _category_dict(row)}), {}
