"""/uploads: files in (through the API or straight to storage), checked, listed and served."""

from __future__ import annotations

import http
import uuid
from typing import Any

from flask import request
from flask.views import MethodView
from werkzeug.wrappers import Response

from app.api import Blueprint
from app.errors import BadRequest
from app.openapi import Direction, declare
from app.pagination import Page
from app.permissions import current_principal, optional_principal
from app.security import allows_large_body
from app.uploads import receiving, service, serving
from app.uploads.models import Upload
from app.uploads.multipart import StreamingForm
from app.uploads.permissions import authenticated, can_upload, rate_limited
from app.uploads.schemas import (
    ContentArgsSchema,
    ContentHeadersSchema,
    DirectUploadCreateSchema,
    DirectUploadSchema,
    TargetFormSchema,
    UploadFormSchema,
    UploadQueryArgsSchema,
    UploadSchema,
)
from app.uploads.urls import URL_PREFIX, upload_path

blp = Blueprint("uploads", __name__, url_prefix=URL_PREFIX, description="Files in, checked, and served safely")

# The component response of a 413 (named by Python's HTTPStatus, which renamed it in 3.13).
TOO_LARGE = http.HTTPStatus(413).name
# Room for the multipart framing around the largest file a purpose allows.
FORM_OVERHEAD = 64 * 1024
for _schema in (UploadFormSchema, TargetFormSchema):
    declare(_schema, Direction.REQUEST)


def _multipart_body(schema: type[UploadFormSchema] | type[TargetFormSchema]) -> dict[str, Any]:
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


def _streaming_form() -> StreamingForm:
    """The request body as a multipart stream (parsed as it is read, never buffered whole)."""
    if request.mimetype != "multipart/form-data":
        raise BadRequest("Content-Type must be multipart/form-data")
    request.max_content_length = receiving.largest_limit() + FORM_OVERHEAD
    return StreamingForm(request.stream, request.mimetype_params.get("boundary", ""))


_BINARY = {"schema": {"type": "string", "format": "binary"}}
# The bytes come with the type sniffed at upload (the ones below). application/octet-stream
# leads the list so that clients generated from the document read every one of them as
# bytes (generators parse a response by the first media type they know); a client that
# parses by the Content-Type it gets (openapi-fetch) finds JSON typed as any JSON value.
_CONTENT_ETAG = {"description": "The file's entity tag, for If-None-Match", "schema": {"type": "string"}}
CONTENT_RESPONSES = {
    200: {
        "headers": {
            "ETag": {**_CONTENT_ETAG, "required": True},
            "Content-Disposition": {
                "description": "inline for product images, attachment for anything else; with the file's name",
                "required": True,
                "schema": {"type": "string"},
            },
        },
        "content": dict.fromkeys(
            (
                "application/octet-stream",
                "image/png",
                "image/jpeg",
                "image/gif",
                "image/webp",
                "text/csv",
            ),
            _BINARY,
        )
        # A JSON file (an export, an import's file) is JSON to a client that parses it by
        # its type: any JSON value, not a string.
        | {"application/json": {"schema": {}}},
    },
    302: {
        "headers": {
            "Location": {
                "description": "A presigned storage URL (S3), valid for at most 5 minutes",
                "required": True,
                "schema": {"type": "string"},
            }
        }
    },
}


@blp.route("")
class Uploads(MethodView):
    @authenticated
    @blp.arguments(UploadQueryArgsSchema, location="query")
    @blp.response(200, UploadSchema(many=True))
    @blp.doc(operationId="list_uploads")
    def get(self, args: dict[str, Any]) -> Page[Upload]:
        """List your uploads (staff: everyone's), newest first."""
        return service.list_(args=args, viewer=current_principal())

    @allows_large_body  # the body is the file: MAX_CONTENT_LENGTH, not MAX_JSON_BYTES
    @rate_limited
    @can_upload
    @blp.response(201, UploadSchema)
    @blp.alt_response(413, response=TOO_LARGE)
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    @blp.doc(operationId="create_upload", requestBody=_multipart_body(UploadFormSchema))
    def post(self) -> tuple[Upload, int, dict[str, str]]:
        """Upload a file: multipart/form-data with purpose, then file.

        The file is streamed to storage while it is hashed and counted, and refused (413)
        as soon as it passes its purpose's limit. Its type is sniffed from its content:
        product images must be PNG, JPEG, GIF or WebP (then processed: status processing,
        then ready or failed), imports UTF-8 CSV with a header row or a JSON array (ready
        at once). Anything else is a 415, an empty file a 422.
        """
        upload = receiving.receive(owner_id=current_principal().id, form=_streaming_form())
        return upload, 201, {"Location": upload_path(upload.id)}


