"""The declarative base every model shares, its column conventions and mixins."""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column, registry
from uuid6 import uuid7

# Constraint names are deterministic, so migrations can drop and alter them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def escape_like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (use with ``escape="\\"``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def new_id() -> uuid.UUID:
    """A time-ordered UUIDv7: index-friendly and sortable by creation time."""
    return uuid.UUID(bytes=uuid7().bytes)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores no offset)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


Money = sa.Numeric(12, 2, asdecimal=True)


class Base(DeclarativeBase):
    # Set on the registry, not the class: Flask-SQLAlchemy rebuilds the base's bases.
    registry = registry(
        metadata=sa.MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime(), Decimal: Money, uuid.UUID: sa.Uuid()},
    )


# The one SQLAlchemy extension object (re-exported by app.extensions with the others).
db = SQLAlchemy(model_class=Base)


MIGRATION_MANAGED = "migration_managed"


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic's filter: leave out what a model's table lists in ``info["migration_managed"]``.

    Those are objects a migration creates for one backend only (PostgreSQL's full-text
    search column and index) that no model can describe on every backend; autogenerate
    neither adds nor drops them.
    """
    table = obj if type_ == "table" else getattr(obj, "table", None)
    model_table = db.metadata.tables.get(table.name) if isinstance(table, sa.Table) else None
    managed: frozenset[str] = (
        model_table.info.get(MIGRATION_MANAGED, frozenset()) if model_table is not None else frozenset()
    )
    return name not in managed


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SoftDeleteMixin:
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


def commit_keeping_loaded() -> None:
    """Commit without expiring what the session holds, for a use case that answers with the
    objects it has just written (their state is what was committed): no reload follows."""
    session = db.session()
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True


def on_postgresql() -> bool:
    """Whether the app's database is PostgreSQL (elsewhere: SQLite, the embedded default)."""
    return db.session.get_bind().dialect.name == "postgresql"


def table_of(model: type[Base]) -> sa.Table:
    """``model``'s table, for Core statements on a hot path: a statement that names a
    model's attributes anywhere is ORM-enabled, and the session runs it through the ORM
    (compile state, bulk paths, result setup), which costs more than the SQL it sends."""
    return cast(sa.Table, model.__table__)


def read_outside_transaction() -> None:
    """Run this read-only use case's statements outside a transaction (each on its own, as
    ``AUTOCOMMIT``): no ``BEGIN`` and ``ROLLBACK`` round trips around them. Under READ
    COMMITTED, the isolation the app runs at, a transaction gives separate statements no
    common snapshot anyway, so a read whose every statement is consistent alone (a page
    and its count are one statement) answers the same. Call it just before the first
    statement (it procures the connection); where the session is in a transaction already
    (a request that read the caller's account, say), the read joins it and this does nothing.
    The pool resets the connection's isolation when it is returned."""
    session = db.session()
    if not session.in_transaction():
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def insert_new(*objects: Base) -> None:
    """INSERT new objects now, one statement per table and set of columns (executemany),
    without the unit of work: for a hot path that answers with what it built and reads
    nothing back (the unit of work costs several times the statements it sends).

    Each object must carry the values it needs, its id included: only columns it left
    unset get their column defaults. The objects stay transient (never in the session),
    so they are written exactly as built; the order given is the order of the INSERTs
    (parents first). Inside ``inserted_together()`` they are written at the block's end.
    """
    pending: list[Base] | None = db.session().info.get(_PENDING_INSERTS)
    if pending is not None:
        pending.extend(objects)
    else:
        _write_new(objects)


_PENDING_INSERTS = "storefront.pending_inserts"
# PostgreSQL takes at most 65,535 parameters per statement; a use case writing more than
# this many values at once is written one statement per table instead.
_MAX_COMBINED_PARAMETERS = 10_000


@contextlib.contextmanager
def inserted_together() -> Iterator[None]:
    """Write every object given to ``insert_new`` in the block when the block ends, as one
    statement on PostgreSQL: each row an ``INSERT`` inside one data-modifying ``WITH``
    (foreign keys are checked at the end of the statement, so parents and children may
    share it). One round trip for a use case that writes several tables, where
    ``insert_new`` alone sends one per table. SQLite has no such statement: there the rows
    go one statement per table, as without the block.

    Nothing in the block may need the rows in the database before it ends (no read of
    them, no flush that refers to them). If the block raises, nothing is written; the
    caller's transaction is rolled back as usual. A block inside another one adds to it.
    """
    info = db.session().info
    if _PENDING_INSERTS in info:
        yield
        return
    pending: list[Base] = []
    info[_PENDING_INSERTS] = pending
    try:
        yield
    finally:
        info.pop(_PENDING_INSERTS, None)
    _write_new(pending)


