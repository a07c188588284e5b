"""Product images: decoded with Pillow limited to PNG, JPEG, GIF and WebP, re-encoded clean.

Re-encoding from decoded pixels is the point: nothing of the uploaded file survives but
the picture, so EXIF (GPS positions, camera serials), comments and anything smuggled after
the image data (a polyglot) are gone. The EXIF orientation is applied first, an embedded
colour profile is converted to sRGB, and only the first frame of an animation is kept.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError

from app.uploads.models import Variant

FORMATS = ("PNG", "JPEG", "GIF", "WEBP")
CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
MAX_PIXELS = 40_000_000
THUMBNAIL_SIZES = {Variant.SMALL: 256, Variant.MEDIUM: 1024}
# Pillow warns past MAX_IMAGE_PIXELS and refuses past twice that; the warning is made an
# error below, and the pixel count is also checked before anything is decoded.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# A file that ends early is an error, never an image filled out with grey (Pillow's default,
# restated: the setting is process-wide and a library could turn it on).
ImageFile.LOAD_TRUNCATED_IMAGES = False
_SAVE_OPTIONS: dict[str, dict[str, object]] = {
    "JPEG": {"quality": 88},
    "WEBP": {"quality": 85, "method": 4},
    "PNG": {"compress_level": 6},
    "GIF": {},
}
DAMAGED = "The image file is damaged or incomplete (its checksums do not match); upload it again."
# Exceptions Pillow raises for files it cannot (or will not) decode.
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError)


class ImageRejected(Exception):
    """The file is not an image we keep; ``reason`` is shown to the uploader."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Rendition:
    data: bytes
    width: int
    height: int


@dataclass(frozen=True)
class ProcessedImage:
    content_type: str
    image: Rendition
    thumbnails: dict[Variant, Rendition]


def process(data: bytes) -> ProcessedImage:
    """Decode, check, orient and re-encode ``data``; its thumbnails too. ``ImageRejected`` if unfit.

    Memory: a 40-megapixel image is 160 MB a copy (four bytes a pixel, RGB included), so at
    most two full-size copies exist at once: a step drops the copy before it (the file's
    image is closed once oriented; conversions replace it; a colour profile is applied in
    place) and thumbnails are resized from the clean image, never from a copy of it (Pillow
    still makes a premultiplied full-size copy to resize RGBA). Peak RSS of a fresh process
    (126 MB once imported) processing a 6300 x 6300 RGBA PNG of 170 KB: 939 MB before, 484 MB
    now (RGB PNG or JPEG: 788 → 430 MB). WebP stays the costliest (1105 → 735 MB): its
    decoder alone holds about four copies while it loads.
    """
    picture, image_format, icc_profile = _decoded(data)
    clean = _normalized(picture, image_format, icc_profile)
    del picture  # the name held a copy that _normalized may have replaced
    image = _encode(clean, image_format)
    thumbnails = {}
    source = clean
    # Largest first: each thumbnail is made from the one before, a fraction of the work.
    for variant, edge in sorted(THUMBNAIL_SIZES.items(), key=lambda item: -item[1]):
        source = _fit(source, edge)
        thumbnails[variant] = _encode(source, image_format)
    return ProcessedImage(content_type=CONTENT_TYPES[image_format], image=image, thumbnails=thumbnails)


def _decoded(data: bytes) -> tuple[Image.Image, str, object]:
    """The first frame, oriented, apart from the file (whose image is closed); its format and
    colour profile."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=FORMATS) as opened:
                image_format = str(opened.format)
                _check_pixels(opened.width, opened.height)
                opened.seek(0)
                opened.load()
                _verify(data)
                return ImageOps.exif_transpose(opened), image_format, opened.info.get("icc_profile")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected(f"The image has more than {MAX_PIXELS // 1_000_000} megapixels.") from exc
        except ImageRejected:
            raise
        except _DECODE_ERRORS as exc:
            raise ImageRejected("The file could not be decoded as a PNG, JPEG, GIF or WebP image.") from exc


def _check_pixels(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageRejected(
            f"The image is {width} x {height} pixels; at most {MAX_PIXELS // 1_000_000} megapixels are allowed."
        )


def _verify(data: bytes) -> None:
    """A PNG cut short and padded (with zeros, say) decodes without an error, into black
    pixels: zlib ends the stream where the padding begins. ``verify`` reads it again and
    checks every chunk's CRC. JPEG, GIF and WebP carry no checksum of their pixels; a cut
    in them is caught only when the decoder runs out of data (``load`` above)."""
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as fresh:
            fresh.verify()
    except _DECODE_ERRORS as exc:
        raise ImageRejected(DAMAGED) from exc


def _normalized(picture: Image.Image, image_format: str, icc_profile: object) -> Image.Image:
    """The pixels in a mode the output format takes, in sRGB, with no metadata at all."""
    if picture.mode in {"P", "PA"} or "transparency" in picture.info:
        picture = picture.convert("RGBA")
    elif picture.mode in {"CMYK", "YCbCr", "LAB", "HSV"}:
        picture = picture.convert("RGB")
    elif picture.mode.startswith("I") or picture.mode == "F":
        picture = picture.convert("L")
    if image_format == "JPEG" and picture.mode not in {"L", "RGB"}:
        picture = _flatten(picture)
    if image_format == "WEBP" and picture.mode in {"1", "L", "LA"}:
        picture = picture.convert("RGBA" if picture.mode == "LA" else "RGB")
    if isinstance(icc_profile, bytes) and icc_profile and picture.mode in {"RGB", "RGBA", "L"}:
        _to_srgb(picture, icc_profile)
    # ``picture`` is never the file's image (exif_transpose made it apart): clearing its info
    # is enough, where a copy would cost a full-size image.
    picture.info = {}
    return picture


def _flatten(picture: Image.Image) -> Image.Image:
    if picture.mode in {"RGBA", "LA"}:
        rgba = picture.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return picture.convert("RGB")


def _to_srgb(picture: Image.Image, icc_profile: bytes) -> None:
    """In place (no second full-size image); a profile that cannot be read fails before any
    pixel changes."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        ImageCms.profileToProfile(picture, source, ImageCms.createProfile("sRGB"), inPlace=True)
    except (ImageCms.PyCMSError, OSError, ValueError):
        pass  # an unusable profile is dropped: the pixels are kept as they are


def _fit(picture: Image.Image, edge: int) -> Image.Image:
    """``picture`` shrunk to fit ``edge`` x ``edge``, keeping its aspect (never enlarged).
    ``resize`` makes only the small image, where ``thumbnail`` works in place, so on a copy."""
    scale = min(edge / picture.width, edge / picture.height)
    if scale >= 1:
        return picture
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    return picture.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _encode(picture: Image.Image, image_format: str) -> Rendition:
    buffer = io.BytesIO()
    picture.save(buffer, format=image_format, **_SAVE_OPTIONS[image_format])
    return Rendition(data=buffer.getvalue(), width=picture.width, height=picture.height)
