"""Reading import files: headers, row numbers, ragged rows, JSON elements, streaming."""

from __future__ import annotations

import codecs
import io
import itertools
import re
import tracemalloc
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from app.products.transfer.reading import FileRejected, read_rows
from app.products.transfer.rows import COLUMNS, ROW_FIELD, RawRow, RowError, RowSource
from app.products.transfer.validation import validate
from app.uploads import checks
from app.uploads.checks import CSV, JSON, Utf8Reader
from tests.imports.files import Generated, csv_rows, generated_csv, generated_json, json_rows

ALL_COLUMNS = ", ".join(COLUMNS)


def rejection(content: str | bytes, content_type: str = CSV) -> str:
    data = content.encode() if isinstance(content, str) else content
    with pytest.raises(FileRejected) as caught:
        list(read_rows(io.BytesIO(data), content_type=content_type))
    return caught.value.message


# --- CSV header -------------------------------------------------------------------------


@pytest.mark.parametrize("step", [None, 1, 2])
def test_a_bom_never_renames_the_first_column(step: int | None) -> None:
    text = "sku,name,price\nMUG-1,Mug,9.99\n"
    with_bom = csv_rows(codecs.BOM_UTF8 + text.encode(), step=step)
    assert with_bom == csv_rows(text)
    assert with_bom == [RawRow(number=2, values={"sku": "MUG-1", "name": "Mug", "price": "9.99"})]


def test_a_file_that_is_only_a_bom_and_a_header_has_no_rows() -> None:
    assert csv_rows(codecs.BOM_UTF8 + b"sku,name,price\r\n", step=3) == []


def test_header_names_match_in_any_case_and_with_spaces_around() -> None:
    rows = csv_rows(" SKU ,Name,\tPRICE\t, Is_Active\nMUG-1,Mug,9.99,true\n")
    assert rows[0].values == {"sku": "MUG-1", "name": "Mug", "price": "9.99", "is_active": "true"}


def test_columns_may_come_in_any_order_and_only_the_given_ones_are_keys() -> None:
    rows = csv_rows("price,stock,name,sku\n9.99,3,Mug,MUG-1\n")
    assert rows[0].values == {"price": "9.99", "stock": "3", "name": "Mug", "sku": "MUG-1"}


def test_an_unknown_column_rejects_the_file_naming_it() -> None:
    assert rejection("sku,name,price,colour\nMUG-1,Mug,9.99,red\n") == (
        f"Unknown column 'colour'; the columns are: {ALL_COLUMNS}."
    )


def test_a_misspelt_sku_column_is_both_unknown_and_missing() -> None:
    assert rejection("Skew,name,price\n") == (
        f"Unknown column 'Skew'; the columns are: {ALL_COLUMNS}. Missing required column 'sku'."
    )


def test_only_the_sku_column_is_required_a_stock_only_file_is_read() -> None:
    """``name`` and ``price`` are needed to create a product, not to update one: a stock
    feed names SKUs and stock only (a row for a new SKU is rejected when it is written)."""
    assert [row.values for row in csv_rows("sku,stock\nMUG-1,7\n")] == [{"sku": "MUG-1", "stock": "7"}]


def test_a_column_named_twice_rejects_the_file() -> None:
    assert rejection("sku,name,price,SKU\n") == "The header names 'SKU' twice."


@pytest.mark.parametrize("content", ["", "\n\nsku,name,price\n", "sku,,name,price\n", "\ufeff"])
def test_a_file_without_a_header_naming_every_column_is_rejected(content: str) -> None:
    assert rejection(content) == "A CSV import needs a header row naming every column."


# --- CSV records ------------------------------------------------------------------------


