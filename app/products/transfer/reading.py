"""Reading an import file: its records as ``RawRow``s, streamed, in bounded memory.

The upload check (``app.uploads.checks.check_import``) has already seen that the file is
UTF-8 and parses: a CSV with a header row or a JSON array. This module reads it again,
record by record, through the same ``Utf8Reader`` (which drops a BOM, so a BOM never
renames the first column), and never holds more than one record and one read buffer.

- CSV: ``,`` separated, a header row naming the columns (matched after stripping, in any
  case); a missing required column or an unknown one makes the whole file unusable
  (``FileRejected``). A record's number is the file line it starts on (the header is line
  1; a quoted cell spanning lines pushes later numbers on); a record whose cells are all
  blank (an empty line, or only separators and spaces) is skipped. A record with another
  cell count than the header is still yielded, with a ``problem``.
- JSON: an array of objects; a row's number is its 1-based index. Keys are the column
  names exactly; numbers arrive as ``int`` or ``Decimal`` (never ``float``), so amounts
  stay exact. An element that is not an object, or has a key that is not a column, is
  yielded with a ``problem``.

Numbering is deterministic: reading a file again yields the same rows with the same
numbers, so a resumed import can skip the rows it has done.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import ijson
from ijson.common import ObjectBuilder

from app.errors import DomainError
from app.products.transfer.errors_csv import restore_neutralised
from app.products.transfer.rows import COLUMNS, REQUIRED_COLUMNS, RawRow, RowSource
from app.storage import Readable
from app.uploads.checks import CSV, JSON, READ_SIZE, Utf8Reader, json_events

CONTENT_TYPES = (CSV, JSON)
# How many unknown names a message lists before it says "and N more".
_NAMES_SHOWN = 5
_NAME_SHOWN_MAX = 60


class FileRejected(Exception):
    """The whole file is unusable; ``message`` says why, for the person who sent it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def read_rows(stream: Readable, *, content_type: str) -> Iterator[RawRow]:
    """The records of an import file of ``content_type`` (``text/csv`` or ``application/json``).

    A generator: the file is read as the rows are taken, and ``FileRejected`` is raised
    when the reading reaches what makes the file unusable (the header at once; a broken
    CSV or JSON further on, after the rows before it).
    """
    if content_type not in CONTENT_TYPES:
        raise FileRejected(f"Not an import file type: {content_type} (a CSV or JSON file is expected).")
    reader = Utf8Reader(stream)
    try:
        if content_type == CSV:
            yield from _csv_rows(reader)
        else:
            yield from _json_rows(reader)
    except DomainError as exc:  # Utf8Reader: not UTF-8, or a NUL
        reasons = [detail["message"] for detail in exc.details] or [exc.message]
        raise FileRejected(" ".join(reasons)) from exc


# --- CSV -------------------------------------------------------------------------------


def _csv_rows(reader: Utf8Reader) -> Iterator[RawRow]:
    records = csv.reader(reader.lines(), strict=True)
    try:
        header = next(records, [])
        columns = _columns(header)
        lines_read = records.line_num
        for cells in records:
            number, lines_read = lines_read + 1, records.line_num
            if all(not cell.strip() for cell in cells):
                continue
            problem = None
            if len(cells) != len(columns):
                problem = f"Expected {len(columns)} cells, found {len(cells)}."
            values = {column: restore_neutralised(cell) for column, cell in zip(columns, cells, strict=False)}
            yield RawRow(number=number, values=values, problem=problem)
    except csv.Error as exc:
        raise FileRejected(f"Not a valid CSV file (line {records.line_num}): {exc}") from exc


def _columns(header: Sequence[str]) -> list[str]:
    """The header's column names (stripped, lower case), or ``FileRejected`` saying what is wrong."""
    given = [cell.strip() for cell in header]
    if not given or not all(given):
        raise FileRejected("A CSV import needs a header row naming every column.")
    columns = [name.lower() for name in given]
    twice = [name for i, name in enumerate(given) if name.lower() in columns[:i]]
    if twice:
        raise FileRejected(f"The header names {_names(twice)} twice.")
    reasons = []
    unknown = [name for name in given if name.lower() not in COLUMNS]
    if unknown:
        noun = "column" if len(unknown) == 1 else "columns"
        reasons.append(f"Unknown {noun} {_names(unknown)}; the columns are: {', '.join(COLUMNS)}.")
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        noun = "column" if len(missing) == 1 else "columns"
        reasons.append(f"Missing required {noun} {_names(missing)}.")
    if reasons:
        raise FileRejected(" ".join(reasons))
    return columns


