"""The catalog's read cache in Redis: never stale, and a sale does not empty it.

Readers (``app.products.reads``) keep each answer as an *entry*: its body with the parts
that stock moves (``stock``, ``in_stock``, ``low_stock``, ``version``, ``updated_at``) left
as slots, tagged with the *generation* that was current before its rows were read. Writes
make entries unreachable once they commit — call ``catalog_changed`` in the transaction:

- ``catalog_changed()``: anything in the catalog may have changed (products, categories,
  an import, an image becoming ready). After the commit the generation is a new random
  token, so every entry is a miss. (Random rather than a counter: a generation key lost to
  eviction or a restart can never bring an old generation back.)
- ``catalog_changed(product_ids, stock_only=True)``: only the stock of those products
  moved (an order, a cancel, an expired order). Entries stay valid; each product's live
  *state* (version, stock, updated_at) goes under its own key, which readers lay over the
  entry. Only lists filtered on ``in_stock`` (whose members depend on stock) are tagged
  with the *stock generation* as well, which such a change renews.

A state is read inside the writing transaction, after its ``UPDATE`` (the rows are locked
until the commit, so it is what commits), and stored only when its version is newer than
the one Redis holds, as writers may finish in any order. Readers take the newer of the
entry's own state and the stored one, and read the database for a state Redis lost.

ORM changes to products and categories are caught at flush as well (a write that forgets
the call stays correct); bulk statements (``UPDATE … SET stock``, imports) must call it.
Without Redis (the embedded default) or with ``CATALOG_CACHE=off`` nothing is cached. If
Redis fails, readers go to the database; a change whose publication failed is logged and
sent again until Redis takes it (``_Unpublished``: meanwhile the writing process reads
the database), and entries expire after ``CATALOG_CACHE_TTL`` seconds in any case.
"""

from __future__ import annotations

import atexit
import functools
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, has_app_context
from redis import Redis
from redis.client import Pipeline
from redis.exceptions import NoScriptError, RedisError
from sqlalchemy.orm import Session, SessionTransaction

from app.db import db
from app.extensions import redis_queues
from app.jobs import after_job, send_after_commit
from app.products.models import Category, Product
from app.schema import utc_text

log = logging.getLogger(__name__)

PREFIX = "storefront:catalog:"
GENERATION_KEY = PREFIX + "generation"
STOCK_GENERATION_KEY = PREFIX + "stock-generation"
ENTRY_PREFIX = PREFIX + "entry:"
STATE_PREFIX = PREFIX + "state:"
PENDING_KEY = "storefront.catalog_changes"
SCRIPTS_KEY = "storefront.catalog_scripts"

# KEYS: state keys; ARGV[1]: TTL; ARGV[i + 1]: the state for KEYS[i] ("version|stock|updated_at").
# A state replaces the stored one only if its version is newer: writers finish in any order.
_STORE_IF_NEWER = """
local ttl = ARGV[1]
for i, key in ipairs(KEYS) do
  local new = ARGV[i + 1]
  local current = redis.call('GET', key)
  if (not current) or tonumber(string.match(current, '^%d+')) < tonumber(string.match(new, '^%d+')) then
    redis.call('SET', key, new, 'EX', ttl)
  else
    redis.call('EXPIRE', key, ttl)
  end
end
return #KEYS
"""
_ISO_UTC = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@dataclass(frozen=True)
class State:
    """What stock moves in a product's representation."""

    version: int
    stock: int
    updated_at: str  # as the API writes it: ISO 8601, milliseconds, Z

    def dumps(self) -> bytes:
        return f"{self.version}|{self.stock}|{self.updated_at}".encode()

    @classmethod
    def loads(cls, raw: bytes) -> State:
        version, stock, updated_at = raw.split(b"|")
        if not _ISO_UTC.match(updated_at):
            raise ValueError("not a state")
        return cls(int(version), int(stock), updated_at.decode())

    @classmethod
    def of(cls, version: int, stock: int, updated_at: datetime) -> State:
        return cls(version, stock, utc_text(updated_at))


def newer(a: State, b: State | None) -> State:
    return b if b is not None and b.version > a.version else a


# --- configuration --------------------------------------------------------------------


def enabled() -> bool:
    """A real Redis is configured and the cache is not switched off."""
    return not redis_queues.in_process and bool(current_app.config["CATALOG_CACHE"])