def test_a_row_number_is_the_file_line_the_record_starts_on() -> None:
    text = (
        "sku,name,price,description\r\n"  # 1
        "A-1,One,1.00,plain\r\n"  # 2
        'B-2,Two,2.00,"first line\r\n'  # 3
        "second line\r\n"  # 4
        'third line"\r\n'  # 5
        "\r\n"  # 6: blank, skipped
        ",,,\r\n"  # 7: blank cells only, skipped
        "C-3,Three,3.00,x\n"  # 8 (an LF alone ends a line too)
        'D-4,Four,4.00,"a lone CR\rinside"\r'  # 9 (and a CR alone)
        "E-5,Five,5.00,last"  # 11: no line end at the end of the file
    )
    rows = csv_rows(text)
    assert [(r.number, r.values["sku"]) for r in rows] == [(2, "A-1"), (3, "B-2"), (8, "C-3"), (9, "D-4"), (11, "E-5")]
    assert rows[1].values["description"] == "first line\r\nsecond line\r\nthird line"
    assert rows[3].values["description"] == "a lone CR\rinside"


@pytest.mark.parametrize("step", [None, 1])
def test_only_cr_and_lf_end_lines_as_csv_counts_them(step: int | None) -> None:
    # Form feeds and Unicode line separators are text in a cell: they neither split a
    # record nor move the numbers of later ones (str.splitlines would do both).
    text = "sku,name,price\r\nA-1,Page\x0cbreak,1.00\r\nB-2,Line\u2028sep\x85nel,2.00\r\nC-3,Three,3.00\r\n"
    rows = csv_rows(text, step=step)
    assert [(r.number, r.values["name"]) for r in rows] == [
        (2, "Page\x0cbreak"),
        (3, "Line\u2028sep\x85nel"),
        (4, "Three"),
    ]
    assert all(r.problem is None for r in rows)


def test_a_crlf_split_between_two_reads_is_one_line_end() -> None:
    text = "sku,name,price\r\n" + "".join(f"S-{i},N{i},1.00\r\n" for i in range(2, 50))
    rows = csv_rows(text, step=1)
    assert [r.number for r in rows] == list(range(2, 50))


def test_a_long_line_is_searched_for_its_end_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Searching the whole unfinished line again after each 64 KB read made a one-line
    # file of N bytes cost N squared: minutes of a web worker for a 50 MB upload.
    searched: list[int] = []
    line_end = checks._LINE_END

    class Counting:
        def finditer(self, text: str) -> Iterator[re.Match[str]]:
            searched.append(len(text))
            return line_end.finditer(text)

    monkeypatch.setattr(checks, "_LINE_END", Counting())
    long_line = "x" * (2 * 1024 * 1024) + "\r\n"
    content = ("sku,name\r\n" + long_line + "A-1,Mug\r").encode()
    assert list(Utf8Reader(io.BytesIO(content)).lines()) == ["sku,name\r\n", long_line, "A-1,Mug\r"]
    assert sum(searched) <= len(content) + len(searched)  # each read once (a held "\r" twice)


def test_json_nested_deeper_than_a_row_rejects_the_file_without_building_it() -> None:
    assert rejection(b"[" * 10_000 + b"]" * 10_000, JSON) == (
        "Not valid JSON for an import: nested more than 16 levels deep."
    )
    rows = json_rows('[{"sku": "A-1", "categories": [["a"], {"b": [1]}]}, [[]], 2]')
    assert [r.values.get("categories") for r in rows] == [[["a"], {"b": [1]}], None, None]
    assert [r.problem for r in rows[1:]] == [
        "Expected an object, found an array.",
        "Expected an object, found a number.",
    ]


def test_a_ragged_row_is_read_with_a_problem_that_becomes_a_row_error() -> None:
    rows = csv_rows("sku,name,price\nA-1,Mug\nB-2,Lamp,9.99,extra\nC-3,Cup,1.00\n")
    assert [(r.number, r.problem) for r in rows] == [
        (2, "Expected 3 cells, found 2."),
        (3, "Expected 3 cells, found 4."),
        (4, None),
    ]
    assert rows[0].values == {"sku": "A-1", "name": "Mug"}
    assert validate(rows[0]) == [RowError(row=2, sku="A-1", field=ROW_FIELD, message="Expected 3 cells, found 2.")]
    assert validate(rows[1]) == [RowError(row=3, sku="B-2", field=ROW_FIELD, message="Expected 3 cells, found 4.")]


