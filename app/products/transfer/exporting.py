"""Writing an export: products in exactly the import file format, streamed.

Re-importing an export changes nothing: every column of ``COLUMNS`` is written, in that
order, as the import reads it back to the same values.

- CSV: a header row, then one record per product, as ``csv`` writes them (``excel``
  dialect: ``,``, cells quoted only when they must be, ``"`` doubled, lines ending with
  ``\\r\\n``, RFC 4180's line end, which every spreadsheet reads). Amounts are plain
  decimals with two places (``12.50``), ``None`` an empty cell, categories their slugs
  sorted and joined by ``|``, ``is_active`` ``true``/``false``.
- JSON: an array of objects with the same keys, one element a line: amounts as strings
  (``"12.50"``), categories an array of slugs (sorted), ``null`` for ``None``, numbers
  and booleans as JSON's.

UTF-8, no BOM. The file is written product by product (``export_chunks`` yields chunks
of about ``CHUNK_BYTES``), never built whole; ``ChunksReader`` (``app.storage``) turns
the chunks into the stream ``Storage.put_stream`` reads.

CSV cells a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``,
a tab or a line end) get a ``'`` in front (``errors_csv.neutralise``; OWASP's "CSV
Injection"): the catalog holds what staff and supplier files typed, and an export is
opened in spreadsheets. The import takes that ``'`` away again (``restore_neutralised``), so
the round trip stays exact. JSON is left as it is: no spreadsheet runs it.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.products.transfer.errors_csv import neutralise
from app.products.transfer.rows import CATEGORY_SEPARATOR, COLUMNS
from app.schema import money_text

EXPORT_FORMATS = ("csv", "json")
CONTENT_TYPES = {"csv": "text/csv", "json": "application/json"}
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class ExportedProduct:
    """One product as an export writes it: the import file's columns."""

    sku: str
    name: str
    description: str
    price: Decimal
    compare_at_price: Decimal | None
    stock: int
    low_stock_threshold: int
    category_slugs: Sequence[str]
    is_active: bool
    image_upload_id: uuid.UUID | None


def export_chunks(products: Iterable[ExportedProduct], *, fmt: str) -> Iterator[bytes]:
    """The export file of ``products`` in format ``fmt`` (``EXPORT_FORMATS``), as UTF-8 chunks."""
    if fmt == "csv":
        texts = _csv_texts(products)
    elif fmt == "json":
        texts = _json_texts(products)
    else:
        raise ValueError(f"unknown export format {fmt!r}; one of {EXPORT_FORMATS}")
    pending: list[bytes] = []
    size = 0
    for text in texts:
        data = text.encode("utf-8")
        pending.append(data)
        size += len(data)
        if size >= CHUNK_BYTES:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


def _csv_texts(products: Iterable[ExportedProduct]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(cells: Sequence[str]) -> str:
        writer.writerow([neutralise(cell) for cell in cells])
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(COLUMNS)
    for product in products:
        yield line(
            [
                product.sku,
                product.name,
                product.description,
                money_text(product.price),
                "" if product.compare_at_price is None else money_text(product.compare_at_price),
                str(product.stock),
                str(product.low_stock_threshold),
                CATEGORY_SEPARATOR.join(sorted(product.category_slugs)),
                "true" if product.is_active else "false",
                "" if product.image_upload_id is None else str(product.image_upload_id),
            ]
        )


def _json_texts(products: Iterable[ExportedProduct]) -> Iterator[str]:
    separator = "[\n"
    for product in products:
        element: dict[str, Any] = {
            "sku": product.sku,
            "name": product.name,
            "description": product.description,
            "price": money_text(product.price),
            "compare_at_price": None if product.compare_at_price is None else money_text(product.compare_at_price),
            "stock": product.stock,
            "low_stock_threshold": product.low_stock_threshold,
            "categories": sorted(product.category_slugs),
            "is_active": product.is_active,
            "image_upload_id": None if product.image_upload_id is None else str(product.image_upload_id),
        }
        yield separator + json.dumps(element, ensure_ascii=False)
        separator = ",\n"
    yield "[]\n" if separator == "[\n" else "\n]\n"
