"""Helpers shared by the security tests: the dashboard's sign-in, a subprocess app."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.conftest import _service_environ
from tests.support import processes

LOGIN = "/api/v1/auth/login"
ADMIN_LOGIN = "/admin/login"
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


def admin_sign_in(client: FlaskClient, email: str, password: str, **kwargs: Any) -> TestResponse:
    """Submit the dashboard's sign-in form as a browser would."""
    headers = {**SAME_ORIGIN, **kwargs.pop("headers", {})}
    form = {"email": email, "password": password, **kwargs.pop("data", {})}
    return client.post(ADMIN_LOGIN, data=form, headers=headers, **kwargs)


def csrf_token(client: FlaskClient) -> str:
    cookie = client.get_cookie("_csrf_token", path="/admin")
    assert cookie is not None, "not signed in to the dashboard"
    return cookie.value


def set_cookies(response: TestResponse) -> dict[str, str]:
    """Each Set-Cookie header, by cookie name."""
    return {h.split("=", 1)[0]: h for h in response.headers.getlist("Set-Cookie")}


def run_probe(source: str, *args: str, **environ: str) -> dict[str, Any]:
    """``tests.support.processes.run_probe`` in the suite's environment (plus ``environ``)."""
    return processes.run_probe(source, *args, env={**_service_environ(), **environ})
