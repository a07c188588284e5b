"""A PostgreSQL and a Redis of the test's own, on free ports, for runs of whole processes.

PostgreSQL is a throwaway cluster (initdb/pg_ctl, run as the ``postgres`` user when the
suite runs as root, as PostgreSQL refuses root). Where the server binaries are not
installed, a fresh database on the suite's server (``TEST_DATABASE_URL``) stands in.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa

from tests.support.processes import free_port, wait_until


def _pg_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists() and (folder / "postgres").exists():
            return folder
    return None


def _as_postgres_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def private_postgres(fallback_url: str) -> Iterator[str]:
    """A SQLAlchemy URL of an empty database that only this test uses."""
    bindir = _pg_bindir()
    if bindir is None:
        with _fresh_database(fallback_url) as url:
            yield url
        return
    folder = Path(tempfile.mkdtemp(prefix="storefront-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()
    try:
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]
        subprocess.run(_as_postgres_user([*initdb, "--locale=C", "--no-sync"]), check=True, capture_output=True)
        options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={folder} -c fsync=off"
        start = [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"]
        subprocess.run(_as_postgres_user(start), check=True, capture_output=True)
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        yield url
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _as_postgres_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                capture_output=True,
                check=False,
            )
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _fresh_database(server_url: str) -> Iterator[str]:
    name = f"storefront_procfile_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def private_redis(*, tls: bool = False) -> Iterator[str]:
    """A Redis server of the caller's own on a free port; with ``tls``, one that speaks TLS
    only, with a self-signed certificate (as Heroku Redis does): its ``rediss://`` URL."""
    server = shutil.which("redis-server")
    assert server, "redis-server is not installed (apt-get install redis-server)"
    port = free_port()
    command = [server, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    folder = Path(tempfile.mkdtemp(prefix="storefront-redis-"))
    if tls:
        cert, key = _self_signed_certificate(folder)
        command += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key)]
        command += ["--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"]
        url = f"rediss://127.0.0.1:{port}/0"
    else:
        command += ["--port", str(port)]
        url = f"redis://127.0.0.1:{port}/0"
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def answers() -> bool:
        try:
            return bool(redis.Redis.from_url(url, **({"ssl_cert_reqs": "none"} if tls else {})).ping())
        except redis.RedisError:
            return False

    try:
        wait_until(answers, timeout=20, what="private Redis", proc=proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(folder, ignore_errors=True)


def _self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key (no authority vouches for it)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "storefront test redis")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "redis.crt", folder / "redis.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@contextmanager
def redis_at(app: Any, connection: redis.Redis) -> Iterator[None]:
    """The app talks to ``connection`` instead of its Redis, its RQ queues included (and
    its catalog cache, unless that has a Redis of its own)."""
    from rq import Queue

    from app.extensions import redis_queues

    state = app.extensions[redis_queues.key]
    saved = state.connection, state.queues, state.catalog_cache
    shared_cache = state.catalog_cache is state.connection
    state.connection, state.queues = connection, {name: Queue(name, connection=connection) for name in saved[1]}
    if shared_cache:
        state.catalog_cache = connection
    try:
        yield
    finally:
        state.connection, state.queues, state.catalog_cache = saved


@contextmanager
def catalog_cache_at(app: Any, connection: redis.Redis) -> Iterator[None]:
    """The app keeps its catalog cache in ``connection`` (as with ``CATALOG_CACHE_URL``)."""
    from app.extensions import redis_queues

    state = app.extensions[redis_queues.key]
    saved = state.catalog_cache
    state.catalog_cache = connection
    try:
        yield
    finally:
        state.catalog_cache = saved


def unreachable_redis() -> redis.Redis:
    """A client of a port nothing listens on: each command fails at once."""
    return redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
