"""Every failure path answers with the API.md error envelope and the right status."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from tests.conftest import json_of
from tests.factories import create_user

WIDGETS = "/api/v1/_test/widgets"


def assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = json_of(response)
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert error["request_id"] == response.headers["X-Request-ID"]
    return error


def test_unknown_path_is_404_envelope(client: FlaskClient) -> None:
    assert_envelope(client.get("/api/v1/no-such-thing"), 404, "NOT_FOUND")


def test_wrong_method_is_405_with_allow_header(client: FlaskClient) -> None:
    response = client.put(WIDGETS, json={})
    assert_envelope(response, 405, "METHOD_NOT_ALLOWED")
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert {"GET", "POST"} <= allowed
    assert "PUT" not in allowed


def test_malformed_json_is_400(client: FlaskClient) -> None:
    response = client.post(WIDGETS, data='{"name": "x", ', content_type="application/json")
    error = assert_envelope(response, 400, "BAD_REQUEST")
    assert "JSON" in error["message"]


def test_json_array_body_is_400(client: FlaskClient) -> None:
    response = client.post(WIDGETS, data=json.dumps([{"name": "x", "price": "1.00"}]), content_type="application/json")
    error = assert_envelope(response, 400, "BAD_REQUEST")
    assert "object" in error["message"]


def test_json_scalar_body_is_400(client: FlaskClient) -> None:
    response = client.post(WIDGETS, data="42", content_type="application/json")
    assert_envelope(response, 400, "BAD_REQUEST")


def test_wrong_content_type_is_400(client: FlaskClient) -> None:
    response = client.post(WIDGETS, data="name=x&price=1", content_type="application/x-www-form-urlencoded")
    error = assert_envelope(response, 400, "BAD_REQUEST")
    assert "application/json" in error["message"]


def test_a_form_to_an_endpoint_that_reads_forms_first_is_still_400(client: FlaskClient) -> None:
    """The credential endpoints' per-email limit reads a form's email before the body is
    parsed (request.form consumes it): the form was then a 422 of missing fields."""
    login = "/api/v1/auth/login"
    form = client.post(login, data={"email": "a@example.com", "password": "x"})
    assert "application/json" in assert_envelope(form, 400, "BAD_REQUEST")["message"]
    multipart = client.post(login, data={"email": "a@example.com", "password": "x"}, content_type="multipart/form-data")
    assert "application/json" in assert_envelope(multipart, 400, "BAD_REQUEST")["message"]
    # An empty body is no body, whatever its type says (curl -X POST -d ''): not a 400.
    empty = client.post(login, data=b"", content_type="application/x-www-form-urlencoded")
    assert assert_envelope(empty, 422, "VALIDATION_ERROR")["details"]


def test_body_over_limit_is_413(client: FlaskClient) -> None:
    body = b'{"name": "' + b"x" * (20 * 1024 * 1024) + b'"}'
    response = client.post(WIDGETS, data=body, content_type="application/json")
    assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")


def test_chunked_body_over_limit_is_413(client: FlaskClient) -> None:
    # No Content-Length: Werkzeug stops reading at the limit; the API must still refuse.
    body = b'{"name": "' + b"x" * (20 * 1024 * 1024) + b'"}'
    environ = EnvironBuilder(WIDGETS, method="POST", data=body, content_type="application/json").get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True  # what a server sets for Transfer-Encoding: chunked
    response = client.open(Request(environ))
    assert response.request.content_length is None
    assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")


def test_deeply_nested_json_is_400(client: FlaskClient) -> None:
    for body in ("[" * 5000 + "]" * 5000, '{"a":' * 5000 + "1" + "}" * 5000):
        response = client.post(WIDGETS, data=body, content_type="application/json")
        assert_envelope(response, 400, "BAD_REQUEST")


def test_a_number_too_long_for_python_is_400_not_500(client: FlaskClient) -> None:
    # Python refuses to convert an integer of more than 4,300 digits (a ValueError, not a
    # JSONDecodeError): malformed input all the same, anonymous endpoints included.
    digits = "9" * 4301
    for path in (WIDGETS, "/api/v1/auth/login", "/api/v1/auth/register"):
        response = client.post(path, data='{"email": ' + digits + "}", content_type="application/json")
        assert_envelope(response, 400, "BAD_REQUEST")
    assert client.post(WIDGETS, data='{"name": ' + "9" * 4300 + "}", content_type="application/json").status_code == 422


def test_nul_bytes_are_422_naming_the_field_or_404_in_a_path(client: FlaskClient) -> None:
    # PostgreSQL text cannot store NUL: refused up front, never a database error.
    error = assert_envelope(client.post(WIDGETS, json={"name": "a\u0000b", "price": "1.00"}), 422, "VALIDATION_ERROR")
    assert error["details"] == [{"field": "name", "message": "Must not contain NUL characters."}]
    error = assert_envelope(client.get(f"{WIDGETS}?sort=name%00"), 422, "VALIDATION_ERROR")
    assert [d["field"] for d in error["details"]] == ["sort"]
    assert_envelope(client.get("/api/v1/products/a%00b"), 404, "NOT_FOUND")
    assert_envelope(client.get("/api/v1/products?q=a%00b"), 422, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (WIDGETS, '{"name": "pw\\ud800x", "price": "1.00"}', "name"),
        (WIDGETS, '{"name": "x", "price": "1.00", "tags": ["ok", "\\udfff"]}', "tags.1"),
        (WIDGETS, '{"\\udc80": 1}', "\udc80"),
        ("/api/v1/auth/login", '{"email": "someone@example.com", "password": "pw\\ud800xxxxxxxxxxx"}', "password"),
        ("/api/v1/auth/register", '{"email": "a@example.com", "password": "\\ud800", "full_name": "A"}', "password"),
    ],
)
def test_an_unpaired_surrogate_escape_is_422_naming_the_field(
    client: FlaskClient, path: str, body: str, field: str
) -> None:
    # JSON's "\ud800" decodes to a lone surrogate, which no UTF-8 encoder (argon2's, the
    # database driver's) takes: refused up front, never a 500.
    error = assert_envelope(client.post(path, data=body, content_type="application/json"), 422, "VALIDATION_ERROR")
    assert [d["field"] for d in error["details"]] == [field]
    assert "unpaired surrogate" in error["details"][0]["message"]
    # A pair of escapes is one character, and fine.
    pair = client.post(
        WIDGETS, data='{"name": "smile \\ud83d\\ude00", "price": "1.00"}', content_type="application/json"
    )
    assert pair.status_code == 201, pair.get_data(as_text=True)


def test_value_the_database_refuses_is_422_without_sql(client: FlaskClient) -> None:
    response = client.get("/api/v1/_test/data-error")
    assert_envelope(response, 422, "VALIDATION_ERROR")
    assert "CAST" not in response.get_data(as_text=True)


def test_page_beyond_the_cap_is_422_not_an_overflow(client: FlaskClient) -> None:
    for page in ("100001", "100000000000000000000"):
        error = assert_envelope(client.get(f"{WIDGETS}?page={page}"), 422, "VALIDATION_ERROR")
        assert [d["field"] for d in error["details"]] == ["page"]
    assert client.get(f"{WIDGETS}?page=100000").status_code == 200


def test_validation_errors_name_each_field(client: FlaskClient) -> None:
    response = client.post(WIDGETS, json={"price": "1.234", "colour": "red"})
    error = assert_envelope(response, 422, "VALIDATION_ERROR")
    fields = {d["field"]: d["message"] for d in error["details"]}
    assert set(fields) == {"name", "price", "colour"}
    assert "required" in fields["name"].lower()
    assert "two decimal places" in fields["price"]
    assert "unknown" in fields["colour"].lower()


def test_money_rejects_negative_nan_and_bools(client: FlaskClient) -> None:
    for bad in ("-1.00", "NaN", "Infinity", True, "abc", {"a": 1}):
        response = client.post(WIDGETS, json={"name": "w", "price": bad})
        error = assert_envelope(response, 422, "VALIDATION_ERROR")
        assert [d["field"] for d in error["details"]] == ["price"], bad


def test_query_parameter_of_wrong_type_is_422(client: FlaskClient) -> None:
    error = assert_envelope(client.get(f"{WIDGETS}?page=abc"), 422, "VALIDATION_ERROR")
    assert error["details"] == [{"field": "page", "message": "Not a valid integer."}]


def test_unknown_query_parameter_is_422(client: FlaskClient) -> None:
    error = assert_envelope(client.get(f"{WIDGETS}?colour=red&sort=name"), 422, "VALIDATION_ERROR")
    assert [d["field"] for d in error["details"]] == ["colour"]


def test_unexpected_exception_is_500_without_internals(client: FlaskClient, caplog) -> None:
    response = client.get("/api/v1/_test/boom")
    error = assert_envelope(response, 500, "INTERNAL_ERROR")
    text = response.get_data(as_text=True)
    assert "SELECT" not in text and "password_hash" not in text and "Traceback" not in text
    assert error["message"] == "Internal server error"
    # The traceback is in the log, tied to the request id.
    logged = [r for r in caplog.records if r.exc_info]
    assert logged and getattr(logged[-1], "request_id", None) == error["request_id"]


def test_integrity_error_is_409_without_sql(client: FlaskClient) -> None:
    assert client.post(WIDGETS, json={"name": "same", "price": "1.00"}).status_code == 201
    response = client.post(WIDGETS, json={"name": "same", "price": "2.00"})
    assert_envelope(response, 409, "CONFLICT")
    text = response.get_data(as_text=True)
    assert "INSERT" not in text and "UNIQUE" not in text.upper().replace("UNIQUE_", "")


def test_domain_not_found_is_404(client: FlaskClient) -> None:
    response = client.get(f"{WIDGETS}/0190f0d0-0000-7000-8000-000000000000")
    error = assert_envelope(response, 404, "NOT_FOUND")
    assert error["message"] == "Widget not found"


def test_malformed_uuid_in_path_is_404(client: FlaskClient) -> None:
    assert_envelope(client.get(f"{WIDGETS}/not-a-uuid"), 404, "NOT_FOUND")


def test_an_operation_without_query_parameters_or_body_refuses_any(app: Flask, client: FlaskClient) -> None:
    # API.md: unknown parameters and fields are a 422, on operations that declare none too.
    user = create_user(app)
    error = assert_envelope(
        client.get("/api/v1/users/me?page=2&bogus=1", headers=user.headers), 422, "VALIDATION_ERROR"
    )
    assert error["details"] == [
        {"field": "page", "message": "Unknown field."},
        {"field": "bogus", "message": "Unknown field."},
    ]
    assert client.get("/api/v1/users/me", headers=user.headers).status_code == 200
    sessions = f"/api/v1/auth/sessions/{user.session_id}"
    error = assert_envelope(
        client.delete(sessions, json={"card": "4111"}, headers=user.headers), 422, "VALIDATION_ERROR"
    )
    assert error["details"] == [{"field": "card", "message": "Unknown field."}]
    for body, content_type in ((b"garbage", "application/json"), (b"[1]", "application/json"), (b"x=1", "text/plain")):
        response = client.delete(sessions, data=body, content_type=content_type, headers=user.headers)
        assert_envelope(response, 400, "BAD_REQUEST")
    # Nothing, or an empty object, is what a client sends for no body: both are fine.
    emptied = client.post("/api/v1/auth/logout-all", json={}, headers=user.headers)
    assert emptied.status_code == 204 and "Content-Type" not in emptied.headers and emptied.data == b""
    again = create_user(app)
    assert client.post("/api/v1/auth/logout-all", headers=again.headers).status_code == 204


def test_a_parameter_given_twice_is_422_not_its_first_value(client: FlaskClient) -> None:
    error = assert_envelope(client.get(f"{WIDGETS}?page=1&page=2&per_page=5"), 422, "VALIDATION_ERROR")
    assert error["details"] == [{"field": "page", "message": "Give this parameter once."}]
    assert client.get(f"{WIDGETS}?page=1&per_page=5").status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/products", "/api/v1/categories", "/account/verify-email", "/health/live"])
@pytest.mark.parametrize(
    "query", ["q=\xff", "q=caf\xc3", "per_page=5&sort=name\xe9", "q=%FF", "q=%ED%A0%80", "q=caf%C3", "q=\xc3\xa9%FF"]
)
def test_a_query_string_that_is_not_utf8_is_a_400(client: FlaskClient, path: str, query: str) -> None:
    """Raw bytes a client did not percent-encode (Werkzeug's parse of them raised: a 500),
    and percent-encoded bytes that are not UTF-8 (Werkzeug put U+FFFD in their place)."""
    response = client.get(path, environ_overrides={"QUERY_STRING": query})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert json_of(response)["error"]["code"] == "BAD_REQUEST"
