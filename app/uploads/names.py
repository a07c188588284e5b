"""File names: the client's, cleaned for display; the one a download is saved under (RFC 6266)."""

from __future__ import annotations

import unicodedata
from pathlib import PurePosixPath, PureWindowsPath
from urllib.parse import quote

from werkzeug.http import dump_options_header

from app.uploads.checks import EXTENSIONS
from app.uploads.models import FILENAME_MAX

DEFAULT_FILENAME = "upload"
_ALSO_ACCEPTED = {".jpg": (".jpeg",)}


def clean_filename(name: str | None) -> str:
    """A client's filename, safe to show and to put in a header: its last path component,
    without control or invisible formatting characters (no right-to-left overrides)."""
    if not name:
        return DEFAULT_FILENAME
    text = unicodedata.normalize("NFC", name)
    text = PureWindowsPath(text.replace("/", "\\")).name  # either kind of separator
    text = "".join(ch for ch in text if unicodedata.category(ch) not in {"Cc", "Cf", "Zl", "Zp"})
    text = text.strip().strip(".").strip()
    return text[:FILENAME_MAX] or DEFAULT_FILENAME


def download_name(filename: str, content_type: str, *, suffix: str = "") -> str:
    """``filename`` with the extension of what it really is: a CSV named ``x.html`` downloads
    as ``x.csv``, so that no saved file opens as something else."""
    extension = EXTENSIONS.get(content_type, "")
    path = PurePosixPath(filename)
    stem = path.stem if path.suffix else filename
    if extension and path.suffix.lower() in {extension, *_ALSO_ACCEPTED.get(extension, ())}:
        extension = path.suffix
    return f"{stem}{suffix}{extension}"


def content_disposition(filename: str, *, inline: bool) -> str:
    """``inline``/``attachment`` with an ASCII ``filename`` and the exact ``filename*`` (RFC 6266/8187)."""
    fallback = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii").strip()
    options = {"filename": fallback or DEFAULT_FILENAME, "filename*": "UTF-8''" + quote(filename, safe="!#$&+^`|~")}
    return dump_options_header("inline" if inline else "attachment", options)
