"""The base ``Schema`` and the field types every domain's schemas are made of.

One rule per JSON type, so that what the OpenAPI document says a body accepts is what the
app accepts: strings are strings, money is a decimal string, booleans in a JSON body are
``true``/``false`` only (query strings keep ``true/false/1/0``), and integers follow JSON
Schema (``5`` and ``5.0`` are the same integer; ``5.5``, ``"5"`` and ``true`` are not).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from itertools import groupby
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
        if (problem := self.as_sent_problem(text)) is not None:
            raise ma.ValidationError(problem)
        if not text.strip():
            raise self.make_error("blank")
        return text.strip()

    def as_sent_problem(self, text: str) -> str | None:
        """What a subclass refuses in the text as sent (its pattern's rule), or None."""
        return None


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


# --- names: text a person reads as written -------------------------------------------------

# Emoji blocks, where phones add characters faster than this interpreter's Unicode tables
# (``unicodedata.unidata_version``): a code point unassigned here is taken as a newer emoji.
_EMOJI_BLOCKS = range(0x1F000, 0x1FB00)
# Format characters (Cf) a name may hold: ZERO WIDTH NON-JOINER (Persian, Hindi, ...) and
# ZERO WIDTH JOINER (emoji sequences, Indic conjuncts). Every other one is refused: the bidi
# overrides and isolates (U+202A-U+202E, U+2066-U+2069, "Trojan Source"), the bidi marks,
# zero width space, word joiner, BOM, soft hyphen, tag characters (hidden ASCII) and the rest.
_NAME_FORMAT_CHARACTERS = frozenset({0x200C, 0x200D})
# Letters (Lo) that show nothing: Hangul fillers, long used to make names that look blank.
_BLANK_LETTERS = frozenset({0x115F, 0x1160, 0x3164, 0xFFA0})
# Allowed, but a name of only these shows nothing: spaces (Zs), marks (M*), the joiners
# above and BRAILLE PATTERN BLANK. Refused: controls (Cc), line and paragraph separators (Zl,
# Zp), surrogates, private use, unassigned code points and noncharacters, format characters.
_KIND_OF_CATEGORY = {"Cc": 0, "Cs": 0, "Co": 0, "Zl": 0, "Zp": 0, "Cn": 0, "Cf": 0, "Zs": 1, "Mn": 1, "Mc": 1, "Me": 1}
_UNFIT = {"Cc": "a control character", "Cs": "a surrogate", "Co": "a private-use character", "Cn": "unassigned"}


def _name_character_kinds() -> bytearray:
    """Per code point, 0: refused in a name; 1: allowed, shows nothing on its own; 2:
    allowed and visible."""
    categories = map(unicodedata.category, map(chr, range(0x110000)))
    kinds = bytearray(_KIND_OF_CATEGORY.get(category, 2) for category in categories)
    for code in _EMOJI_BLOCKS:
        if unicodedata.category(chr(code)) == "Cn":
            kinds[code] = 2
    for code in _NAME_FORMAT_CHARACTERS | {0x2800}:
        kinds[code] = 1
    noncharacters = {
        *range(0xFDD0, 0xFDF0),
        *(plane + last for plane in range(0, 0x110000, 0x10000) for last in (0xFFFE, 0xFFFF)),
    }
    for code in _BLANK_LETTERS | noncharacters:
        kinds[code] = 0
    return kinds


def _class_text(ranges: list[tuple[int, int]]) -> str:
    """A character class's contents: BMP code points as ``\\uXXXX`` (the same escape in
    ECMA-262 and Python's ``re``), the others as themselves (one code point each, in
    Python and in ECMA-262's Unicode mode, which JSON Schema validators use)."""

    def one(code: int) -> str:
        return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)

    return "".join(one(a) if a == b else f"{one(a)}-{one(b)}" for a, b in ranges)


def _name_classes() -> tuple[str, str, str]:
    """The contents of three character classes: what shows nothing, what is visible, what is allowed."""
    runs: list[tuple[int, int, int]] = []  # (kind, first, last)
    code = 0
    for kind, group in groupby(_name_character_kinds()):
        size = len(list(group))
        runs.append((kind, code, code + size - 1))
        code += size
    classes: list[str] = []
    for wanted in ({1}, {2}, {1, 2}):
        ranges: list[tuple[int, int]] = []
        for kind, first, last in runs:
            if kind not in wanted:
                continue
            if ranges and ranges[-1][1] == first - 1:
                ranges[-1] = (ranges[-1][0], last)
            else:
                ranges.append((first, last))
        classes.append(_class_text(ranges))
    quiet, visible, allowed = classes
    return quiet, visible, allowed


# The whole rule of a name as the document states it (one pattern, ~14 kB: its classes list
# the assigned code points of this interpreter's Unicode version), and as the server checks it.
_QUIET, _VISIBLE, _ALLOWED = _name_classes()
NAME_PATTERN = f"^[{_QUIET}]*[{_VISIBLE}][{_ALLOWED}]*$"
_NAME = re.compile(NAME_PATTERN)
_REFUSED_IN_NAME = re.compile(f"[^{_ALLOWED}]")
NAME_DESCRIPTION = (
    "One line of visible text: letters, marks, digits, punctuation, symbols and emoji, spaces, and "
    "the zero width (non-)joiner; no control, format (bidirectional controls among them), "
    "private-use or unassigned characters; not only spaces and marks"
)


def name_problem(text: str) -> str | None:
    """What makes ``text`` (as sent) unfit for a name, as a field's error message, or None."""
    if _NAME.fullmatch(text) is not None:
        return None
    if (refused := _REFUSED_IN_NAME.search(text)) is not None:
        char = refused.group()
        what = unicodedata.name(char, "") or _UNFIT.get(unicodedata.category(char), "a noncharacter")
        return f"Must be one line of visible text: U+{ord(char):04X} ({what}) is not allowed."
    return "Must hold at least one visible character."
