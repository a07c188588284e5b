"""The HTTP answer for an upload's content: the bytes from disk, or a redirect to storage.

Served as inert as possible whatever they hold: the sniffed type, ``nosniff``, a
sandboxing CSP, and ``attachment`` for everything but product images. On S3 the answer is
a 302 to a presigned GET (at most 5 minutes) carrying the same type and disposition; a
bucket cannot add the other two headers, but it is another origin than the API's.
"""

from __future__ import annotations

import io
import logging
from typing import IO, cast

from flask import current_app, redirect, request, send_file
from werkzeug.wrappers import Response

from app.errors import NotFound, PreconditionFailed
from app.storage import ObjectNotFound, current_storage
from app.uploads.names import content_disposition
from app.uploads.service import Content

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = "default-src 'none'; sandbox"
PUBLIC_MAX_AGE = 24 * 3600


def respond(content: Content) -> Response:
    # Conditions first, whatever the storage: the ETag is the upload's own, so a presigned
    # redirect (S3) answers them as the bytes served here do. Not send_file(conditional=True):
    # Werkzeug's answer to a failed If-Match is a 412 carrying the file (and its cache
    # headers), and it offers byte ranges it then does not serve for a stream.
    if request.if_match and not (request.if_match.star_tag or request.if_match.contains(content.etag)):
        raise PreconditionFailed(
            "This file's ETag is not the one given in If-Match", headers={"ETag": f'"{content.etag}"'}
        )
    response: Response
    if request.if_none_match.contains_weak(content.etag) or request.if_none_match.star_tag:
        response = Response(status=304)
        response.set_etag(content.etag)
        return _finish(response, content)
    storage = current_storage()
    disposition = content_disposition(content.download_name, inline=content.inline)
    url = storage.presigned_get(
        content.key,
        expires_in=int(current_app.config["UPLOAD_DOWNLOAD_SECONDS"]),
        content_type=content.content_type,
        content_disposition=disposition,
    )
    if url is not None:
        response = redirect(url, 302)
        response.headers["Cache-Control"] = "no-store"  # the link expires
        return _inert(response)
    try:
        stream = storage.open(content.key)
    except ObjectNotFound as exc:
        log.error("the stored object %s of a ready upload is missing", content.key)
        raise NotFound("Upload not found") from exc
    assert isinstance(stream, io.IOBase)  # file:// storage opens real files
    response = send_file(cast(IO[bytes], stream), mimetype=content.content_type, etag=content.etag, conditional=False)
    response.headers["Content-Disposition"] = disposition
    return _finish(response, content)


def _finish(response: Response, content: Content) -> Response:
    # An upload's content never changes (a new file is a new upload).
    response.headers["Cache-Control"] = f"public, max-age={PUBLIC_MAX_AGE}" if content.public else "private, no-store"
    return _inert(response)


def _inert(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response
