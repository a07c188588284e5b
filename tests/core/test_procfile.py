"""The Procfile, for real: honcho runs release, then web, worker and clock, as a platform would.

Production settings, a PostgreSQL and a Redis of the test's own on free ports, mail to a
loopback SMTP server. A customer registers (the worker mails the link), verifies, orders
and pays; then everything gets SIGTERM while the worker is in the middle of a delivery,
and the delivery still completes: nothing is lost, nothing is left running.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import threading
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
import redis
import sqlalchemy as sa
from aiosmtpd.smtp import SMTP, Envelope, Session
from rq import Queue
from rq.registry import FailedJobRegistry, StartedJobRegistry

from tests.conftest import DEFAULT_TEST_DATABASE_URL
from tests.support.mailbox import Mailbox
from tests.support.processes import ROOT, VENV_BIN, free_port, http, tool, wait_for_http, wait_until
from tests.support.services import private_postgres, private_redis

pytestmark = pytest.mark.services

ADMIN, ADMIN_PASSWORD = "owner@example.com", "Granite-Meadow-Falcon-88"
CUSTOMER, CUSTOMER_PASSWORD = "buyer@example.com", "Copper-Lagoon-Sparrow-64"
JSON = {"Content-Type": "application/json"}


class SlowMailbox(Mailbox):
    """A loopback SMTP server that can take its time over a message, to catch a job mid-way."""

    def __init__(self) -> None:
        super().__init__()
        self.delay = 0.0
        self.receiving = threading.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd hook)
        self.receiving.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))


def call(method: str, url: str, payload: object = None, token: str | None = None) -> tuple[int, dict[str, object]]:
    headers = dict(JSON)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(payload).encode() if payload is not None else None
    status, raw = http(method, url, body=body, headers=headers)
    return status, (json.loads(raw) if raw else {})


def login(base: str, email: str, password: str) -> str:
    status, body = call("POST", f"{base}/api/v1/auth/login", {"email": email, "password": password})
    assert status == 200, body
    return str(body["data"]["access_token"])  # type: ignore[index]  # the envelope of API.md


def started_pids(log: Path) -> dict[str, int]:
    return {name: int(pid) for name, pid in re.findall(r"(\w+\.\d+) started \(pid=(\d+)\)", log.read_text())}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_procfile_serves_the_store_and_stops_cleanly(tmp_path: Path) -> None:
    assert {"release", "web", "worker", "clock"} <= set(procfile())
    mailbox = SlowMailbox()
    mailbox.start()
    server_url = os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    try:
        with private_postgres(server_url) as database_url, private_redis() as redis_url:
            _run(tmp_path, mailbox, database_url, redis_url)
    finally:
        mailbox.stop()


def _run(tmp_path: Path, mailbox: SlowMailbox, database_url: str, redis_url: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = {
        "APP_ENV": "production",
        "SECRET_KEY": "procfile-test-secret-key-" + "s" * 24,
        "JWT_SECRET_KEY": "procfile-test-jwt-secret-" + "j" * 24,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "MAIL_URL": mailbox.url,
        "PUBLIC_BASE_URL": base,
        "STORAGE_URL": f"file://{tmp_path / 'uploads'}",
        "ALLOW_LOCAL_STORAGE": "1",  # one machine: its disk is shared by every process here
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
    }
    env_file = tmp_path / "procfile.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    # The platform's environment: the project's tools on PATH, nothing of the test suite's.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "PROMETHEUS_")) and k not in settings}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    honcho = [tool("honcho")]
    common = ["-f", str(ROOT / "Procfile"), "-d", str(ROOT), "-e", str(env_file)]

    release = subprocess.run(
        [*honcho, "start", *common, "release"], env=env, capture_output=True, text=True, timeout=180
    )
    assert release.returncode == 0, release.stdout + release.stderr
    assert "Running upgrade" in release.stdout
    admin = subprocess.run(
        [*honcho, "run", *common, "flask", "create-admin", ADMIN],
        input=ADMIN_PASSWORD + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert admin.returncode == 0 and f"Created admin {ADMIN}" in admin.stdout, admin.stdout + admin.stderr

    log = tmp_path / "honcho.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*honcho, "start", *common, "web", "worker", "clock"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_http(f"{base}/health/ready", timeout=120, proc=proc)
        _customer_journey(base, mailbox)
        returncode = _sigterm_during_a_delivery(base, mailbox, proc)
    finally:
        pids = started_pids(log)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        for pid in pids.values():  # whatever survived a failure above
            if alive(pid):
                os.killpg(pid, signal.SIGKILL)
    output = log.read_text(errors="replace")
    assert returncode == 143, output  # honcho's answer to SIGTERM
    for name in ("web.1", "worker.1", "clock.1"):
        assert f"{name} stopped (rc=0)" in output, output
        assert not alive(pids[name]), f"{name} is still running"
    assert "SIGKILL" not in output, "everything stopped within the grace period"

    # The delivery that SIGTERM interrupted finished, and no work was dropped.
    assert len([m for m in mailbox.to(CUSTOMER) if "reset" in str(m["Subject"]).lower()]) == 1
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL")) == 0
    engine.dispose()
    connection = redis.Redis.from_url(redis_url)
    for name in ("mail", "imports"):
        assert Queue(name, connection=connection).count == 0
        assert StartedJobRegistry(name, connection=connection).count == 0
        assert FailedJobRegistry(name, connection=connection).count == 0


def _customer_journey(base: str, mailbox: SlowMailbox) -> None:
    status, body = call(
        "POST",
        f"{base}/api/v1/auth/register",
        {"email": CUSTOMER, "password": CUSTOMER_PASSWORD, "full_name": "Bea Buyer"},
    )
    assert status == 201, body
    # Web only writes the outbox and enqueues: the worker process delivers.
    wait_until(lambda: bool(mailbox.to(CUSTOMER)), timeout=60, what="the verification mail")
    link = re.search(r"\S+/account/verify-email\?token=[\w-]+", Mailbox.text_of(mailbox.to(CUSTOMER)[-1]))
    assert link and link.group(0).startswith(f"{base}/account/verify-email?token="), "PUBLIC_BASE_URL is used"
    status, _ = http("GET", link.group(0))
    assert status == 200
    token = urlsplit(link.group(0)).query.removeprefix("token=")
    form = urlencode({"token": token}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, page = http("POST", f"{base}/account/verify-email", body=form, headers=headers)
    assert status == 200 and b"verified" in page

    staff_token = login(base, ADMIN, ADMIN_PASSWORD)
    product = {"sku": "PROC-1", "name": "Procfile Mug", "description": "Holds tea.", "price": "12.50", "stock": 5}
    status, body = call("POST", f"{base}/api/v1/products", product, token=staff_token)
    assert status == 201, body
    product_id = body["data"]["id"]  # type: ignore[index]  # the envelope of API.md

    customer_token = login(base, CUSTOMER, CUSTOMER_PASSWORD)
    status, me = call("GET", f"{base}/api/v1/users/me", token=customer_token)
    assert me["data"]["email_verified_at"] is not None  # type: ignore[index]  # as above
    order_in = {
        "items": [{"product_id": product_id, "quantity": 2}],
        "shipping_address": {
            "name": "Bea Buyer",
            "line1": "2 Harbour Road",
            "city": "Portsmouth",
            "postal_code": "PO1 2AB",
            "country": "GB",
        },
    }
    status, body = call("POST", f"{base}/api/v1/orders", order_in, token=customer_token)
    assert status == 201, body
    order = body["data"]
    assert order["total"] == "25.00"  # type: ignore[index]  # as above
    status, body = call("POST", f"{base}/api/v1/orders/{order['id']}/pay", token=customer_token)  # type: ignore[index]  # as above
    assert status == 200 and body["data"]["status"] == "paid", body  # type: ignore[index]  # as above
    wait_until(lambda: len(mailbox.to(CUSTOMER)) >= 2, timeout=60, what="the order confirmation")


def _sigterm_during_a_delivery(base: str, mailbox: SlowMailbox, proc: subprocess.Popen[bytes]) -> int:
    mailbox.delay = 2.5
    mailbox.receiving.clear()
    status, _ = call("POST", f"{base}/api/v1/auth/password/forgot", {"email": CUSTOMER})
    assert status == 202
    assert mailbox.receiving.wait(timeout=60), "the worker never started the delivery"
    proc.send_signal(signal.SIGTERM)  # what the platform sends every process at a restart
    return proc.wait(timeout=60)
