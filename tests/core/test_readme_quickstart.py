"""The README's quick start, executed exactly as written against a real development server.

The commands are read from the README (its "Quick start" section: the first ``bash``
block serves, the others run in order in one shell), so the README cannot drift from
what works. The only change made to them: port 5000 becomes a free port, so that the test
never meets a developer's own server.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path
from urllib.parse import urlencode

from tests.support.mailbox import Mailbox
from tests.support.processes import ROOT, free_port, http, stop, wait_for_http

README = ROOT / "README.md"
VERIFY_LINK = r"http://127\.0\.0\.1:{port}/account/verify-email\?token=[A-Za-z0-9_\-]+"


def quick_start_blocks() -> list[str]:
    text = README.read_text()
    section = re.search(r"^## Quick start\n(.*?)(?=^## )", text, re.S | re.M)
    assert section, "README.md has no '## Quick start' section"
    blocks = re.findall(r"^```bash\n(.*?)^```", section.group(1), re.S | re.M)
    assert len(blocks) >= 3, blocks
    return [block.strip() for block in blocks]


def test_readme_quick_start_works_as_written(tmp_path: Path, mailbox: Mailbox) -> None:
    serve, *steps = quick_start_blocks()
    assert serve == "make run"
    assert any("flask seed" in step for step in steps)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "PROMETHEUS_"))}
    env.pop("FLASK_SKIP_DOTENV", None)  # as a developer runs it: make run's .env is read
    env.update(
        APP_ENV="development",
        PORT=str(port),
        DATABASE_URL=f"sqlite:///{tmp_path / 'quickstart.db'}",
        REDIS_URL="",  # the embedded default, even where a developer's .env names a Redis
        MAIL_URL=mailbox.url,
        PUBLIC_BASE_URL="",
    )
    server_log = tmp_path / "server.log"
    with server_log.open("wb") as out:
        server = subprocess.Popen(
            ["bash", "-c", serve], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health/live", timeout=300, proc=server)
        script = "\n".join(steps).replace("127.0.0.1:5000", f"127.0.0.1:{port}")
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "demo-customer@example.com" in run.stdout and "50 products created" in run.stdout
        order = json.loads(run.stdout.strip().splitlines()[-1])["data"]
        assert order["status"] == "pending" and order["number"].startswith("ORD-"), order
        listed = json.loads(run.stderr.strip().splitlines()[-1])  # the products the README shows (tee)
        assert order["items"][0]["product_id"] == listed["data"][0]["id"]

        _first_run_extras(base, port, mailbox)
    finally:
        stop(server, sig=signal.SIGINT)  # as Ctrl+C in the terminal
    _development_log_is_one_json_line_per_request(server_log.read_text(errors="replace"))


def _first_run_extras(base: str, port: int, mailbox: Mailbox) -> None:
    """What a newcomer meets next: readiness without Redis, and a mail link that works."""
    status, body = http("GET", f"{base}/health/ready")
    assert status == 200
    assert json.loads(body)["checks"]["redis"] == {"status": "not configured (in-process)"}

    email = "first.timer@example.com"
    registration = json.dumps({"email": email, "password": "Velvet-Compass-4417", "full_name": "First Timer"})
    status, body = http(
        "POST", f"{base}/api/v1/auth/register", body=registration.encode(), headers={"Content-Type": "application/json"}
    )
    assert status == 201, body
    # PUBLIC_BASE_URL is unset: the link names the address actually served, this port.
    match = re.search(VERIFY_LINK.format(port=port), Mailbox.text_of(mailbox.to(email)[-1]))
    assert match, Mailbox.text_of(mailbox.to(email)[-1])
    status, page = http("GET", match.group(0))
    assert status == 200 and b'name="token"' in page
    token = match.group(0).split("token=")[1]
    form = urlencode({"token": token}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, done = http("POST", f"{base}/account/verify-email", body=form, headers=headers)
    assert status == 200 and b"verified" in done, done


def _development_log_is_one_json_line_per_request(log: str) -> None:
    assert "\x1b[" not in log, "no terminal colour codes in the log"
    assert not re.search(r'"(GET|POST) /\S* HTTP/1\.[01]" \d{3}', log), "werkzeug's own request lines are off"
    access = []
    for line in log.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)  # every structured line is one JSON object
            if entry["logger"] == "storefront.access":
                access.append((entry["method"], entry["path"], entry["status"]))
    assert access.count(("POST", "/api/v1/auth/login", 200)) == 1
    assert access.count(("GET", "/api/v1/products", 200)) == 1
    assert access.count(("POST", "/api/v1/orders", 201)) == 1
    assert access.count(("POST", "/account/verify-email", 200)) == 1


def test_documentation_links_stay_inside_the_repository() -> None:
    """README and docs/ link files of this repository only, and every one of them exists."""
    documents = [README, *sorted((ROOT / "docs").glob("*.md"))]
    assert {p.name for p in documents} >= {"README.md", "API.md", "ARCHITECTURE.md"}
    for document in documents:
        for target in re.findall(r"\]\(([^)\s]+)\)", document.read_text()):
            if target.startswith(("http://", "https://", "#")):
                continue
            resolved = (document.parent / target.split("#")[0]).resolve()
            assert resolved.is_relative_to(ROOT), f"{document.name} links outside the repository: {target}"
            assert resolved.exists(), f"{document.name} links a missing file: {target}"
    readme = README.read_text()
    assert "(docs/API.md)" in readme and "(docs/ARCHITECTURE.md)" in readme
