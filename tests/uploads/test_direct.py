"""Straight to storage: a signed target (an S3 POST policy, or the API's own endpoint on
``file://``), then ``complete``, which checks the stored file as ``POST /uploads`` would."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.storage import FileStorage, S3Storage, Storage
from tests.conftest import json_of
from tests.factories import AuthedUser
from tests.uploads.support import (
    CSV,
    HTML,
    UPLOADS,
    created,
    fetch_content,
    get_upload,
    local_path,
    nothing_kept,
    png,
    rows,
    send_to_target,
    settle,
    start_direct,
    stored,
)


def _complete(client: FlaskClient, user: AuthedUser, upload_id: str) -> tuple[int, dict[str, object]]:
    response = client.post(f"{UPLOADS}/{upload_id}/complete", headers=user.headers)
    return response.status_code, json_of(response)


@pytest.mark.parametrize(("purpose", "content"), [("import", CSV), ("product_image", png(64, 48))])
def test_a_direct_upload_is_checked_on_complete_and_served(
    app: Flask,
    client: FlaskClient,
    storage: Storage,
    staff: AuthedUser,
    run_jobs: Callable[[], int],
    purpose: str,
    content: bytes,
) -> None:
    response = start_direct(client, staff, purpose=purpose, size=len(content), filename="cat.dat")
    body = created(response)
    upload, target = body["upload"], body["target"]
    assert response.headers["Location"] == f"{UPLOADS}/{upload['id']}"
    assert upload["status"] == "awaiting_upload" and upload["url"] is None and upload["size"] is None
    assert target["method"] == "POST" and target["expires_at"].endswith("Z")
    if isinstance(storage, S3Storage):  # a presigned POST policy for exactly this key
        assert target["fields"]["key"] == f"media/incoming/{upload['id']}" and "policy" in target["fields"]
    else:  # the API's own signed endpoint, in the same shape
        assert local_path(app, target["url"]) == f"{UPLOADS}/{upload['id']}/target"
        assert set(target["fields"]) == {"key", "policy"}

    assert send_to_target(app, client, target, content) in {200, 204}
    status, done = _complete(client, staff, upload["id"])
    assert status == 200, done
    settle(run_jobs)
    upload = get_upload(client, staff, upload["id"])
    assert upload["status"] == "ready"
    status, served, _ = fetch_content(app, client, str(upload["url"]), staff)
    assert status == 200 and hashlib.sha256(served).hexdigest() == upload["sha256"]
    if purpose == "import":
        assert served == content and upload["filename"] == "cat.dat"
    assert "incoming" not in " ".join(stored(storage))

    # Completed once: again is a 409, and the target takes nothing more.
    assert _complete(client, staff, str(upload["id"]))[0] == 409


def test_a_direct_upload_whose_object_is_html_is_refused_and_removed(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser
) -> None:
    body = created(start_direct(client, staff, purpose="product_image", size=len(HTML), filename="cat.png"))
    assert send_to_target(app, client, body["target"], HTML) in {200, 204}
    status, error = _complete(client, staff, body["upload"]["id"])
    assert status == 415, error
    nothing_kept(app, storage)
    assert _complete(client, staff, body["upload"]["id"])[0] == 404


def test_declaring_one_byte_over_the_limit_is_a_413(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "UPLOAD_IMAGE_MAX_BYTES", 1000)
    response = start_direct(client, staff, purpose="product_image", size=1001)
    assert response.status_code == 413
    assert [d["field"] for d in json_of(response)["error"]["details"]] == ["size"]
    nothing_kept(app, storage)


def test_sending_one_byte_over_the_limit_keeps_nothing(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "UPLOAD_IMPORT_MAX_BYTES", 1000)
    content = b"sku,name\n" + b"x" * 992  # 1001 bytes
    body = created(start_direct(client, staff, purpose="import", size=1000))
    sent = send_to_target(app, client, body["target"], content)
    status, _ = _complete(client, staff, body["upload"]["id"])
    if isinstance(storage, FileStorage):
        # The target enforces its policy while the file arrives: refused, nothing stored;
        # the upload still awaits a file that fits, until its target expires.
        assert sent == 413 and status == 409
        assert [(u.status, u.size) for u in rows(app)] == [("awaiting_upload", None)]
        assert stored(storage) == []
    else:
        # S3 itself refuses a file outside the policy's content-length-range; the emulator
        # used here does not, so complete's own check is what stops it.
        assert status == 413
        nothing_kept(app, storage)


def test_a_size_other_than_declared_is_refused(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser
) -> None:
    body = created(start_direct(client, staff, purpose="import", size=len(CSV) + 10))
    sent = send_to_target(app, client, body["target"], CSV)
    status, error = _complete(client, staff, body["upload"]["id"])
    if isinstance(storage, FileStorage):
        assert sent == 422 and status == 409
    else:
        assert status == 422 and [d["field"] for d in error["error"]["details"]] == ["size"]  # type: ignore[index]
        nothing_kept(app, storage)
    assert stored(storage) == []


def test_complete_before_anything_was_sent_is_a_409_and_the_upload_waits(
    app: Flask, client: FlaskClient, storage: Storage, staff: AuthedUser
) -> None:
    body = created(start_direct(client, staff, purpose="import", size=len(CSV)))
    assert _complete(client, staff, body["upload"]["id"])[0] == 409
    assert send_to_target(app, client, body["target"], CSV) in {200, 204}
    assert _complete(client, staff, body["upload"]["id"])[0] == 200


def test_only_the_uploader_completes(
    app: Flask,
    client: FlaskClient,
    storage: Storage,
    staff: AuthedUser,
    other_staff: AuthedUser,
    customer: AuthedUser,
) -> None:
    body = created(start_direct(client, staff, purpose="import", size=len(CSV)))
    send_to_target(app, client, body["target"], CSV)
    upload_id = body["upload"]["id"]
    assert _complete(client, other_staff, upload_id)[0] == 403
    assert client.post(f"{UPLOADS}/{upload_id}/complete", headers=customer.headers).status_code == 403  # no permission
    assert _complete(client, staff, upload_id)[0] == 200


def test_an_s3_target_rewritten_after_complete_changes_nothing_served(
    app: Flask, client: FlaskClient, s3_storage: S3Storage, staff: AuthedUser
) -> None:
    # (On file:// the target refuses anything once the upload is completed: next test.)
    body = created(start_direct(client, staff, purpose="import", size=len(CSV)))
    send_to_target(app, client, body["target"], CSV)
    upload = _complete(client, staff, body["upload"]["id"])[1]["data"]
    # The policy is still valid: the client sends something else to the same key.
    spoof = HTML[: len(CSV)].ljust(len(CSV), b" ")
    send_to_target(app, client, body["target"], spoof)
    assert fetch_content(app, client, upload["url"], staff)[1] == CSV  # type: ignore[index]


def test_the_file_target_checks_its_policy(
    app: Flask, client: FlaskClient, file_storage: FileStorage, staff: AuthedUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = created(start_direct(client, staff, purpose="import", size=len(CSV)))
    target, upload_id = body["target"], body["upload"]["id"]
    forged = {**target, "fields": {**target["fields"], "policy": target["fields"]["policy"][:-2] + "xx"}}
    assert send_to_target(app, client, forged, CSV) == 403
    other = created(start_direct(client, staff, purpose="import", size=len(CSV)))
    swapped = {**target, "fields": other["target"]["fields"]}  # another upload's policy
    assert send_to_target(app, client, swapped, CSV) == 403
    assert send_to_target(app, client, target, CSV) == 204
    assert _complete(client, staff, upload_id)[0] == 200
    assert send_to_target(app, client, target, CSV) == 409  # completed: the target is closed
    monkeypatch.setitem(app.config, "UPLOAD_TARGET_SECONDS", -1)
    expired = created(start_direct(client, staff, purpose="import", size=len(CSV)))
    assert send_to_target(app, client, expired["target"], CSV) == 403
    assert stored(file_storage) == [f"{upload_id}/file"]


def test_the_api_target_does_not_exist_on_s3(
    app: Flask, client: FlaskClient, s3_storage: S3Storage, staff: AuthedUser
) -> None:
    body = created(start_direct(client, staff, purpose="import", size=len(CSV)))
    response = client.post(
        f"{UPLOADS}/{body['upload']['id']}/target",
        data={"key": "k", "policy": "p", "file": (bytes(CSV), "c.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 404


@pytest.mark.parametrize("content_type", ["text/csv\n", "text/csv;\n", "text/csv; charset=utf-8\n"])
def test_a_media_type_with_a_final_newline_is_a_422(client: FlaskClient, staff: AuthedUser, content_type: str) -> None:
    """The declared type's pattern holds for all of it: a final newline is not a media type."""
    body = {"purpose": "import", "filename": "a.csv", "size": len(CSV), "content_type": content_type}
    response = client.post(f"{UPLOADS}/direct", json=body, headers=staff.headers)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert [d["field"] for d in json_of(response)["error"]["details"]] == ["content_type"]
