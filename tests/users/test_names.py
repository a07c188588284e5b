"""``full_name``: the names people have (their keyboards' spaces, joiners and marks) are
accepted; what hides or reorders text on a staff screen, or shows nothing, is not; and the
document's pattern says exactly that."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import json_of
from tests.factories import AuthedUser, create_user

ME = "/api/v1/users/me"
REGISTER = "/api/v1/auth/register"

REAL_NAMES = [
    "Jean\u00a0Dupont",  # NO-BREAK SPACE (French keyboards, autocorrect)
    "Jean\u202fDupont",  # NARROW NO-BREAK SPACE
    "\u0639\u0644\u06cc\u200c\u0627\u06a9\u0628\u0631",  # Persian, ZERO WIDTH NON-JOINER
    "\U0001f468\u200d\U0001f469\u200d\U0001f467 Family",  # an emoji ZWJ sequence
    "Ann \u2764\ufe0f",  # VARIATION SELECTOR-16 (emoji presentation)
    "Jose\u0301 Zoe\u0308",  # combining marks (NFD, as some platforms send)
    "\u5c71\u7530\u3000\u592a\u90ce",  # IDEOGRAPHIC SPACE between family and given name
    "\u0915\u094d\u200d\u0937",  # Devanagari with ZERO WIDTH JOINER
    "\ud55c\uc9c0\ubbfc",  # Hangul syllables
    "\U0001fae8 Shaky",  # an emoji newer than some Unicode tables (U+1FAE8, Unicode 15)
    "O'Brien-Smith Jr.",
]

REFUSED = [
    *(f"Ann{chr(c)}Lee" for c in range(0x202A, 0x202F)),  # LRE RLE PDF LRO RLO: "Trojan Source"
    *(f"Ann{chr(c)}Lee" for c in range(0x2066, 0x206A)),  # LRI RLI FSI PDI
    "Ann\u200eLee",  # LEFT-TO-RIGHT MARK
    "Ann\u061cLee",  # ARABIC LETTER MARK
    "Ann\u200bLee",  # ZERO WIDTH SPACE
    "Ann\u2060Lee",  # WORD JOINER
    "Ann\ufeffLee",  # BYTE ORDER MARK
    "Ann\u00adLee",  # SOFT HYPHEN
    "Ann\U000e0041\U000e0042Lee",  # TAG characters: hidden ASCII
    "Ann\tLee",
    "Ann\nLee",
    "Ann\x7fLee",
    "Ann\x85Lee",  # NEXT LINE (C1 control)
    "Ann\u2028Lee",  # LINE SEPARATOR
    "Ann\u2029Lee",  # PARAGRAPH SEPARATOR
    "Ann\ue000Lee",  # private use
    "Ann\U000f0000Lee",  # private use, plane 15
    "Ann\u0378Lee",  # unassigned
    "Ann\ufdd0Lee",  # a noncharacter
    "Ann\u3164Lee",  # HANGUL FILLER: shows nothing
    "\u00a0\u3000",  # only spaces
    "\u200d\u200c",  # only joiners
    "\u0301\u0308",  # only combining marks
    " \ufe0f ",  # only a variation selector
    "\u2800",  # BRAILLE PATTERN BLANK: looks blank
]


@pytest.mark.parametrize("name", REAL_NAMES)
def test_real_names_are_accepted_as_typed(client: FlaskClient, customer: AuthedUser, name: str) -> None:
    body = {"email": "ann@example.com", "password": "Sturdy-Passphrase-7", "full_name": name}
    registered = client.post(REGISTER, json=body)
    assert registered.status_code == 201, registered.get_json()
    assert json_of(registered)["data"]["full_name"] == name
    changed = client.patch(ME, json={"full_name": f" {name} "}, headers=customer.headers)
    assert changed.status_code == 200, changed.get_json()
    assert json_of(changed)["data"]["full_name"] == name  # surrounding spaces trimmed, nothing else


@pytest.mark.parametrize("name", REFUSED)
def test_invisible_reordering_and_blank_names_are_refused(client: FlaskClient, customer: AuthedUser, name: str) -> None:
    before = json_of(client.get(ME, headers=customer.headers))["data"]["full_name"]
    answer = client.patch(ME, json={"full_name": name}, headers=customer.headers)
    assert answer.status_code == 422, (repr(name), answer.get_json())
    [detail] = json_of(answer)["error"]["details"]
    assert detail["field"] == "full_name"
    assert json_of(client.get(ME, headers=customer.headers))["data"]["full_name"] == before


def test_the_refusal_names_the_character(client: FlaskClient, customer: AuthedUser) -> None:
    answer = client.patch(ME, json={"full_name": "Ann\u202eLee"}, headers=customer.headers)
    [detail] = json_of(answer)["error"]["details"]
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE)" in detail["message"]


def _name_patterns(client: FlaskClient) -> set[str]:
    schemas = json_of(client.get("/api/v1/openapi.json"))["components"]["schemas"]
    return {
        schemas[name]["properties"]["full_name"]["pattern"] for name in ("Register", "UserMeUpdate", "UserAdminUpdate")
    }


def test_the_documented_pattern_takes_exactly_the_names_the_server_takes(
    app: Flask, client: FlaskClient, customer: AuthedUser
) -> None:
    """A name the served pattern matches is never a 422, and one it does not match always
    is: the named cases, and one character of every 3001 code points after a letter (the
    pattern is checked as sent: surrounding spaces are the pattern's too)."""
    [pattern] = _name_patterns(client)
    admin = create_user(app, role="admin")
    samples = [*REAL_NAMES, *REFUSED, " Ann ", "\tAnn", "Ann\n", "A"]
    samples += [f"A{chr(c)}" for c in range(0x80, 0x110000, 3001) if not 0xD800 <= c < 0xE000]
    samples += [chr(c) for c in range(0x20, 0x110000, 13001) if not 0xD800 <= c < 0xE000]
    disagree = []
    for name in samples:
        answer = client.patch(f"/api/v1/users/{customer.id}", json={"full_name": name}, headers=admin.headers)
        assert answer.status_code in {200, 422}, answer.get_json()
        if (answer.status_code == 200) != (re.fullmatch(pattern, name) is not None):
            disagree.append(repr(name))
    assert disagree == []
    assert len(pattern) < 20_000  # every code point class spelled out, not a document of its own