def _write_new(objects: Sequence[Base]) -> None:
    batches: dict[tuple[sa.Table, tuple[str, ...]], list[dict[str, Any]]] = {}
    for obj in objects:
        state = sa.inspect(obj)
        table, columns = _columns_of(state.mapper)
        loaded = state.dict
        values: dict[str, Any] = {}
        for attribute, column, default in columns:
            if attribute in loaded:
                values[column] = loaded[attribute]
            elif default is not None:
                values[column] = default()
        batches.setdefault((table, tuple(values)), []).append(values)
    session = db.session()
    if (
        len(objects) > 1
        and on_postgresql()
        and sum(len(columns) * len(rows) for (_, columns), rows in batches.items()) <= _MAX_COMBINED_PARAMETERS
    ):
        rows_in_order = [(table, columns, values) for (table, columns), rows in batches.items() for values in rows]
        parameters = {
            f"p{number}_{column}": value
            for number, (_, _, values) in enumerate(rows_in_order)
            for column, value in values.items()
        }
        session.execute(_combined_insert(tuple((table, columns) for table, columns, _ in rows_in_order)), parameters)
        return
    for (table, _), rows in batches.items():
        session.execute(_insert_into(table), rows)


@functools.cache
def _columns_of(mapper: Mapper[Any]) -> tuple[sa.Table, tuple[tuple[str, str, Callable[[], Any] | None], ...]]:
    """A mapper's one table and, per column, its attribute, its key and what fills it when
    the object left it unset: its Python-side default (None: NULL, or the database's own
    default). The values are computed here, not by the INSERT, so that every statement,
    combined or not, writes the same rows."""
    table = mapper.local_table
    if mapper.inherits is not None or not isinstance(table, sa.Table):
        raise TypeError(f"insert_new writes single-table models only, not {mapper.class_.__name__}")
    return table, tuple(
        (mapper.get_property_by_column(column).key, column.key, _default_of(column)) for column in table.columns
    )


def _default_of(column: sa.Column[Any]) -> Callable[[], Any] | None:
    default = column.default
    if default is None:
        return None
    if isinstance(default, sa.ColumnDefault) and default.is_scalar:
        value = default.arg
        return lambda: value
    if isinstance(default, sa.ColumnDefault) and default.is_callable:
        function = default.arg
        return lambda: function(None)  # SQLAlchemy wraps the callable to take a context
    raise TypeError(f"insert_new cannot compute the default of {column} ({type(default).__name__})")


@functools.cache
def _insert_into(table: sa.Table) -> sa.Insert:
    return sa.insert(table)


@functools.lru_cache(maxsize=512)
def _combined_insert(shape: tuple[tuple[sa.Table, tuple[str, ...]], ...]) -> sa.Insert:
    """One single-row INSERT per (table, columns) of ``shape``, all but the last in a
    ``WITH``, in that order; parameters named ``p<row>_<column>``. Built once per shape:
    building and keying a statement costs about as much as running it. One INSERT per row,
    not one per table: SQLAlchemy caches no multi-row ``VALUES``, and compiling this
    statement anew would cost more than the round trips it saves."""
    inserts = [
        sa.insert(table).values(
            {column: sa.bindparam(f"p{row}_{column}", type_=table.c[column].type) for column in columns}
        )
        for row, (table, columns) in enumerate(shape)
    ]
    *first, last = inserts
    return last.add_cte(*(insert.cte(f"insert_{row}") for row, insert in enumerate(first)))


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        # SQLite ignores foreign keys unless asked; WAL lets readers run beside a writer.
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()


def bound_statements(app: Flask) -> None:
    """On PostgreSQL, each statement of ``app``'s connections ends after
    ``DATABASE_STATEMENT_TIMEOUT`` seconds, waits for locks included: for the web process
    (gunicorn.conf.py calls this in each worker), never for jobs or flask commands, which
    share the app factory (and ``wsgi.py``, through .flaskenv).

    Set with SQL on each new connection rather than as a libpq startup option: poolers such
    as PgBouncer refuse unknown startup parameters, and the option would replace any
    ``options`` the database URL gives. Connections opened before are closed."""
    seconds = int(app.config["DATABASE_STATEMENT_TIMEOUT"])
    with app.app_context():
        engine = db.engine
        if not seconds or engine.dialect.name != "postgresql":
            return

        def _bound(dbapi_connection: Any, connection_record: Any) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute(f"SET statement_timeout = {seconds * 1000}")
            dbapi_connection.commit()

        sa.event.listen(engine, "connect", _bound)
        engine.dispose()


def configure_sqlite(app: Flask) -> None:
    """Create the SQLite file's folder and turn on the pragmas the schema relies on."""
    url = sa.engine.make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() != "sqlite":
        return
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    if not sa.event.contains(sa.engine.Engine, "connect", _sqlite_pragmas):
        sa.event.listen(sa.engine.Engine, "connect", _sqlite_pragmas)