def test_a_broken_csv_yields_the_rows_before_it_then_rejects_the_file_with_the_line() -> None:
    stream = io.BytesIO(b'sku,name,price\nA-1,Mug,1.00\nB-2,"Lamp"x,2.00\nC-3,Cup,3.00\n')
    rows = read_rows(stream, content_type=CSV)
    assert next(rows).number == 2
    with pytest.raises(FileRejected) as caught:
        next(rows)
    assert caught.value.message == "Not a valid CSV file (line 3): ',' expected after '\"'"


def test_bytes_that_are_not_utf8_reject_the_file() -> None:
    assert rejection("sku,name,price\nA-1,Café,1.00\n".encode("latin-1")) == "Not UTF-8 text (save the file as UTF-8)."


def test_a_file_of_another_type_is_rejected() -> None:
    assert rejection(b"x", "text/plain") == "Not an import file type: text/plain (a CSV or JSON file is expected)."


# --- JSON -------------------------------------------------------------------------------


def test_json_rows_are_numbered_from_one_and_keep_the_keys_they_have() -> None:
    rows = json_rows('[{"sku": "A-1", "name": "Mug", "price": "9.99"}, {"sku": "B-2", "stock": 3}]')
    assert rows == [
        RawRow(number=1, values={"sku": "A-1", "name": "Mug", "price": "9.99"}, source=RowSource.JSON),
        RawRow(number=2, values={"sku": "B-2", "stock": 3}, source=RowSource.JSON),
    ]


def test_json_numbers_are_exact_never_floats() -> None:
    (row,) = json_rows(
        '[{"price": 19.99, "compare_at_price": "19.99", "stock": 0.1, "low_stock_threshold": 0.2,'
        ' "sku": 12, "name": 1e2, "description": 5.0}]'
    )
    values = row.values
    assert values["price"] == Decimal("19.99") and isinstance(values["price"], Decimal)
    assert values["compare_at_price"] == "19.99"
    assert values["stock"] + values["low_stock_threshold"] == Decimal("0.3")  # 0.30000000000000004 as floats
    assert values["sku"] == 12 and type(values["sku"]) is int
    assert values["name"] == Decimal("100")
    assert values["description"] == Decimal("5.0")
    assert not any(isinstance(value, float) for value in values.values())


def test_a_json_element_that_is_not_an_object_is_a_row_problem() -> None:
    rows = json_rows('[[1], "A-1", 3, true, null, {"sku": "B-2"}]')
    assert [(r.number, r.problem) for r in rows] == [
        (1, "Expected an object, found an array."),
        (2, "Expected an object, found a string."),
        (3, "Expected an object, found a number."),
        (4, "Expected an object, found true."),
        (5, "Expected an object, found null."),
        (6, None),
    ]
    assert validate(rows[0]) == [
        RowError(row=1, sku=None, field=ROW_FIELD, message="Expected an object, found an array.")
    ]


def test_a_json_key_that_is_not_a_column_is_a_row_problem_naming_it() -> None:
    (row,) = json_rows('[{"sku": "A-1", "SKU": "a-1", "name": "Mug", "price": "9.99", "colour": "red"}]')
    message = f"Unknown keys 'SKU', 'colour'; the keys are: {ALL_COLUMNS}."
    assert row.problem == message
    assert validate(row) == [RowError(row=1, sku="A-1", field=ROW_FIELD, message=message)]


