"""What an uploaded file must be, judged by its bytes alone (never its name or claimed type).

The type is sniffed with libmagic from the first 8 KiB and must be on the purpose's
allow-list (an import that begins as a JSON array excepted: its parse decides), so
executables, archives, HTML, SVG, PDF and whatever libmagic does not recognise are
refused for every purpose. Import files are then decoded and parsed in one streaming
pass: UTF-8 (a BOM is fine), and a CSV with a header row or a JSON array. Images are
decoded later, by the media job (``app.uploads.images``).
"""

from __future__ import annotations

import codecs
import csv
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import ijson
import magic

from app.errors import UnsupportedMediaType, ValidationFailed
from app.storage import Readable
from app.uploads.models import Purpose

SNIFF_BYTES = 8 * 1024
READ_SIZE = 64 * 1024
# An import file is an array of flat objects (categories an array in them): 3 levels.
MAX_JSON_DEPTH = 16
_OPENING = frozenset({"start_map", "start_array"})
_CLOSING = frozenset({"end_map", "end_array"})
CSV = "text/csv"
JSON = "application/json"

IMAGE_TYPES = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp"}
# What libmagic calls a CSV or a JSON file (it depends on its version); the parse decides.
IMPORT_SNIFFED_TYPES = frozenset({"text/plain", "text/csv", "application/csv", "application/json"})
EXTENSIONS = {**IMAGE_TYPES, CSV: ".csv", JSON: ".json"}
PURPOSE_TYPES: dict[str, frozenset[str]] = {
    Purpose.PRODUCT_IMAGE: frozenset(IMAGE_TYPES),
    Purpose.IMPORT: IMPORT_SNIFFED_TYPES,
}
_ALLOWED_LABELS: dict[str, str] = {
    Purpose.PRODUCT_IMAGE: "PNG, JPEG, GIF or WebP images",
    Purpose.IMPORT: "UTF-8 CSV or JSON files",
}


def empty_file() -> ValidationFailed:
    return ValidationFailed(details=[{"field": "file", "message": "The file is empty."}])


def unreadable(message: str) -> ValidationFailed:
    return ValidationFailed(details=[{"field": "file", "message": message}])


def sniff(head: bytes) -> str:
    """libmagic's MIME type for the first bytes of a file."""
    mime: str = magic.from_buffer(head[:SNIFF_BYTES], mime=True)
    return mime.split(";", 1)[0].strip().lower()


def check_type(purpose: str, head: bytes) -> str:
    """The sniffed type when ``purpose`` allows it; a 415 otherwise (a 422 for nothing at all)."""
    if not head:
        raise empty_file()
    if purpose == Purpose.IMPORT and _json_array_head(head):
        # The whole parse decides (``check_import``): libmagic, reading 8 KiB of a longer
        # array, takes common markup in its strings (``<a href``, ``<table>``) for HTML.
        return JSON
    sniffed = sniff(head)
    if sniffed not in PURPOSE_TYPES.get(purpose, frozenset()):
        raise UnsupportedMediaType(
            f"The file's content is {sniffed}; {purpose} uploads must be {_ALLOWED_LABELS.get(purpose, 'nothing')}",
            details=[{"field": "file", "message": f"Not allowed for {purpose}: {sniffed}."}],
        )
    return sniffed


def _json_array_head(head: bytes) -> bool:
    return head.removeprefix(codecs.BOM_UTF8).lstrip().startswith(b"[")


class Utf8Reader:
    """Bytes from ``source``, checked to be UTF-8 (and free of NUL) as they pass, without a
    leading BOM; the upload check and the import reader (``app.products.transfer``) read through it."""

    def __init__(self, source: Readable) -> None:
        self._source = source
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._first = True

    def read(self, size: int = -1, /) -> bytes:
        if size == 0:  # (ijson asks, to learn whether the stream gives bytes or text)
            return b""
        data = self._source.read(READ_SIZE if size < 0 else size)
        while self._first and data and len(data) < len(codecs.BOM_UTF8) and codecs.BOM_UTF8.startswith(data):
            more = self._source.read(len(codecs.BOM_UTF8))  # a short read stopped inside a BOM
            if not more:
                break
            data += more
        try:
            text = self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise UnsupportedMediaType(
                "Import files must be UTF-8 text",
                details=[{"field": "file", "message": "Not UTF-8 text (save the file as UTF-8)."}],
            ) from exc
        if "\x00" in text:
            raise UnsupportedMediaType(
                "Import files must be text", details=[{"field": "file", "message": "Contains NUL bytes."}]
            )
        if self._first and data:
            self._first = False
            data = data.removeprefix(codecs.BOM_UTF8)
            if not data:  # the read held the BOM alone: an empty answer would mean the end
                return self.read(size)
        return data

    def lines(self) -> Iterator[str]:
        """The text, line by line, line ends kept, as ``csv`` wants them (``newline=""``).

        A line ends at ``\\n``, ``\\r\\n`` or ``\\r`` only, as ``csv`` counts lines:
        ``str.splitlines`` would also split at form feeds and Unicode separators, which
        would split an unquoted cell into two records and skew every later line number.
        Each read's text is searched once, so a line of any length costs time in
        proportion to its length (a line that spans reads is kept in pieces until it ends).
        """
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        unfinished: list[str] = []  # the pieces of a line whose end has not been read yet
        held = ""  # a final "\r", whose "\n" may come with the next read
        while True:
            data = self.read(READ_SIZE)
            text = held + decoder.decode(data, final=not data)
            held = ""
            if data and text.endswith("\r"):
                text, held = text[:-1], "\r"
            start = 0
            for match in _LINE_END.finditer(text):
                unfinished.append(text[start : match.end()])
                yield "".join(unfinished)
                unfinished.clear()
                start = match.end()
            if start < len(text):
                unfinished.append(text[start:])
            if not data:
                break
        if unfinished:
            yield "".join(unfinished)


