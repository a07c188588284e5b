"""errors.csv: every cell neutralised against formula injection (OWASP "CSV Injection")."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pytest

from app.products.transfer.errors_csv import error_lines, neutralise, restore_neutralised
from app.products.transfer.rows import RowError

# OWASP's list: = + - @, tab (0x09), carriage return (0x0D), line feed (0x0A).
DANGEROUS = ["=1+2", "+1", "-1", "@SUM(A1:A9)", "\t=1+2", "\r=1+2", "\n=1+2", "=", "-"]
SAFE = ["MUG-1", "sku", "Must not be blank.", "", "12", " =1+2", "'Tis", "a=b", "Crème brûlée"]


@pytest.mark.parametrize("cell", DANGEROUS)
def test_a_cell_starting_with_a_formula_trigger_gets_a_quote_in_front(cell: str) -> None:
    assert neutralise(cell) == "'" + cell


@pytest.mark.parametrize("cell", SAFE)
def test_any_other_cell_is_untouched(cell: str) -> None:
    assert neutralise(cell) == cell


def test_a_cell_whose_quotes_hide_a_trigger_gets_one_more() -> None:
    assert neutralise("'=1+2") == "''=1+2"
    assert neutralise("''@x") == "'" + "''@x"


@pytest.mark.parametrize("cell", [*DANGEROUS, *SAFE, "'=1+2", "''@x", "'"])
def test_every_neutralised_cell_is_restored_as_it_was(cell: str) -> None:
    assert restore_neutralised(neutralise(cell)) == cell


def text_of(errors: list[RowError]) -> str:
    return "".join(error_lines(errors))


def test_the_header_then_one_quoted_line_per_error() -> None:
    errors = [
        RowError(row=2, sku="MUG-1", field="price", message="At most two decimal places are allowed."),
        RowError(row=7, sku=None, field="row", message="Expected 10 cells, found 9."),
    ]
    assert text_of(errors) == (
        '"row","sku","field","message"\r\n'
        '"2","MUG-1","price","At most two decimal places are allowed."\r\n'
        '"7","","row","Expected 10 cells, found 9."\r\n'
    )


def test_every_cell_is_neutralised_sku_field_and_message() -> None:
    error = RowError(row=3, sku='=HYPERLINK("http://x")', field="@field", message="-2+3")
    assert text_of([error]).splitlines()[1] == '"3","\'=HYPERLINK(""http://x"")","\'@field","\'-2+3"'


@pytest.mark.parametrize(
    ("message", "written"),
    [
        # The page's own examples: quoted, the quote doubled, a ' in front.
        ('=1+2";=1+2', '"\'=1+2"";=1+2"'),
        ("=1+2'\" ;,=1+2", '"\'=1+2\'"" ;,=1+2"'),
    ],
)
def test_owasps_examples_are_written_as_the_page_shows(message: str, written: str) -> None:
    line = text_of([RowError(row=1, sku="A-1", field="name", message=message)]).splitlines()[1]
    assert line == f'"1","A-1","name",{written}'


def test_a_separator_or_quote_inside_a_cell_never_starts_a_new_cell() -> None:
    message = "Unknown column 'x,=cmd|\" /C calc\"!A0'; the columns are: sku"
    error = RowError(row=4, sku='A-1","=1+2', field="row", message=message)
    (header, cells) = list(csv.reader(io.StringIO(text_of([error]))))
    assert header == ["row", "sku", "field", "message"]
    assert cells == ["4", 'A-1","=1+2', "row", message]  # four cells, the text intact


def test_what_a_spreadsheet_reads_back_is_the_neutralised_text() -> None:
    errors = [RowError(row=n, sku=cell, field="name", message=cell) for n, cell in enumerate(DANGEROUS + SAFE, 2)]
    records = list(csv.reader(io.StringIO(text_of(errors), newline="")))[1:]
    assert [(r[1], r[3]) for r in records] == [(neutralise(c), neutralise(c)) for c in DANGEROUS + SAFE]
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r", "\n")) for r in records for cell in r)


def test_lines_are_made_as_the_errors_come() -> None:
    taken = []

    def errors() -> Iterator[RowError]:
        for n in range(2, 5):
            taken.append(n)
            yield RowError(row=n, sku="A-1", field="name", message="Must not be blank.")

    lines = error_lines(errors())
    assert next(lines) == '"row","sku","field","message"\r\n'
    assert taken == []
    assert next(lines).startswith('"2"') and taken == [2]
    assert len(list(lines)) == 2
