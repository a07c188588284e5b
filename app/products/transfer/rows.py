"""The values that pass between the stages of an import: read → validated → written.

``reading`` yields ``RawRow``s from the file; ``validation`` turns each into a ``ValidRow`` or
``RowError``s (the rules of ``POST /products``) and resolves category slugs per batch;
``writing`` writes a batch and says, row by row, what happened. The runner strings them
together, checkpointing after every batch.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The import file's columns, in the order an export writes them.
COLUMNS = (
    "sku",
    "name",
    "description",
    "price",
    "compare_at_price",
    "stock",
    "low_stock_threshold",
    "categories",
    "is_active",
    "image_upload_id",
)
# Required in every file and row. ``name`` and ``price`` are required to create a product
# (``writing.REQUIRED_ON_CREATE``): an update (a stock-only feed, say) needs neither.
REQUIRED_COLUMNS = ("sku",)
CATEGORY_SEPARATOR = "|"
# ``field`` of an error that concerns the row as a whole (a malformed JSON element, say).
ROW_FIELD = "row"


class Mode(enum.StrEnum):
    UPSERT = "upsert"  # update existing SKUs, create the rest
    CREATE = "create"  # an existing SKU is an error on that row


class ErrorPolicy(enum.StrEnum):
    SKIP_INVALID_ROWS = "skip_invalid_rows"
    REJECT_ALL = "reject_all"


@dataclass(frozen=True)
class RowError:
    row: int  # the CSV record's first line in the file, or the JSON element's 1-based index
    sku: str | None  # as given (stripped), when the row had one
    field: str  # a column name, or ROW_FIELD
    message: str


class RowSource(enum.StrEnum):
    """What kind of file a row came from, which decides how its values are read."""

    CSV = "csv"  # every value is a cell's text, converted by ``validation`` to what the schema takes
    JSON = "json"  # values are typed by JSON already and reach the schema as they are


@dataclass(frozen=True)
class RawRow:
    """One record as read: column → value (CSV: strings; JSON: whatever the element held).

    Only the columns the record has are keys: an absent column changes nothing on update.
    ``problem``: what makes the record unusable as a whole (a CSV record with the wrong
    number of cells, a JSON element that is not an object or has an unknown key); the
    validator reports it as one ``RowError`` on ``ROW_FIELD`` and judges nothing else.
    """

    number: int
    values: Mapping[str, Any]
    source: RowSource = RowSource.CSV
    problem: str | None = None


@dataclass
class ValidRow:
    """A record that passed the schema: product columns → Python values.

    ``fields`` holds only the columns present in the record (never ``sku``, never
    ``categories``), so a writer can tell "absent" (leave it) from "given" (set it).
    """

    number: int
    sku: str  # normalised (upper case), as stored
    fields: dict[str, Any]
    category_slugs: list[str] | None  # None: the column is absent
    category_ids: list[uuid.UUID] | None = None  # filled by ``validation.resolve_references``

    @property
    def present(self) -> frozenset[str]:
        """What this row sets: its fields, plus ``categories`` when given."""
        extra = {"categories"} if self.category_slugs is not None else set()
        return frozenset(self.fields) | extra


@dataclass
class BatchOutcome:
    """What writing one batch did (or, in a dry run, would do)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    changed_ids: list[uuid.UUID] = field(default_factory=list)  # products created or updated
