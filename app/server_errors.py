"""Requests gunicorn refuses before the app sees them, answered as the app answers errors.

gunicorn parses the request line and headers itself and answers what it cannot read (a
line over ``limit_request_line``, headers over ``limit_request_field_size``, bytes that
are not allowed in a request line, a malformed chunk) with an HTML page of its own. The
Procfile's web process (``gunicorn.conf.py``, in each worker once the app is loaded)
puts ``write_error`` in its place: the JSON envelope of docs/API.md, with the headers
every API answer has.
"""

from __future__ import annotations

import json
import secrets
import socket
from collections.abc import Callable

from flask import Flask

from app.errors import HTTP_CODES
from app.security import security_headers_for_errors

# Fixed texts, so that nothing of the refused request is echoed.
_MESSAGES = {
    400: "The request could not be read: its request line, headers or body framing are malformed.",
    403: "Request forbidden.",
    414: "The request line is too long.",
    417: "The Expect header is not supported.",
    431: "The request headers are too large.",
    500: "Internal server error.",
    501: "The request's transfer coding is not supported.",
}


ErrorWriter = Callable[[socket.socket, int, str, str], None]


def gunicorn_error_writer(app: Flask) -> ErrorWriter:
    """``gunicorn.util.write_error`` for ``app``: same arguments, an envelope instead of a page."""
    headers = security_headers_for_errors(app)

    def write_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
        code = HTTP_CODES.get(status_int, "BAD_REQUEST")
        message = _MESSAGES.get(status_int, _MESSAGES[400])
        request_id = secrets.token_hex(16)
        error = {"code": code, "message": message, "details": [], "request_id": request_id}
        body = json.dumps({"error": error}, separators=(",", ":")).encode() + b"\n"
        lines = [
            f"HTTP/1.1 {status_int} {reason}",
            "Connection: close",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Cache-Control: no-store",
            f"X-Request-ID: {request_id}",
            *(f"{name}: {value}" for name, value in headers),
        ]
        _send(sock, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    return write_error


def _send(sock: socket.socket, data: bytes) -> None:
    # As gunicorn's own writer: its sockets may be non-blocking.
    blocking = sock.gettimeout() != 0.0
    if not blocking:
        sock.setblocking(True)
    try:
        sock.sendall(data)
    finally:
        if not blocking:
            sock.setblocking(False)