@blp.route("/direct")
class DirectUploads(MethodView):
    @rate_limited
    @can_upload
    @blp.arguments(DirectUploadCreateSchema)
    @blp.response(201, DirectUploadSchema)
    @blp.alt_response(413, response=TOO_LARGE)
    @blp.doc(operationId="create_direct_upload")
    def post(self, data: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Start a direct upload: where to send the file (then POST .../complete).

        Send a multipart/form-data POST to target.url with every field of target.fields,
        then file, before target.expires_at: on S3 a presigned POST policy for exactly
        this key and size, elsewhere the API's own signed endpoint.
        """
        upload, target = receiving.start_direct(owner_id=current_principal().id, data=data)
        return {"upload": upload, "target": target}, 201, {"Location": upload_path(upload.id)}


@blp.route("/<uuid:upload_id>")
class UploadItem(MethodView):
    @authenticated
    @blp.response(200, UploadSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(operationId="get_upload")
    def get(self, upload_id: uuid.UUID) -> Upload:
        """One upload (yours, or anyone's for staff)."""
        return service.get(upload_id=upload_id, viewer=current_principal())

    @authenticated
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT", description="A product shows this upload")
    @blp.doc(operationId="delete_upload")
    def delete(self, upload_id: uuid.UUID) -> None:
        """Delete an upload and its stored files (409 while a product uses it)."""
        service.delete(upload_id=upload_id, viewer=current_principal())


@blp.route("/<uuid:upload_id>/complete", methods=["POST"])
@rate_limited
@can_upload
@blp.response(200, UploadSchema)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT", description="Already completed, or nothing sent to the target yet")
@blp.alt_response(413, response=TOO_LARGE)
@blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@blp.doc(operationId="complete_upload")
def complete(upload_id: uuid.UUID) -> Upload:
    """Finish a direct upload: the stored file is checked as POST /uploads checks one.

    A file that fails a check (size, type, content) is deleted with its upload.
    """
    return receiving.complete(upload_id=upload_id, viewer=current_principal())


@blp.route("/<uuid:upload_id>/target", methods=["POST"])
@allows_large_body
@rate_limited
@blp.response(204)
@blp.alt_response(403, response="FORBIDDEN", description="The key or policy is invalid or has expired")
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
@blp.alt_response(413, response=TOO_LARGE)
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@blp.doc(operationId="upload_to_target", security=[], requestBody=_multipart_body(TargetFormSchema))
def target(upload_id: uuid.UUID) -> None:
    """A direct upload's target when storage is not S3 (the policy field authenticates it).

    Clients do not build this: it is the url of a target from POST /uploads/direct.
    """
    receiving.receive_at_target(upload_id=upload_id, form=_streaming_form())


@blp.route("/<uuid:upload_id>/content")
class UploadContent(MethodView):
    @blp.arguments(ContentArgsSchema, location="query")
    @blp.arguments(ContentHeadersSchema, location="headers")
    @blp.response(200, description="The file (product images inline, anything else as an attachment)")
    @blp.alt_response(302, description="On S3: the file is at a presigned URL", success=True)
    @blp.alt_response(
        304,
        description="Not Modified: the If-None-Match ETag is current",
        headers={"ETag": _CONTENT_ETAG},
        success=True,
    )
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(412, response="PRECONDITION_FAILED", description="If-Match names another file")
    @blp.alt_response(409, response="CONFLICT", description="INVALID_STATE: not ready yet")
    # No ``security``: anyone may call it. A token sent is read (staff see more), and must
    # be valid. (``security: [{}, bearerAuth]`` would say so too, but openapi-python-client
    # then demands an AuthenticatedClient of anonymous callers.)
    @blp.alt_response(401, response="UNAUTHORIZED", description="A token was sent and is not valid")
    @blp.doc(operationId="get_upload_content", responses=CONTENT_RESPONSES)
    def get(self, args: dict[str, Any], _conditions: dict[str, str], upload_id: uuid.UUID) -> Response:
        """The file's bytes: a product image (or ?variant= thumbnail) for anyone, anything else
        for its owner and staff."""
        content = service.content(upload_id=upload_id, variant=args.get("variant"), viewer=optional_principal())
        return serving.respond(content)
