"""A test-only resource for exercising the shared core (lists, errors, jobs).

Its table lives on its own metadata, so it never shows up in the application's models or
migrations; the test suite creates it beside the migrated schema.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask.views import MethodView
from sqlalchemy.exc import DataError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, registry

from app.api import Blueprint
from app.db import NAMING_CONVENTION, db, new_id, utcnow
from app.db import UTCDateTime as UTCDateTimeType
from app.errors import NotFound
from app.extensions import redis_queues
from app.jobs import enqueue_after_commit, task
from app.pagination import CursorListArgsSchema, SortField, SortKey, paginate
from app.ratelimits import uploads_limit
from app.schema import Money, Schema, UTCDateTime
from app.security import allows_large_body


class TestBase(DeclarativeBase):
    registry = registry(
        metadata=sa.MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTimeType(), Decimal: sa.Numeric(12, 2), uuid.UUID: sa.Uuid()},
    )


class Widget(TestBase):
    __tablename__ = "test_widgets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(80), unique=True)
    price: Mapped[Decimal]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WidgetSchema(Schema):
    id = ma.fields.UUID()
    name = ma.fields.String()
    price = Money()
    created_at = UTCDateTime()


class WidgetCreateSchema(Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=80))
    price = Money(required=True)


class WidgetQuerySchema(CursorListArgsSchema):
    sort = SortField(allowed=("name", "price", "created_at"))
    min_price = Money()


blp = Blueprint("testing", __name__, url_prefix="/api/v1/_test", description="test-only endpoints")

SORTABLE = {"name": Widget.name, "price": Widget.price, "created_at": Widget.created_at}


@blp.route("/widgets")
class Widgets(MethodView):
    @blp.arguments(WidgetQuerySchema, location="query")
    @blp.response(200, WidgetSchema(many=True))
    @blp.doc(operationId="list_widgets")
    def get(self, args: dict[str, Any]) -> Any:
        """List widgets."""
        stmt = sa.select(Widget)
        if "min_price" in args:
            stmt = stmt.where(Widget.price >= args["min_price"])
        return paginate(stmt, args, sortable=SORTABLE, default_sort=[SortKey("created_at", True)], tiebreak=Widget.id)

    @blp.arguments(WidgetCreateSchema)
    @blp.response(201, WidgetSchema)
    @blp.doc(operationId="create_widget")
    def post(self, data: dict[str, Any]) -> Any:
        """Create a widget (a duplicate name trips the unique index)."""
        widget = Widget(**data)
        db.session.add(widget)
        db.session.flush()
        enqueue_after_commit("mail", record_widget, widget.name)
        db.session.commit()
        return widget, 201, {"Location": f"/api/v1/_test/widgets/{widget.id}"}


@blp.route("/widgets/<uuid:widget_id>")
class WidgetItem(MethodView):
    @blp.response(200, WidgetSchema)
    @blp.doc(operationId="get_widget")
    def get(self, widget_id: uuid.UUID) -> Any:
        """One widget."""
        widget = db.session.get(Widget, widget_id)
        if widget is None:
            raise NotFound("Widget not found")
        return widget

    @blp.response(204)
    @blp.doc(operationId="delete_widget")
    def delete(self, widget_id: uuid.UUID) -> None:
        """Delete a widget."""


@blp.route("/boom")
class Boom(MethodView):
    @blp.response(200)
    @blp.doc(operationId="boom")
    def get(self) -> Any:
        """Fail with an unexpected exception."""
        raise RuntimeError("internal detail: SELECT password_hash FROM users")


@blp.route("/data-error")
class DataErrorRoute(MethodView):
    @blp.response(200)
    @blp.doc(operationId="data_error")
    def get(self) -> Any:
        """Hand the database a value it refuses (a DataError), as unvalidated input would."""
        if db.engine.dialect.name == "postgresql":
            db.session.execute(sa.text("SELECT CAST(:value AS INTEGER)"), {"value": "not a number"})
        raise DataError("SELECT CAST(:value AS INTEGER)", {"value": "not a number"}, ValueError("invalid input"))


class BlobSchema(Schema):
    content = ma.fields.String(required=True)


class BlobEchoSchema(Schema):
    content = ma.fields.String()


@blp.route("/blobs", methods=["POST"])
@allows_large_body
@uploads_limit()
@blp.arguments(BlobSchema)
@blp.response(200, BlobEchoSchema)
@blp.doc(operationId="echo_blob")
def blobs(data: dict[str, Any]) -> Any:
    """Echo a large body, as an upload view takes one: exempt from MAX_JSON_BYTES, limited
    by RATELIMIT_UPLOADS."""
    return data


@blp.route("/folder/")
class Folder(MethodView):
    @blp.response(200)
    @blp.doc(operationId="get_folder")
    def get(self) -> Any:
        """A route with a trailing slash: Werkzeug redirects the one without."""
        return {"ok": True}


@task
def record_widget(name: str) -> None:
    """A job: proves enqueue-after-commit and the worker path (writes a Redis key)."""
    redis_queues.connection.sadd("test:widgets:recorded", name)
    logging.getLogger("tests.widgets").info("recorded widget %s", name)


@task
def fail_always(name: str) -> None:
    """A job that always fails: its failure must be retried and stay visible."""
    raise RuntimeError(f"cannot process {name}")
