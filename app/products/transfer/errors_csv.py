"""``errors.csv``: an import's rejected rows (``row, sku, field, message``), safe to open.

The cells quote what the file held (a SKU, an unknown column's name, a bad value), and
the sheet is meant to be opened in a spreadsheet, which runs a cell starting with ``=``
as a formula. So every cell is neutralised as OWASP's "CSV Injection" page says
(https://owasp.org/www-community/attacks/CSV_Injection):

- a cell starting with ``=``, ``+``, ``-``, ``@``, tab (0x09), carriage return (0x0D) or
  line feed (0x0A; the page's current list), after any ``'``, gets a single quote ``'``
  in front;
- every cell is wrapped in double quotes, and a double quote in it is doubled, so that a
  separator or a quote inside a cell can never start a new cell (whose first character
  would escape the check above).

Lines end with ``\\r\\n`` (``csv``'s default, RFC 4180). Unlike an export, this is a
report for people, not data to re-import: the quote it adds is not taken away again. An
export's CSV cells are neutralised the same way, and the import takes the quote away
again (``restore_neutralised``), so that an export's round trip stays exact.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence

from app.products.transfer.rows import RowError

HEADER = ("row", "sku", "field", "message")
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")
CONTENT_TYPE = "text/csv; charset=utf-8"


def neutralise(cell: str) -> str:
    """``cell`` with a ``'`` in front when a spreadsheet would read it as a formula. A
    cell whose leading quotes hide a trigger (``'=x``) gets one more, so that
    ``restore_neutralised`` gives back exactly what was written (an export comes back)."""
    return "'" + cell if cell.lstrip("'").startswith(FORMULA_TRIGGERS) else cell


def restore_neutralised(cell: str) -> str:
    """What ``neutralise`` was given: the one ``'`` in front of a (quoted) trigger goes;
    any other cell is read as it is."""
    return cell[1:] if cell.startswith("'") and cell.lstrip("'").startswith(FORMULA_TRIGGERS) else cell


def error_lines(errors: Iterable[RowError]) -> Iterator[str]:
    """The header, then one CSV line per error (``\\r\\n`` ended), for a streamed response."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL)

    def line(cells: Sequence[str]) -> str:
        writer.writerow([neutralise(cell) for cell in cells])
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(HEADER)
    for error in errors:
        yield line((str(error.row), error.sku or "", error.field, error.message))