def _names(names: Sequence[str]) -> str:
    """``'a', 'b' and 3 more``: names from the file, quoted and shortened for a message."""
    shown = [
        f"'{name}'" if len(name) <= _NAME_SHOWN_MAX else f"'{name[:_NAME_SHOWN_MAX]}…'" for name in names[:_NAMES_SHOWN]
    ]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


# --- JSON ------------------------------------------------------------------------------


class _Replayed:
    """A stream whose first bytes were already read (to look at them): those, then the rest."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1, /) -> bytes:
        if self._head and size != 0:  # (ijson reads 0 bytes first, to learn the stream's type)
            head, self._head = self._head, b""
            return head
        return self._rest.read(size)


def _json_rows(reader: Utf8Reader) -> Iterator[RawRow]:
    head = b""
    while not head.lstrip() and (data := reader.read(READ_SIZE)):
        head += data
    # ``items(..., "item")`` would also find the key "item" of an object: look first.
    if not head.lstrip().startswith(b"["):
        raise FileRejected("A JSON import must be an array of objects.")
    try:
        for number, (element, repeated) in enumerate(_json_elements(_Replayed(head, reader)), start=1):
            yield _json_row(number, element, repeated)
    except ijson.JSONError as exc:
        # The first line only: the rest quotes the file.
        raise FileRejected(f"Not valid JSON: {str(exc).splitlines()[0][:200]}") from exc


# ``json_events`` depth of an element's own keys (the array is 1 deep, the element 2).
ELEMENT_KEY_DEPTH = 2


def _json_elements(stream: Readable) -> Iterator[tuple[Any, list[str]]]:
    """The elements of the array ``stream`` holds, one at a time, each built whole (an
    element is one row: small), with the keys it gives more than once (a dict would keep
    the last silently: which one the file meant is anyone's guess). Built from
    ``json_events``, which refuses a file nested deeper than any row is (``ijson.items``
    would cost the square of that depth)."""
    builder: ObjectBuilder | None = None
    keys: set[str] = set()
    repeated: list[str] = []
    for depth, event, value in json_events(stream):
        if depth == 0 or (depth == 1 and builder is None and event == "start_array"):
            continue  # the array itself opening or closing
        if builder is None:
            builder, keys, repeated = ObjectBuilder(), set(), []
        if event == "map_key" and depth == ELEMENT_KEY_DEPTH:
            if value in keys and value not in repeated:
                repeated.append(value)
            keys.add(value)
        builder.event(event, value)
        if depth == 1:  # back at the array's level: the element is whole
            yield builder.value, repeated
            builder = None


def _json_row(number: int, element: Any, repeated: Sequence[str] = ()) -> RawRow:
    if not isinstance(element, dict):
        kind = _json_kind(element)
        return RawRow(number=number, values={}, source=RowSource.JSON, problem=f"Expected an object, found {kind}.")
    values = {key: value for key, value in element.items() if key in COLUMNS}
    unknown = [key for key in element if key not in COLUMNS]
    problems = [p for p in (_unknown_keys(unknown), _repeated_keys(repeated)) if p is not None]
    return RawRow(number=number, values=values, source=RowSource.JSON, problem=" ".join(problems) or None)


def _repeated_keys(repeated: Sequence[str]) -> str | None:
    if not repeated:
        return None
    noun = "key" if len(repeated) == 1 else "keys"
    return f"The {noun} {_names(repeated)} {'is' if len(repeated) == 1 else 'are'} given twice."


def _unknown_keys(unknown: Sequence[str]) -> str | None:
    if not unknown:
        return None
    noun = "key" if len(unknown) == 1 else "keys"
    return f"Unknown {noun} {_names(unknown)}; the keys are: {', '.join(COLUMNS)}."


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return "a number"
    return "null"