_LINE_END = re.compile(r"\r\n|\r|\n")


def check_import(source: Readable, *, head: bytes) -> str:
    """Read a whole import file: ``text/csv`` or ``application/json`` if it decodes and parses."""
    text_head = head.removeprefix(codecs.BOM_UTF8).lstrip()
    if not text_head:
        raise unreadable("The file holds no data.")
    reader = Utf8Reader(source)
    if _json_array_head(head):
        _check_json_array(reader)
        return JSON
    if text_head.startswith(b"{"):
        raise unreadable("A JSON import must be an array of objects, not an object.")
    _check_csv(reader)
    return CSV


def _check_json_array(reader: Utf8Reader) -> None:
    try:
        for _event in json_events(reader):
            pass
    except ijson.JSONError as exc:
        # The first line only: the rest quotes the file.
        raise unreadable(f"Not valid JSON: {str(exc).splitlines()[0][:200]}") from exc


def json_events(reader: Readable) -> Iterator[tuple[int, str, Any]]:
    """ijson's events of the JSON text ``reader`` gives, each with the depth it leaves
    (how many arrays and objects are open after it); refused past ``MAX_JSON_DEPTH``.

    ``ijson.basic_parse``, not ``ijson.parse`` or ``ijson.items``: those build a path
    (``item.item.item…``) for every event, which for a file nested N deep costs memory
    and time in proportion to N squared (80 KB of ``[`` took gigabytes).
    """
    depth = 0
    events = ijson.basic_parse(_SurrogateEscapes(reader), buf_size=READ_SIZE, use_float=False)
    while True:
        try:
            event, value = next(events)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:  # yajl's own decoding of an escape it cannot encode
            raise ijson.JSONError("a \\u escape that is no character") from exc
        if event in _OPENING:
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise unreadable(f"Not valid JSON for an import: nested more than {MAX_JSON_DEPTH} levels deep.")
        elif event in _CLOSING:
            depth -= 1
        yield depth, event, value


# A JSON ``\\u`` escape of a UTF-16 surrogate, with the backslashes before it (an even run
# is escaped backslashes, and no escape).
_SURROGATE_ESCAPE = re.compile(rb"(\\+)u[dD]([0-9a-fA-F])[0-9a-fA-F]{2}")
_ESCAPE_BYTES = 6  # \uXXXX


class _SurrogateEscapes:
    """The bytes of JSON text from ``reader``, refusing a ``\\u`` escape of an unpaired
    surrogate (``\\ud800`` alone, ``\\udc00`` alone): no character is written so, and
    yajl, ijson's parser, would turn the first into ``?`` and fail on the second.

    Each read is searched once: a few bytes at its end (where an escape or its pair may
    continue in the next read, and any backslashes before them) wait for the next one."""

    def __init__(self, reader: Readable) -> None:
        self._reader = reader
        self._held = b""
        self._offset = 0  # where ``_held`` starts in the file
        self._paired_low_at = -1  # a low half known to complete the high one before it

    def read(self, size: int = -1, /) -> bytes:
        data = self._reader.read(size)
        if size == 0:
            return data
        text = self._held + data
        cut = len(text) if not data else max(0, len(text) - 2 * _ESCAPE_BYTES)
        while 0 < cut < len(text) and text[cut - 1 : cut] == b"\\":
            cut -= 1  # a run of backslashes stays whole: its length decides
        for match in _SURROGATE_ESCAPE.finditer(text):
            if match.start() >= cut:
                break
            if data and match.end() + _ESCAPE_BYTES > len(text):
                cut = match.start()  # its pair may be in the next read: decide it then
                break
            if len(match.group(1)) % 2 == 0:
                continue  # escaped backslashes, then plain text
            at = self._offset + match.end() - _ESCAPE_BYTES
            if match.group(2) in b"89abAB":  # a high half: the low one must follow at once
                pair = _SURROGATE_ESCAPE.match(text, match.end())
                if pair is None or len(pair.group(1)) != 1 or pair.group(2) not in b"cdefCDEF":
                    raise ijson.JSONError(f"an unpaired surrogate escape ({match.group(0)[-6:].decode()})")
                self._paired_low_at = at + _ESCAPE_BYTES
            elif at != self._paired_low_at:
                raise ijson.JSONError(f"an unpaired surrogate escape ({match.group(0)[-6:].decode()})")
        self._held = text[cut:]
        self._offset += cut
        return data


def _check_csv(reader: Utf8Reader) -> None:
    rows = csv.reader(reader.lines(), strict=True)
    try:
        header = next(rows, None)
        if not header or any(not cell.strip() for cell in header):
            raise unreadable("A CSV import needs a header row naming every column.")
        named = Counter(cell.strip().lower() for cell in header)
        repeated = sorted(name for name, times in named.items() if times > 1)
        if repeated:
            listed = ", ".join(repr(name) for name in repeated[:5])
            raise unreadable(f"The CSV header names a column twice: {listed} (names match without regard to case).")
        for _row in rows:
            pass
    except csv.Error as exc:
        raise unreadable(f"Not a valid CSV file (line {rows.line_num}): {exc}") from exc