def _ttl() -> int:
    ttl: int = current_app.config["CATALOG_CACHE_TTL"]
    return ttl


def _new_token() -> bytes:
    return secrets.token_hex(8).encode()


def _bytes(value: object) -> bytes | None:
    """A reply of the connection (it does not decode responses)."""
    if value is None or isinstance(value, bytes):
        return value
    raise TypeError(f"unexpected Redis reply {type(value).__name__}")


# --- writers -----------------------------------------------------------------------------


@dataclass
class _Changes:
    """What a transaction changed in the catalog; published after its commit, with the
    commit's jobs (``jobs.send_after_commit``: ``queue``, then ``answered`` or ``refused``)."""

    everything: bool = False
    stock_ids: set[uuid.UUID] = field(default_factory=set)
    states: dict[str, State] = field(default_factory=dict)
    # States the writer already had (from its UPDATE … RETURNING): not read again.
    known: dict[str, State] = field(default_factory=dict)

    def redis(self) -> Redis:
        return redis_queues.catalog_cache

    def queue(self, pipe: Pipeline) -> None:
        """The commands that publish these changes (``_read_states`` has run)."""
        if self.states:
            store_states(self.states, client=pipe)
        if self.stock_ids:
            pipe.set(STOCK_GENERATION_KEY, _new_token())
        if self.everything:
            pipe.set(GENERATION_KEY, _new_token())

    def answered(self, results: list[Any]) -> None:
        errors = [result for result in results if isinstance(result, Exception)]
        if any(isinstance(error, NoScriptError) for error in errors):
            # Redis lost the scripts (a restart, SCRIPT FLUSH): load them, send it all again
            # (a state stored twice is stored once; a new generation twice is one change).
            _publish(self)
        elif errors:
            _not_published(self, errors[0])

    def refused(self, error: RedisError | None) -> None:
        _not_published(self, error)


def catalog_changed(
    product_ids: Iterable[uuid.UUID] | None = None,
    *,
    stock_only: bool = False,
    states: Mapping[uuid.UUID, State] | None = None,
) -> None:
    """Make every cached catalog answer that this transaction's changes affect unreachable
    once it commits (nothing happens if it rolls back).

    ``catalog_changed()``: any change to the catalog (products, categories, bulk writes).
    ``catalog_changed(ids, stock_only=True)``: only the stock of the products ``ids``
    changed (orders, cancels, expiry): cached pages stay, the new stock is laid over them.
    ``states``: those products' states as the transaction wrote them (``UPDATE …
    RETURNING``, the rows locked until the commit), so they need not be read again.
    Call it inside the transaction, before its commit. Called outside one, it also takes
    effect at once.
    """
    ids = set(product_ids or ())
    if stock_only and not ids:
        raise ValueError("stock_only needs the ids of the products whose stock changed")
    if not has_app_context() or not enabled():
        return
    session = db.session()
    if not session.in_transaction():
        # After the commit already (or before the first statement): publish now, and
        # again when the transaction that may follow commits.
        now = _Changes(everything=not stock_only, stock_ids=set(ids))
        _read_states(session, now)
        _publish(now)
    changes: _Changes = session.info.setdefault(PENDING_KEY, _Changes())
    changes.stock_ids |= ids
    changes.known.update({str(key): value for key, value in (states or {}).items()})
    if not stock_only:
        changes.everything = True


# Built once, run with the ids bound (``expanding``: one parameter per id at execution).
_STATES_OF = sa.select(Product.id, Product.version, Product.stock, Product.updated_at).where(
    Product.id.in_(sa.bindparam("ids", expanding=True))
)


def database_states(product_ids: Iterable[uuid.UUID], *, session: Session | None = None) -> dict[str, State]:
    """The current state of each product, from the database (by id as text)."""
    rows = (session or db.session()).execute(_STATES_OF, {"ids": sorted(product_ids)})
    return {str(row.id): State.of(row.version, row.stock, row.updated_at) for row in rows}


def _read_states(session: Session, changes: _Changes) -> None:
    changes.states = {key: state for key, state in changes.known.items() if uuid.UUID(key) in changes.stock_ids}
    unknown = [i for i in changes.stock_ids if str(i) not in changes.states]
    if unknown:
        changes.states.update(database_states(unknown, session=session))


