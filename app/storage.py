"""File storage behind one small interface, chosen by ``STORAGE_URL``.

- ``file://<dir>``: a folder on this machine (the embedded default, ``instance/uploads``).
  Fine for one process or a shared volume; production refuses it unless told otherwise.
- ``s3://bucket/prefix``: S3 or any S3-compatible store (``S3_ENDPOINT_URL``), through
  boto3 with its usual credential chain. Every process of a deployment sees the same files.

The interface is what uploads need both ways: a streamed put (the object appears whole or
not at all), a ranged read, a stream to read from, size, move, delete, a presigned POST
target a client sends a file to, and a presigned GET a client downloads from. A storage
that cannot take a browser's POST itself (``file://``) answers the target with the API's
own endpoint and a signed policy token, so clients code one flow. Keys are made by the
callers (never from a client's filename); this module imports no domain.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from flask import Flask, current_app
from itsdangerous import BadSignature, URLSafeSerializer

from app.db import utcnow
from app.errors import ServiceUnavailable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CHUNK_SIZE = 64 * 1024
EXTENSION_KEY = "storefront.storage"
# S3 multipart parts, S3's minimum: an upload holds about three of them in memory at once.
S3_PART_SIZE = 5 * 1024 * 1024
_UNAVAILABLE = "File storage is temporarily unavailable"


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class ReadStream(Readable, Protocol):
    def close(self) -> None: ...


class ChunksReader:
    """A ``Readable`` over an iterator of byte chunks (a file being written, say), for
    ``put_stream``: only what one read asks for is held.

    Reads are full, as a file's are: ``read(n)`` gives ``n`` bytes unless the chunks end
    first (a short read would look like the end to boto3's uploader); ``read()`` gives
    the rest.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()
        self._done = False

    def read(self, size: int = -1, /) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < size):
            chunk = next(self._chunks, None)
            if chunk is None:
                self._done = True
            else:
                self._buffer += chunk
        wanted = len(self._buffer) if size < 0 else size
        data = bytes(self._buffer[:wanted])
        del self._buffer[:wanted]
        return data


class ObjectNotFound(LookupError):
    """The key holds no object."""


class InvalidTarget(ValueError):
    """A ``file://`` upload target token that is forged, expired or for another key."""


@dataclass(frozen=True)
class PostTarget:
    """Where and how a client sends a file: a multipart POST of ``fields``, then ``file``."""

    url: str
    fields: dict[str, str]
    expires_at: datetime


@dataclass(frozen=True)
class PostPolicy:
    """What a ``file://`` target token allows: exactly ``size`` bytes to ``key``."""

    key: str
    size: int


class Storage(ABC):
    @abstractmethod
    def put_stream(self, key: str, source: Readable) -> None:
        """Store what ``source`` yields until EOF. An exception raised while reading
        (a size limit, say) propagates and leaves nothing behind under ``key``."""

    def put_bytes(self, key: str, data: bytes) -> None:
        self.put_stream(key, io.BytesIO(data))

    @abstractmethod
    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from offset ``start`` (fewer at the end of the object)."""

    @abstractmethod
    def open(self, key: str) -> ReadStream:
        """A stream of the object's bytes; the caller closes it."""

    @abstractmethod
    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is none."""

    @abstractmethod
    def move(self, source: str, target: str) -> None:
        """Rename an object (replacing ``target``)."""

    @abstractmethod
    def delete(self, *keys: str) -> None:
        """Remove the objects; a key that holds nothing is fine."""

    @abstractmethod
    def keys(self) -> Iterator[str]:
        """Every key stored (for operations and tests)."""

    @abstractmethod
    def presigned_post(self, key: str, *, size: int, expires_in: int, fallback_url: str) -> PostTarget:
        """A target that accepts exactly ``size`` bytes for ``key`` for ``expires_in`` seconds.
        ``fallback_url`` is the API's own endpoint, for a storage that cannot take the POST."""

    @abstractmethod
    def presigned_get(self, key: str, *, expires_in: int, content_type: str, content_disposition: str) -> str | None:
        """A URL that serves the object with those headers, or None: serve it yourself."""


# --- file:// ------------------------------------------------------------------------------