def test_a_json_key_given_twice_is_a_row_problem_not_a_silent_choice() -> None:
    """``{"sku": "J-009", …, "sku": "J-010"}``: which SKU the file meant is anyone's guess
    (a dict keeps the last): the row is refused, naming the key. A key repeated deeper
    down, or in another row, is no repeat."""
    rows = json_rows(
        '[{"sku": "J-009", "name": "Mug", "price": "9.99", "sku": "J-010", "price": "1.00"},'
        ' {"sku": "J-011", "name": "Cup", "price": "2.00", "categories": ["a", "b"]},'
        ' {"sku": "J-012", "name": "Cup", "price": "2.00"}]'
    )
    assert [row.problem for row in rows] == ["The keys 'sku', 'price' are given twice.", None, None]
    assert validate(rows[0]) == [
        RowError(row=1, sku="J-010", field=ROW_FIELD, message="The keys 'sku', 'price' are given twice.")
    ]
    (unknown_and_twice,) = json_rows('[{"sku": "A-1", "sku": "A-2", "colour": "red"}]')
    assert unknown_and_twice.problem == (
        f"Unknown key 'colour'; the keys are: {ALL_COLUMNS}. The key 'sku' is given twice."
    )


def test_json_with_a_bom_and_leading_space_is_read() -> None:
    rows = json_rows(codecs.BOM_UTF8 + b' \n [{"sku": "A-1"}]')
    assert [r.values for r in rows] == [{"sku": "A-1"}]


@pytest.mark.parametrize("content", ['{"item": {"sku": "A-1"}}', "", "  "])
def test_json_that_is_not_an_array_is_rejected(content: str) -> None:
    assert rejection(content, JSON) == "A JSON import must be an array of objects."


def test_broken_json_yields_the_rows_before_it_then_rejects_the_file() -> None:
    rows = read_rows(io.BytesIO(b'[{"sku": "A-1"}, {"sku": "B-2",'), content_type=JSON)
    assert next(rows).values == {"sku": "A-1"}
    with pytest.raises(FileRejected) as caught:
        next(rows)
    assert caught.value.message.startswith("Not valid JSON: ")


def test_reading_again_gives_the_same_rows_so_a_resumed_import_can_skip_the_done_ones() -> None:
    text = 'sku,name,price\nA-1,One,1.00\n\nB-2,"Two\nlines",2.00\nC-3,Three,3.00\n'
    first = csv_rows(text)
    again = list(itertools.islice(read_rows(io.BytesIO(text.encode()), content_type=CSV), 2, None))
    assert again == first[2:] and again[0].number == 6


# --- bounded memory ---------------------------------------------------------------------

ROWS = 100_000
# Well under the file's own size (about 10 MB of CSV, 13 MB of JSON): it is never held whole.
PEAK_LIMIT = 4 * 1024 * 1024


@pytest.mark.parametrize("generate", [generated_csv, generated_json])
def test_the_generated_files_are_larger_than_the_memory_allowed(generate: Callable[[int], Iterator[bytes]]) -> None:
    assert sum(len(chunk) for chunk in generate(ROWS)) > 2 * PEAK_LIMIT


def test_a_100000_row_csv_is_read_in_bounded_memory() -> None:
    tracemalloc.start()
    try:
        count, last = 0, None
        for row in read_rows(Generated(generated_csv(ROWS)), content_type=CSV):
            count, last = count + 1, row
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == ROWS
    assert last is not None and last.number == ROWS + 1 and last.values["sku"] == f"SKU-{ROWS - 1:06d}"
    assert last.values["description"] == 'A description, with a comma "and quotes"'
    assert peak < PEAK_LIMIT, f"peak {peak / 1e6:.1f} MB"


def test_a_100000_element_json_array_is_read_in_bounded_memory() -> None:
    tracemalloc.start()
    try:
        count, last = 0, None
        for row in read_rows(Generated(generated_json(ROWS)), content_type=JSON):
            count, last = count + 1, row
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == ROWS
    assert last is not None and last.number == ROWS and last.values["sku"] == f"SKU-{ROWS - 1:06d}"
    assert last.values["description"] == 'A description, with "quotes"'
    assert peak < PEAK_LIMIT, f"peak {peak / 1e6:.1f} MB"
