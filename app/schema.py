"""The base ``Schema`` and the field types every domain's schemas are made of.

One rule per JSON type, so that what the OpenAPI document says a body accepts is what the
app accepts: strings are strings, money is a decimal string, booleans in a JSON body are
``true``/``false`` only (query strings keep ``true/false/1/0``), and integers follow JSON
Schema (``5`` and ``5.0`` are the same integer; ``5.5``, ``"5"`` and ``true`` are not).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, cast

import marshmallow as ma


class Schema(ma.Schema):
    """Base schema: unknown fields are an error, output keys keep declaration order.

    ``SPARSE_FIELDSETS``: the resource can be asked for a subset of its fields
    (``?fields=``); the OpenAPI document then describes either representation.
    """

    SPARSE_FIELDSETS: ClassVar[bool] = False

    class Meta:
        unknown = ma.RAISE
        ordered = True


# No text a client sends may hold a NUL (PostgreSQL cannot store one): the parser refuses
# it everywhere, and the document says so on every string that has no stricter pattern.
NO_NUL_PATTERN = r"^[^\x00]*$"

# What str.strip() takes for whitespace (str.isspace()), spelled out for patterns: ``\s`` means
# another set in the document's regular expressions (ECMA-262 has U+FEFF, lacks U+001C-U+001F
# and U+0085), so a client's validator and this server would disagree on what is blank.
WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def not_blank_pattern(excluded: str) -> str:
    """A pattern for text of characters outside ``excluded`` (a character class's contents)
    that holds at least one character that is not whitespace: it means the same in ECMA-262
    and in Python's ``re``."""
    return rf"^[^{excluded}]*[^{excluded}{WHITESPACE}][^{excluded}]*$"


class TrimmedString(ma.fields.String):
    """A string that is not blank, stored without its surrounding whitespace.

    As documented: its length limits apply to the string as sent, and it must hold at
    least one character that is not whitespace (nor NUL).
    """

    PATTERN = not_blank_pattern(r"\x00")
    default_error_messages = {"blank": "Must not be blank."}

    def __init__(self, **kwargs: Any) -> None:
        metadata = dict(kwargs.pop("metadata", None) or {})
        metadata.setdefault("pattern", self.PATTERN)
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        text: str = super()._deserialize(value, attr, data, **kwargs)
        for validator in self.validators:
            if isinstance(validator, ma.validate.Length) and validator.max is not None and len(text) > validator.max:
                validator(text)  # raises its own message
        if not text.strip():
            raise self.make_error("blank")
        return text.strip()


class FullMatch(ma.validate.Regexp):
    """``Regexp`` over the whole value. marshmallow's uses ``re.match``, whose ``$`` also
    matches before a final newline: ``"SKU-1\\n"`` passed ``^[A-Z0-9-]+$``. A pattern here
    means what the OpenAPI document's ``pattern`` (ECMA-262) means: all of the value."""

    def __call__(self, value: Any) -> Any:
        regex = cast("re.Pattern[str]", self.regex)  # the app's patterns are all text
        if not isinstance(value, str) or regex.fullmatch(value) is None:
            raise ma.ValidationError(self._format_error(value))
        return value


class Boolean(ma.fields.Boolean):
    """A JSON boolean: ``true`` or ``false``, nothing that merely looks like one."""

    default_error_messages = {"invalid": "Must be true or false."}

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class QueryBoolean(ma.fields.Boolean):
    """A boolean in a query string: ``true``/``false`` or ``1``/``0``."""

    truthy: set[object] = {"true", "1"}
    falsy: set[object] = {"false", "0"}
    default_error_messages = {"invalid": "Must be true, false, 1 or 0."}


class Integer(ma.fields.Integer):
    """A JSON integer, as JSON Schema defines it: a number with no fractional part.

    ``337`` and ``337.0`` are both 337; ``337.5``, ``"337"`` and ``true`` are refused.
    """

    default_error_messages = {"invalid": "Must be a whole number."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return value


def utc_text(value: datetime) -> str:
    """A timestamp as the API writes it: ISO 8601 in UTC, milliseconds, ``Z``."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class UTCDateTime(ma.fields.DateTime):
    """Out: ISO 8601 in UTC with a ``Z`` suffix. In: what ``format: date-time`` says, an
    RFC 3339 date-time (a date, a time and an offset, ``Z`` or ``±hh:mm``), and no other
    ISO 8601 form (a date alone, a week date, a time without an offset)."""

    default_error_messages = {"invalid": "Not a valid date-time: RFC 3339 with an offset, e.g. 2026-01-31T09:30:00Z."}
    RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)", re.ASCII)

    def _serialize(self, value: datetime | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return utc_text(value)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> datetime:
        match = self.RFC3339.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        text = value.upper()
        fraction = match.group(1)  # ".123456789": Python keeps microseconds
        if fraction is not None and len(fraction) > 7:
            text = text.replace(fraction, fraction[:7])
        try:
            return datetime.fromisoformat(text).astimezone(UTC)
        except (ValueError, OverflowError) as exc:  # Feb 30; beyond year 1-9999 once in UTC
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE) from exc


_CENTS = Decimal("0.01")


def money_text(value: Decimal) -> str:
    """An amount as the API writes it: a decimal string with two places."""
    return str(Decimal(value).quantize(_CENTS))


class Money(ma.fields.Field[Decimal]):
    """A non-negative amount with at most two decimal places: a string in JSON, both ways.

    API.md: money is a decimal string, never a float. Input is plain ASCII decimal
    notation (``"19.99"``, ``"5"``); a JSON number, an exponent, digit separators or
    non-ASCII digits are refused. Output is always two places (``"19.99"``).
    """

    # The input grammar, exactly as the OpenAPI document states it; the other patterns
    # only choose the most helpful message for a value outside it.
    PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"
    OUTPUT_PATTERN = r"^[0-9]{1,10}\.[0-9]{2}$"
    _VALID = re.compile(PATTERN)
    _NUMERIC = re.compile(r"-?[0-9]+(\.[0-9]+)?")

    default_error_messages = {
        "invalid": 'Not a valid amount: a decimal string such as "19.99".',
        "places": "At most two decimal places are allowed.",
        "negative": "Must not be negative.",
        "too_large": "Must be less than 10000000000.",
    }

    def _serialize(self, value: Decimal | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return money_text(value)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Decimal:
        if isinstance(value, str) and self._VALID.fullmatch(value):
            return Decimal(value).quantize(Decimal("0.01"))
        if not isinstance(value, str) or not self._NUMERIC.fullmatch(value):
            raise self.make_error("invalid")
        if value.startswith("-"):
            raise self.make_error("negative")
        if "." in value and len(value.split(".", 1)[1]) > 2:
            raise self.make_error("places")
        raise self.make_error("too_large")


def text_problem(text: str) -> str | None:
    """What makes ``text`` unfit to store, as a field's error message, or None: a NUL
    (PostgreSQL text cannot hold one) or an unpaired surrogate (no encoding can)."""
    if "\x00" in text:
        return "Must not contain NUL characters."
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            return "Must be Unicode text: holds an unpaired surrogate (a lone \\ud800-\\udfff escape)."
    return None


def storable(text: str) -> str:
    """``text`` with what the database cannot store written as its JSON escape (a NUL as
    ``\\u0000``, an unpaired surrogate as ``\\udXXX``): for text the app keeps about input
    it refused (an error quoting a key, a SKU)."""
    if text_problem(text) is None:
        return text
    return text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode()


# --- conditional request headers --------------------------------------------------


class IfMatchSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    if_match = ma.fields.String(
        data_key="If-Match", metadata={"description": "The ETag last read; a mismatch is a 412 and changes nothing"}
    )


class IfNoneMatchSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    if_none_match = ma.fields.String(
        data_key="If-None-Match", metadata={"description": "ETag(s) held by the client; a match is a 304"}
    )