class FileStorage(Storage):
    """Objects are files under ``root``; writes go to ``.partial/`` and are renamed into place."""

    PARTIAL_DIR = ".partial"

    def __init__(self, root: Path, *, secret: str) -> None:
        self.root = root
        self._signer = URLSafeSerializer(secret, salt="storefront.storage.post-target")

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in {"", ".", ".."} or p.startswith(".") for p in parts):
            raise ValueError(f"invalid storage key {key!r}")
        return self.root.joinpath(*parts)

    def put_stream(self, key: str, source: Readable) -> None:
        path = self._path(key)
        partial_dir = self.root / self.PARTIAL_DIR
        try:
            partial_dir.mkdir(parents=True, exist_ok=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = tempfile.NamedTemporaryFile(dir=partial_dir, delete=False)  # noqa: SIM115 (renamed below)
        except OSError as exc:
            raise ServiceUnavailable(_UNAVAILABLE) from exc
        try:
            with handle:
                while chunk := source.read(CHUNK_SIZE):
                    handle.write(chunk)
            os.replace(handle.name, path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(handle.name)
            if isinstance(exc, OSError):
                raise ServiceUnavailable(_UNAVAILABLE) from exc
            raise

    def read_range(self, key: str, start: int, length: int) -> bytes:
        with contextlib.closing(self.open(key)) as handle:
            assert isinstance(handle, io.BufferedReader)
            handle.seek(start)
            return handle.read(length)

    def open(self, key: str) -> ReadStream:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError as exc:
            raise ObjectNotFound(key) from exc
        except OSError as exc:
            raise ServiceUnavailable(_UNAVAILABLE) from exc

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ServiceUnavailable(_UNAVAILABLE) from exc

    def move(self, source: str, target: str) -> None:
        try:
            self._path(target).parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._path(source), self._path(target))
        except FileNotFoundError as exc:
            raise ObjectNotFound(source) from exc
        except OSError as exc:
            raise ServiceUnavailable(_UNAVAILABLE) from exc

    def delete(self, *keys: str) -> None:
        folders = set()
        try:
            for key in keys:
                path = self._path(key)
                path.unlink(missing_ok=True)
                folders.add(path.parent)
        except OSError as exc:
            raise ServiceUnavailable(_UNAVAILABLE) from exc
        for folder in folders:  # tidy: an emptied folder goes too
            with contextlib.suppress(OSError):
                if folder != self.root:
                    folder.rmdir()

    def keys(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.rglob("*")):
            relative = path.relative_to(self.root)
            if path.is_file() and relative.parts[0] != self.PARTIAL_DIR:
                yield relative.as_posix()

    def sweep_partials(self, *, older_than: timedelta) -> int:
        """Remove writes left half-done by a process that died mid-upload."""
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        folder = self.root / self.PARTIAL_DIR
        if not folder.is_dir():
            return 0
        for path in folder.iterdir():
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed

    def presigned_post(self, key: str, *, size: int, expires_in: int, fallback_url: str) -> PostTarget:
        expires_at = utcnow() + timedelta(seconds=expires_in)
        token = self._signer.dumps({"k": key, "s": size, "e": int(expires_at.timestamp())})
        return PostTarget(url=fallback_url, fields={"key": key, "policy": token}, expires_at=expires_at)

    def verify_post(self, *, key: str, token: str) -> PostPolicy:
        """The policy of a target token for ``key``; ``InvalidTarget`` if forged, expired or not for it."""
        try:
            payload: Any = self._signer.loads(token)
        except BadSignature as exc:
            raise InvalidTarget("invalid policy") from exc
        if not isinstance(payload, dict) or payload.get("k") != key:
            raise InvalidTarget("the policy is for another key")
        expires, size = payload.get("e"), payload.get("s")
        if not isinstance(expires, int) or not isinstance(size, int) or expires < time.time():
            raise InvalidTarget("the policy has expired")
        return PostPolicy(key=key, size=size)

    def presigned_get(self, key: str, *, expires_in: int, content_type: str, content_disposition: str) -> str | None:
        return None


# --- s3:// --------------------------------------------------------------------------------


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def _boto_errors(key: str) -> Iterator[None]:
    """Turn boto's errors into ours: a missing object, or storage that is unavailable."""
    try:
        yield
    except ClientError as exc:
        if _code(exc) in {"404", "NoSuchKey", "NotFound"}:
            raise ObjectNotFound(key) from exc
        raise ServiceUnavailable(_UNAVAILABLE) from exc
    except BotoCoreError as exc:
        raise ServiceUnavailable(_UNAVAILABLE) from exc


class S3Storage(Storage):
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        timeout: int,
    ):
        """``timeout``: seconds to connect, and between bytes of an answer (``STORAGE_TIMEOUT``)."""
        self.bucket = bucket
        self.timeout = timeout
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self._clients: dict[int, S3Client] = {}
        self._transfer = TransferConfig(
            multipart_threshold=S3_PART_SIZE, multipart_chunksize=S3_PART_SIZE, use_threads=False
        )

    @property
    def client(self) -> S3Client:
        # One client per process: a forked worker must not share its parent's connections.
        pid = os.getpid()
        if pid not in self._clients:
            config = BotoConfig(
                connect_timeout=self.timeout,
                read_timeout=self.timeout,
                retries={"mode": "standard", "total_max_attempts": 2},
                # S3-compatible stores (MinIO, a local emulator) want path-style URLs.
                s3={"addressing_style": "path" if self.endpoint_url else "auto"},
                signature_version="s3v4",
            )
            self._clients = {
                pid: boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region, config=config)
            }
        return self._clients[pid]

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_stream(self, key: str, source: Readable) -> None:
        # Multipart when the stream outgrows one part; a failure aborts the multipart
        # upload, so no partial object is ever visible.
        with _boto_errors(key):
            self.client.upload_fileobj(source, self.bucket, self._key(key), Config=self._transfer)  # type: ignore[arg-type]  # any object with read() works (s3transfer reads non-seekable streams)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        with _boto_errors(key):
            try:
                response = self.client.get_object(
                    Bucket=self.bucket, Key=self._key(key), Range=f"bytes={start}-{start + length - 1}"
                )
            except ClientError as exc:
                if _code(exc) == "InvalidRange":  # an empty object has no byte 0
                    return b""
                raise
            return response["Body"].read()

    def open(self, key: str) -> ReadStream:
        with _boto_errors(key):
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]

    def size(self, key: str) -> int | None:
        try:
            with _boto_errors(key):
                return self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"]
        except ObjectNotFound:
            return None

    def move(self, source: str, target: str) -> None:
        with _boto_errors(source):
            self.client.copy_object(
                Bucket=self.bucket, Key=self._key(target), CopySource={"Bucket": self.bucket, "Key": self._key(source)}
            )
            self.client.delete_object(Bucket=self.bucket, Key=self._key(source))

    def delete(self, *keys: str) -> None:
        if not keys:
            return
        with _boto_errors(keys[0]):
            self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": self._key(k)} for k in keys], "Quiet": True}
            )

    def keys(self) -> Iterator[str]:
        prefix = f"{self.prefix}/" if self.prefix else ""
        with _boto_errors(prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"].removeprefix(prefix)

    def presigned_post(self, key: str, *, size: int, expires_in: int, fallback_url: str) -> PostTarget:
        # A POST policy, unlike a presigned PUT, can bound the size: exactly ``size`` bytes.
        with _boto_errors(key):
            post = self.client.generate_presigned_post(
                Bucket=self.bucket,
                Key=self._key(key),
                Conditions=[["content-length-range", size, size]],
                ExpiresIn=expires_in,
            )
        fields = {str(name): str(value) for name, value in post["fields"].items()}
        return PostTarget(url=post["url"], fields=fields, expires_at=utcnow() + timedelta(seconds=expires_in))

    def presigned_get(self, key: str, *, expires_in: int, content_type: str, content_disposition: str) -> str | None:
        with _boto_errors(key):
            return self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": self._key(key),
                    "ResponseContentType": content_type,
                    "ResponseContentDisposition": content_disposition,
                },
                ExpiresIn=expires_in,
            )


# --- wiring -------------------------------------------------------------------------------


def storage_from_url(
    url: str,
    *,
    secret: str,
    endpoint_url: str | None = None,
    region: str | None = None,
    timeout: int,
) -> Storage:
    """``file:///abs/dir``, ``file://relative/dir`` or ``s3://bucket[/prefix]``."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return FileStorage(Path(parts.netloc + parts.path).resolve(), secret=secret)
    if parts.scheme == "s3" and parts.netloc:
        return S3Storage(parts.netloc, parts.path, endpoint_url=endpoint_url, region=region, timeout=timeout)
    raise ValueError(f"unsupported STORAGE_URL {url!r}")


def init_storage(app: Flask) -> None:
    app.extensions[EXTENSION_KEY] = storage_from_url(
        app.config["STORAGE_URL"],
        secret=app.config["SECRET_KEY"],
        endpoint_url=app.config.get("S3_ENDPOINT_URL"),
        region=app.config.get("S3_REGION"),
        timeout=app.config["STORAGE_TIMEOUT"],
    )


def current_storage() -> Storage:
    storage: Storage = current_app.extensions[EXTENSION_KEY]
    return storage
