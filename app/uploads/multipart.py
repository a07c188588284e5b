"""A ``multipart/form-data`` body read part by part, straight from the request stream.

Werkzeug's form parser would hand over a finished ``request.files`` (spooled to a temp
file, the whole body read first). Here the same sans-IO decoder is driven by hand: each
part is a file-like object whose bytes are read from the socket as the caller reads them,
so a file goes to storage while it arrives, and the caller knows the fields that came
before it. Nothing but the current chunk is held in memory.
"""

from __future__ import annotations

from collections.abc import Iterator

from werkzeug.sansio.multipart import Data, Epilogue, Event, Field, File, MultipartDecoder, NeedData, Preamble

from app.errors import BadRequest, ValidationFailed
from app.storage import Readable

READ_SIZE = 64 * 1024
MAX_PARTS = 16


class FormPart:
    """One part: a field (``filename`` is None) or a file; ``read`` pulls its bytes."""

    def __init__(self, form: StreamingForm, name: str, filename: str | None) -> None:
        self._form = form
        self.name = name
        self.filename = filename
        self._buffer = bytearray()
        self._done = False

    @property
    def is_file(self) -> bool:
        return self.filename is not None

    def read(self, size: int = -1, /) -> bytes:
        """Exactly ``size`` bytes unless the part ends first (b"" at its end); -1: one chunk.

        Full reads matter: a short read would look like the end of the file to a consumer
        that sizes multipart chunks by it (boto3's uploader does).
        """
        wanted = READ_SIZE if size < 0 else size
        while len(self._buffer) < wanted and not self._done:
            data, more = self._form._next_data()
            self._buffer += data
            self._done = not more
        chunk = bytes(self._buffer[:wanted])
        del self._buffer[:wanted]
        return chunk

    def read_text(self, *, max_length: int) -> str:
        """The whole (small) field as UTF-8 text; a 422 naming it if longer or not text."""
        data = self.read(max_length * 4 + 1)  # UTF-8: at most 4 bytes a character
        too_long = ValidationFailed(
            details=[{"field": self.name, "message": f"Longer than maximum length {max_length}."}]
        )
        if not self._done:
            raise too_long
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationFailed(details=[{"field": self.name, "message": "Must be UTF-8 text."}]) from exc
        if len(text) > max_length:
            raise too_long
        return text

    def drain(self) -> None:
        while not self._done:
            _, more = self._form._next_data()
            self._done = not more
        self._buffer.clear()


class StreamingForm:
    """Iterate the parts of a multipart body in the order they were sent."""

    def __init__(self, stream: Readable, boundary: str) -> None:
        if not boundary or len(boundary) > 200:
            raise BadRequest("Content-Type must be multipart/form-data with a boundary")
        self._stream = stream
        self._decoder = MultipartDecoder(boundary.encode("latin-1", "replace"), max_parts=MAX_PARTS)
        self._eof = False

    def __iter__(self) -> Iterator[FormPart]:
        while True:
            event = self._next_event()
            if isinstance(event, Epilogue):
                return
            if isinstance(event, Field | File):
                if not event.name:
                    raise BadRequest("Malformed multipart body: a part has no name")
                part = FormPart(self, event.name, event.filename if isinstance(event, File) else None)
                yield part
                part.drain()
            elif not isinstance(event, Preamble):
                raise BadRequest("Malformed multipart body")

    def _next_data(self) -> tuple[bytes, bool]:
        event = self._next_event()
        if not isinstance(event, Data):
            raise BadRequest("Malformed multipart body")
        return event.data, event.more_data

    def _next_event(self) -> Event:
        try:
            while True:
                event = self._decoder.next_event()
                if not isinstance(event, NeedData):
                    return event
                chunk = b"" if self._eof else self._stream.read(READ_SIZE)
                self._eof = not chunk
                self._decoder.receive_data(chunk or None)
        except ValueError as exc:  # includes undecodable part headers
            raise BadRequest("Malformed multipart body") from exc
