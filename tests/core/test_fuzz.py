"""Whatever a client sends, generated from the served OpenAPI document, is never a 5xx.

Schemathesis turns the document into Hypothesis strategies: requests that fit it
(positive) and requests that break it (negative), for every documented operation, sent
through the WSGI app with an admin's token (a superset of every permission). In the
services run this is PostgreSQL, where a value the schemas let through would surface as
a database error. (schemathesis' own pytest plugin does not support pytest 9 yet, so the
strategies are driven with ``@given`` directly.)
"""

from __future__ import annotations

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.factories import create_user

EXAMPLES = 400  # per mode, spread over every operation


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_is_a_server_error(app: Flask, mode: GenerationMode) -> None:
    admin = create_user(app, role="admin")
    # Logout and session revocation would revoke the token the run uses; the test-only
    # widgets include a route that fails on purpose.
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app).exclude(
        path_regex=r"logout|/auth/sessions/|/_test/"
    )
    seen: set[str] = set()

    strategy = schema.as_strategy(mode)
    if mode is GenerationMode.POSITIVE:
        strategy = strategy.map(_one_pagination_style)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def send(case: schemathesis.Case) -> None:
        response = case.call(headers=admin.headers)
        seen.add(f"{case.method} {case.path}")
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} {case.query or ''} {case.body!r:.300} "
            f"-> {response.status_code}: {response.text[:300]}"
        )

    send()
    assert len(seen) >= 25, sorted(seen)  # the run reached (nearly) every operation


def _one_pagination_style(case: schemathesis.Case) -> schemathesis.Case:
    """What OpenAPI cannot say: a list takes page/per_page or cursor/limit, not both, and
    a cursor is opaque (only the server makes one). Without this, most generated list
    requests are a 422 before they reach a service."""
    if case.query:
        case.query.pop("cursor", None)
        if "page" in case.query or "per_page" in case.query:
            case.query.pop("limit", None)
    return case
