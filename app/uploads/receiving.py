"""Files in: through the API (a multipart body streamed to storage) or straight to storage
(a signed target, then ``complete``). Either way the same checks decide, and nothing that
fails them is kept: neither the stored objects nor the row.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Mapping
from contextlib import closing
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import current_app

from app.db import db, new_id, utcnow
from app.errors import (
    Conflict,
    DomainError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ServiceUnavailable,
    ValidationFailed,
    flatten_messages,
)
from app.jobs import enqueue_after_commit
from app.permissions import Principal
from app.storage import FileStorage, InvalidTarget, ObjectNotFound, PostTarget, Readable, current_storage
from app.uploads import checks
from app.uploads.models import Purpose, Status, Upload, Variant, all_keys, object_key
from app.uploads.multipart import FormPart, StreamingForm
from app.uploads.names import clean_filename
from app.uploads.permissions import can_see
from app.uploads.schemas import TargetFormSchema, UploadFormSchema
from app.uploads.urls import upload_path
from app.urls import public_url

log = logging.getLogger(__name__)

PROCESS_IMAGE = "app.uploads.tasks.process_image"
FIELD_MAX = 2000


def job_id_for(upload_id: uuid.UUID) -> str:
    return f"process-image-{upload_id}"


def limit_for(purpose: str) -> int:
    config = current_app.config
    limits = {
        Purpose.PRODUCT_IMAGE: config["UPLOAD_IMAGE_MAX_BYTES"],
        Purpose.IMPORT: config["UPLOAD_IMPORT_MAX_BYTES"],
    }
    return int(limits[Purpose(purpose)])


def largest_limit() -> int:
    return max(limit_for(p) for p in (Purpose.PRODUCT_IMAGE, Purpose.IMPORT))


def too_large(purpose: str | None, limit: int, *, field: str = "file") -> PayloadTooLarge:
    what = f"{purpose} uploads" if purpose else "uploads"
    message = f"Larger than the {limit} bytes allowed for {what}."
    return PayloadTooLarge(f"The file is too large: {message}", details=[{"field": field, "message": message}])


class MeteredReader:
    """Reads ``source`` through a SHA-256 and a byte count; refuses to pass ``limit``.

    Keeps the first bytes for sniffing; nothing else stays in memory.
    """

    def __init__(self, source: Readable, *, limit: int, purpose: str | None = None) -> None:
        self._source = source
        self.limit = limit
        self.purpose = purpose
        self.size = 0
        self.head = b""
        self._sha = hashlib.sha256()

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        self.size += len(data)
        if self.size > self.limit:
            raise too_large(self.purpose, self.limit)
        self._sha.update(data)
        if len(self.head) < checks.SNIFF_BYTES:
            self.head += data[: checks.SNIFF_BYTES - len(self.head)]
        return data

    def drain(self) -> None:
        while self.read(64 * 1024):
            pass

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()


# --- through the API ----------------------------------------------------------------------


def receive(*, owner_id: uuid.UUID, form: StreamingForm) -> Upload:
    """``POST /uploads``: stream the file to storage while it arrives, then check it."""
    upload_id = new_id()
    db.session.rollback()  # (authentication read the user) no transaction is held while the file arrives
    try:
        upload = _receive(upload_id, owner_id, form)
        db.session.add(upload)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        _discard_objects(upload_id)
        raise
    return upload


def _receive(upload_id: uuid.UUID, owner_id: uuid.UUID, form: StreamingForm) -> Upload:
    values: dict[str, Any] = {}
    metered: MeteredReader | None = None
    filename: str | None = None
    for part in form:
        _check_part(part, values, file_seen=metered is not None, text_fields={"purpose"})
        if part.name == "purpose":
            values["purpose"] = part.read_text(max_length=FIELD_MAX)
            _validate(UploadFormSchema(partial=True), {"purpose": values["purpose"]})
        elif part.name == "file":
            purpose = values.get("purpose")
            metered = MeteredReader(part, limit=limit_for(purpose) if purpose else largest_limit(), purpose=purpose)
            current_storage().put_stream(object_key(upload_id, Variant.FILE), metered)
            filename = part.filename
        else:
            values[part.name] = ""  # unknown: the schema names it below
    data = _validate(UploadFormSchema(), {**values, "file": b""} if metered is not None else values)
    assert metered is not None
    purpose = data["purpose"]
    if metered.size > limit_for(purpose):  # the file came before its purpose
        raise too_large(purpose, limit_for(purpose))
    upload = Upload(
        id=upload_id,
        owner_id=owner_id,
        purpose=purpose,
        status=Status.AWAITING_UPLOAD,
        filename=clean_filename(filename),
        size=metered.size,
        sha256=metered.sha256,
    )
    _check_and_accept(upload, head=metered.head, hash_content=False)
    return upload


def _check_part(part: FormPart, values: Mapping[str, Any], *, file_seen: bool, text_fields: set[str]) -> None:
    if part.name in values or (part.name == "file" and file_seen):
        raise ValidationFailed(details=[{"field": part.name, "message": "Sent more than once."}])
    if part.name == "file" and not part.is_file:
        raise ValidationFailed(details=[{"field": "file", "message": "Must be a file (a part with a filename)."}])
    if part.name in text_fields and part.is_file:
        raise ValidationFailed(details=[{"field": part.name, "message": "Must be a text field, not a file."}])


def _validate(schema: ma.Schema, values: Mapping[str, Any]) -> dict[str, Any]:
    try:
        data: dict[str, Any] = schema.load(values)
    except ma.ValidationError as exc:
        raise ValidationFailed(details=list(flatten_messages(exc.messages))) from exc
    return data


# --- straight to storage ------------------------------------------------------------------


def start_direct(*, owner_id: uuid.UUID, data: Mapping[str, Any]) -> tuple[Upload, PostTarget]:
    """``POST /uploads/direct``: an upload awaiting its file, and where to send it."""
    purpose, size = data["purpose"], data["size"]
    if size > limit_for(purpose):
        raise too_large(purpose, limit_for(purpose), field="size")
    upload = Upload(
        owner_id=owner_id,
        purpose=purpose,
        status=Status.AWAITING_UPLOAD,
        filename=clean_filename(data["filename"]),
        declared_size=size,
    )
    db.session.add(upload)
    db.session.flush()
    config = current_app.config
    target = current_storage().presigned_post(
        upload.key(Variant.INCOMING),
        size=size,
        expires_in=int(config["UPLOAD_TARGET_SECONDS"]),
        fallback_url=public_url(f"{upload_path(upload.id)}/target"),
    )
    db.session.commit()
    return upload, target


def receive_at_target(*, upload_id: uuid.UUID, form: StreamingForm) -> None:
    """The API's own upload target (``file://`` storage): what S3 does with a POST policy.

    The policy fields must come before the file, as on S3.
    """
    storage = current_storage()
    if not isinstance(storage, FileStorage):
        raise NotFound()
    key = object_key(upload_id, Variant.INCOMING)
    values: dict[str, Any] = {}
    received = False
    for part in form:
        _check_part(part, values, file_seen=received, text_fields={"key", "policy"})
        if part.name == "file":
            _receive_target_file(storage, upload_id, key, values, part)
            received = True
        elif part.name in {"key", "policy"}:
            values[part.name] = part.read_text(max_length=FIELD_MAX)
        else:
            values[part.name] = ""
    _validate(TargetFormSchema(), {**values, "file": b""} if received else values)


def _receive_target_file(
    storage: FileStorage, upload_id: uuid.UUID, key: str, values: Mapping[str, Any], part: FormPart
) -> None:
    if values.get("key") != key or not isinstance(values.get("policy"), str):
        raise PermissionDenied("The upload target is invalid: send its key and policy fields before the file")
    try:
        policy = storage.verify_post(key=key, token=values["policy"])
    except InvalidTarget as exc:
        raise PermissionDenied("The upload target is invalid or has expired") from exc
    upload = db.session.get(Upload, upload_id)
    if upload is None:
        raise NotFound("Upload not found")
    status, purpose = upload.status, upload.purpose
    db.session.rollback()  # nothing to write: no transaction is held while the file arrives
    if status != Status.AWAITING_UPLOAD:
        raise Conflict("This upload has already been completed")
    metered = MeteredReader(part, limit=policy.size, purpose=purpose)
    storage.put_stream(key, metered)
    if metered.size != policy.size:
        storage.delete(key)
        message = f"The target takes exactly {policy.size} bytes; {metered.size} were sent."
        raise ValidationFailed(message, details=[{"field": "file", "message": message}])


def complete(*, upload_id: uuid.UUID, viewer: Principal) -> Upload:
    """``POST /uploads/{id}/complete``: check what the client sent to the target, as
    ``POST /uploads`` checks what it receives. A failed check removes the upload entirely."""
    upload = db.session.get(Upload, upload_id, with_for_update=True)
    if upload is None or not can_see(viewer, upload):
        raise NotFound("Upload not found")
    if upload.owner_id != viewer.id:
        raise PermissionDenied("Only the uploader can complete an upload")
    if upload.status != Status.AWAITING_UPLOAD:
        raise Conflict("This upload has already been completed")
    storage = current_storage()
    try:
        # Out of the client's reach first: the target stays writable until it expires.
        storage.move(upload.key(Variant.INCOMING), upload.key(Variant.FILE))
    except ObjectNotFound as exc:
        # Unless an earlier attempt moved it and then failed (storage or database down).
        if storage.size(upload.key(Variant.FILE)) is None:
            db.session.rollback()
            raise Conflict("Nothing has been sent to the upload target yet") from exc
    try:
        upload.size = storage.size(upload.key(Variant.FILE)) or 0
        limit = limit_for(upload.purpose)
        if upload.size > limit:
            raise too_large(upload.purpose, limit)
        if upload.size != upload.declared_size:
            message = f"{upload.size} bytes were sent, not the {upload.declared_size} declared."
            raise ValidationFailed(message, details=[{"field": "size", "message": message}])
        head = storage.read_range(upload.key(Variant.FILE), 0, checks.SNIFF_BYTES)
        _check_and_accept(upload, head=head, hash_content=True)
        db.session.commit()
    except ServiceUnavailable:
        db.session.rollback()  # not the file's fault: the client may complete again
        raise
    except DomainError:
        db.session.rollback()
        db.session.execute(sa.delete(Upload).where(Upload.id == upload_id))
        db.session.commit()
        _discard_objects(upload_id)
        raise
    return upload


# --- written by the API -------------------------------------------------------------------


def save_generated(
    *, owner_id: uuid.UUID, purpose: Purpose, filename: str, content_type: str, source: Readable
) -> Upload:
    """A file the API writes itself (an export): stored, hashed and ready; committed."""
    upload = Upload(
        id=new_id(), owner_id=owner_id, purpose=purpose, status=Status.READY, filename=clean_filename(filename)
    )
    metered = MeteredReader(source, limit=2**62, purpose=purpose)
    try:
        current_storage().put_stream(upload.key(Variant.FILE), metered)
        upload.size, upload.sha256, upload.content_type = metered.size, metered.sha256, content_type
        upload.completed_at = utcnow()
        db.session.add(upload)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        _discard_objects(upload.id)
        raise
    return upload


# --- the checks both ways in share ---------------------------------------------------------


def _check_and_accept(upload: Upload, *, head: bytes, hash_content: bool) -> None:
    """Sniff the stored file; read imports whole (decode and parse); queue images for the
    media job. ``hash_content``: the bytes were not hashed on the way in (direct uploads)."""
    if not upload.size:
        raise checks.empty_file()
    content_type = checks.check_type(upload.purpose, head)
    if hash_content or upload.purpose == Purpose.IMPORT:
        with closing(current_storage().open(upload.key(Variant.FILE))) as stream:
            metered = MeteredReader(stream, limit=upload.size)
            if upload.purpose == Purpose.IMPORT:
                content_type = checks.check_import(metered, head=head)
            metered.drain()
        upload.sha256 = metered.sha256
    upload.content_type = content_type
    upload.completed_at = utcnow()
    if upload.purpose == Purpose.PRODUCT_IMAGE:
        upload.status = Status.PROCESSING
        enqueue_after_commit(
            "media", PROCESS_IMAGE, str(upload.id), job_id=job_id_for(upload.id), description="product image"
        )
    else:
        upload.status = Status.READY


def _discard_objects(upload_id: uuid.UUID) -> None:
    """Remove whatever was stored for an upload that is not kept (best effort: the error
    that got us here is the one the client hears about)."""
    try:
        current_storage().delete(*all_keys(upload_id))
    except ServiceUnavailable:
        log.warning("could not remove the stored objects of refused upload %s", upload_id, exc_info=True)
