"""Uploads run against both storages: ``file://`` on a temp folder, and S3 through a real S3
API on loopback (moto in server mode, a separate process started once per test session)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests
from flask import Flask

from app.storage import EXTENSION_KEY, FileStorage, S3Storage, Storage
from tests.factories import AuthedUser, create_user

S3_REGION = "us-east-1"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """``python -m moto.server`` on a free loopback port; boto3 credentials for it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": S3_REGION}
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(url, timeout=1)
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("the S3 emulator (moto server) did not start")
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


def make_bucket(endpoint: str) -> str:
    bucket = f"uploads-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name=S3_REGION).create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(params=["file", "s3"])
def storage(request: pytest.FixtureRequest, app: Flask, tmp_path: Path) -> Iterator[Storage]:
    """The app's storage for this test: a fresh folder, or a fresh bucket (with a prefix)."""
    backend: Storage
    if request.param == "file":
        backend = FileStorage(tmp_path / "uploads", secret=app.config["SECRET_KEY"])
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        backend = S3Storage(make_bucket(endpoint), "media", endpoint_url=endpoint, region=S3_REGION, timeout=10)
    saved = app.extensions[EXTENSION_KEY]
    app.extensions[EXTENSION_KEY] = backend
    yield backend
    app.extensions[EXTENSION_KEY] = saved


@pytest.fixture
def s3_storage(app: Flask, s3_endpoint: str) -> Iterator[S3Storage]:
    backend = S3Storage(make_bucket(s3_endpoint), "media", endpoint_url=s3_endpoint, region=S3_REGION, timeout=10)
    saved = app.extensions[EXTENSION_KEY]
    app.extensions[EXTENSION_KEY] = backend
    yield backend
    app.extensions[EXTENSION_KEY] = saved


@pytest.fixture
def file_storage(app: Flask, tmp_path: Path) -> Iterator[FileStorage]:
    backend = FileStorage(tmp_path / "uploads", secret=app.config["SECRET_KEY"])
    saved = app.extensions[EXTENSION_KEY]
    app.extensions[EXTENSION_KEY] = backend
    yield backend
    app.extensions[EXTENSION_KEY] = saved


@pytest.fixture
def other_staff(app: Flask) -> AuthedUser:
    return create_user(app, role="staff")