def _publish(changes: _Changes) -> None:
    try:
        _run_pipeline(changes.queue)
    except RedisError as error:
        _not_published(changes, error)


def _not_published(changes: _Changes, error: BaseException | None) -> None:
    log.error(
        "catalog change not published to the cache (everything=%s); sent again until Redis takes it",
        changes.everything,
        exc_info=error,
    )
    _unpublished.add(current_app._get_current_object())  # type: ignore[attr-defined]  # the app behind the proxy


# --- changes Redis did not take ----------------------------------------------------------------

RETRY_SECONDS = 0.5
EXIT_WAIT_SECONDS = 10.0


def _renew_generations(pipe: Pipeline) -> None:
    pipe.set(GENERATION_KEY, _new_token())
    pipe.set(STOCK_GENERATION_KEY, _new_token())


class _Unpublished:
    """Changes committed while Redis failed, sent again until it takes them.

    What is sent is a new generation and stock generation: every entry cached before is
    then unreachable, whatever the changes were (their states are read again by the next
    readers). Until it is sent, this process's readers skip the cache (``readable``): the
    entries the changes made obsolete are there again as soon as Redis is. Other processes
    see the changes once Redis is back, within ``RETRY_SECONDS``. A thread of the process
    that failed sends it; a process about to end (an RQ job's work horse, a CLI command)
    tries for ``EXIT_WAIT_SECONDS`` first (``flush_before_exit``). Only a process killed
    before Redis is back leaves its changes to ``CATALOG_CACHE_TTL``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures = 0  # changes not taken so far; compared, so that none is lost in a race
        self._sent = 0
        self._app: Flask | None = None
        self._thread: threading.Thread | None = None
        self._at_exit = False

    @property
    def pending(self) -> bool:
        return self._failures != self._sent

    def add(self, app: Flask) -> None:
        with self._lock:
            self._failures += 1
            self._app = app
            if self._thread is None:  # (a retrying thread clears it, under this lock, as it ends)
                self._thread = threading.Thread(target=self._retry, name="catalog-republish", daemon=True)
                self._thread.start()
            if not self._at_exit:
                self._at_exit = True
                atexit.register(self.flush_before_exit)

    def send(self) -> bool:
        """Send now (in an app context); True once nothing is pending."""
        with self._lock:
            failures, sent = self._failures, self._sent
        if failures == sent:
            return True
        try:
            _run_pipeline(_renew_generations)
        except RedisError:
            return False
        with self._lock:
            self._sent = max(self._sent, failures)
            done = not self.pending
        log.warning("catalog changes committed while Redis failed are published now")
        return done

    def _retry(self) -> None:
        done = False
        try:
            while not done:
                time.sleep(RETRY_SECONDS)
                app = self._app
                try:
                    if app is not None:
                        with app.app_context():
                            self.send()
                except Exception:  # not Redis (that is a False): logged, and tried again
                    log.exception("catalog changes not republished; trying again")
                with self._lock:  # decided under the lock that starts a thread: none is lost
                    done = not self.pending
                    if done:
                        self._thread = None
        finally:
            if not done:  # ended by something else: the next failure starts a thread again
                with self._lock:
                    self._thread = None

    def flush_before_exit(self) -> None:
        """Before a process ends: try to send what is pending, for a while."""
        deadline = time.monotonic() + EXIT_WAIT_SECONDS
        while self.pending and self._app is not None:
            with self._app.app_context():
                if self.send():
                    return
            if time.monotonic() > deadline:
                log.error("catalog changes not published before exit: answers may be stale for CATALOG_CACHE_TTL")
                return
            time.sleep(RETRY_SECONDS)


_unpublished = _Unpublished()


def readable() -> bool:
    """Whether readers may use the cache: it is enabled, and no change this process made is
    waiting to be published (see ``_Unpublished``)."""
    return enabled() and not _unpublished.pending


def flush_unpublished() -> None:
    """At the end of an RQ job (its work horse ends next): publish what Redis did not take."""
    if _unpublished.pending:
        _unpublished.flush_before_exit()


def _before_commit(session: Session) -> None:
    changes: _Changes | None = session.info.get(PENDING_KEY)
    if changes is not None:
        _read_states(session, changes)


def _after_commit(session: Session) -> _Changes | None:
    changes: _Changes | None = session.info.pop(PENDING_KEY, None)
    return changes


def _after_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.parent is None and not previous_transaction.nested:
        session.info.pop(PENDING_KEY, None)


def _after_flush(session: Session, flush_context: Any) -> None:
    """The safety net: any ORM change to a product or a category is a catalog change."""
    touched = (
        any(isinstance(obj, Product | Category) for obj in session.new)
        or any(isinstance(obj, Product | Category) for obj in session.deleted)
        or any(isinstance(obj, Product | Category) and session.is_modified(obj) for obj in session.dirty)
    )
    if touched and has_app_context() and enabled():
        changes: _Changes = session.info.setdefault(PENDING_KEY, _Changes())
        changes.everything = True


def register_session_hooks() -> None:
    send_after_commit(_after_commit)
    after_job(flush_unpublished)
    for name, hook in (
        ("before_commit", _before_commit),
        ("after_soft_rollback", _after_soft_rollback),
        ("after_flush", _after_flush),
    ):
        if not sa.event.contains(Session, name, hook):
            sa.event.listen(Session, name, hook)


# --- readers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lookup:
    """An entry's payload (None: a miss), the tag a payload built now is stored under
    (None: do not store, Redis is failing) and, for an entry that lists products, their
    stored states as Redis holds them (see ``lookup``; ``parse_state`` reads one)."""

    payload: bytes | None
    tag: bytes | None
    stored: tuple[bytes | None, ...] | None = None


# One round trip for a hit: the generations, the entry and, when the entry is current and
# starts with a line of product ids, their stored states.
# KEYS: generation, stock generation, entry. ARGV[1]: state key prefix; ARGV[2]: "1" when
# the entry depends on stock. Returns {generation, stock generation, entry, state...}.
_READ = r"""
local generation = redis.call('GET', KEYS[1])
local stock_generation = false
if ARGV[2] == '1' then stock_generation = redis.call('GET', KEYS[2]) end
local entry = redis.call('GET', KEYS[3])
local reply = {generation, stock_generation, entry}
if generation and entry then
  local tag = generation
  if ARGV[2] == '1' then tag = tag .. '/' .. (stock_generation or '') end
  tag = tag .. '\n'
  if string.sub(entry, 1, #tag) == tag then
    local ids = string.match(entry, '^[^\n]*\n([^\n]*)\n')
    if ids and string.match(ids, '^[0-9a-f,-]+$') then
      local keys = {}
      for id in string.gmatch(ids, '[^,]+') do keys[#keys + 1] = ARGV[1] .. id end
      local found = redis.call('MGET', unpack(keys))
      for i = 1, #keys do reply[3 + i] = found[i] end
    end
  end
end
return reply
"""


def lookup(key: str, *, stock_dependent: bool = False) -> Lookup:
    """The entry at ``key`` if it belongs to the current generation(s); for an entry whose
    payload starts with a line of comma-separated product ids, their stored states too."""
    try:
        reply = _run_script(
            "read",
            keys=(GENERATION_KEY, STOCK_GENERATION_KEY, ENTRY_PREFIX + key),
            args=(STATE_PREFIX, "1" if stock_dependent else "0"),
        )
        generation, stock_generation, raw = (_bytes(value) for value in reply[:3])
        if generation is None:
            generation = _establish(GENERATION_KEY)
        if stock_dependent and stock_generation is None:
            stock_generation = _establish(STOCK_GENERATION_KEY)
    except RedisError as exc:  # one line: an outage would write a traceback per read
        log.warning("catalog cache unavailable (%s); reading the database", exc)
        return Lookup(payload=None, tag=None)
    tag = generation + (b"/" + stock_generation if stock_generation is not None and stock_dependent else b"") + b"\n"
    if raw is not None and raw.startswith(tag):
        return Lookup(payload=raw[len(tag) :], tag=tag, stored=tuple(_bytes(value) for value in reply[3:]))
    return Lookup(payload=None, tag=tag)


@functools.lru_cache(maxsize=16384)
def parse_state(raw: bytes | None) -> State | None:
    """A stored state (None: none, or not a state). Remembered: the same few states are
    read on every request for a page."""
    try:
        return State.loads(raw) if raw is not None else None
    except ValueError:
        return None


def _scripts() -> dict[str, Any]:
    """The Lua scripts, registered once per connection (redis-py runs them by SHA)."""
    scripts: dict[str, Any] | None = current_app.extensions.get(SCRIPTS_KEY)
    if scripts is None:
        connection = redis_queues.catalog_cache
        scripts = {
            "read": connection.register_script(_READ),
            "store_if_newer": connection.register_script(_STORE_IF_NEWER),
        }
        current_app.extensions[SCRIPTS_KEY] = scripts
    return scripts


def _run_script(name: str, *, keys: Sequence[str], args: Sequence[str | int | bytes]) -> Any:
    """Run a script by SHA, loading it again if Redis lost it (a restart, ``SCRIPT
    FLUSH``): what ``Script.__call__`` does, without its per-call steps (a tenth of a
    cached read's round trip)."""
    connection = redis_queues.catalog_cache
    script = _scripts()[name]
    try:
        return connection.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        connection.script_load(script.script)
        return connection.evalsha(script.sha, len(keys), *keys, *args)


def _run_pipeline(queue: Callable[[Pipeline], None]) -> None:
    """Send what ``queue`` puts in a pipeline in one round trip. If Redis lost the scripts
    (a restart, ``SCRIPT FLUSH``), load them and send it all again: every command queued
    here may run twice (they set values, and a new generation twice is one change)."""
    connection = redis_queues.catalog_cache
    for attempt in (1, 2):
        pipe = connection.pipeline(transaction=False)
        queue(pipe)
        try:
            pipe.execute()
            return
        except NoScriptError:
            if attempt == 2:
                raise
            for script in _scripts().values():
                connection.script_load(script.script)


def _establish(key: str) -> bytes:
    """The generation at ``key``, starting one if there is none."""
    connection = redis_queues.catalog_cache
    connection.set(key, _new_token(), nx=True)
    value = _bytes(connection.get(key))
    if value is None:  # pragma: no cover - deleted between the two calls
        raise RedisError(f"{key} vanished")
    return value


def store(
    key: str,
    tag: bytes | None,
    payload: bytes,
    *,
    states: Mapping[str, State] | None = None,
    entries: Mapping[str, bytes] | None = None,
) -> None:
    """Keep ``payload`` at ``key`` under ``tag`` (from the ``lookup`` made before reading),
    any other ``entries`` (key: payload) read under the same tag, and the ``states`` it was
    built with unless Redis holds newer ones: one round trip."""
    if tag is None:
        return

    def queue(pipe: Pipeline) -> None:
        ttl = _ttl()
        pipe.set(ENTRY_PREFIX + key, tag + payload, ex=ttl)
        for other, other_payload in (entries or {}).items():
            pipe.set(ENTRY_PREFIX + other, tag + other_payload, ex=ttl)
        if states:
            store_states(states, client=pipe)

    try:
        _run_pipeline(queue)
    except RedisError as exc:  # one line: an outage would write a traceback per read
        log.warning("catalog cache unavailable (%s); entry not stored", exc)


def states(ids: Sequence[str]) -> list[State | None]:
    """The stored states of ``ids`` (None where there is none, or Redis fails)."""
    if not ids:
        return []
    try:
        raw = redis_queues.catalog_cache.mget([STATE_PREFIX + i for i in ids])
    except RedisError as exc:  # one line: an outage would write a traceback per read
        log.warning("catalog cache unavailable (%s); reading the database", exc)
        return [None] * len(ids)
    return [parse_state(_bytes(value)) for value in raw]


def store_states(found: Mapping[str, State], *, client: Any = None) -> None:
    """Store each state unless Redis holds a newer one."""
    if not found:
        return
    items = sorted(found.items())
    keys = [STATE_PREFIX + product_id for product_id, _ in items]
    args: list[bytes | int] = [_ttl(), *(state.dumps() for _, state in items)]
    if client is not None:
        # By SHA, queued like any command: a script passed to a pipeline would make it ask
        # Redis first whether the script exists, a round trip on every write and every
        # stored entry (``_run_pipeline`` loads the scripts if Redis lost them).
        client.evalsha(_scripts()["store_if_newer"].sha, len(keys), *keys, *args)
        return
    try:
        _run_script("store_if_newer", keys=keys, args=args)
    except RedisError as exc:  # one line: an outage would write a traceback per read
        log.warning("catalog cache unavailable (%s); states not stored", exc)
