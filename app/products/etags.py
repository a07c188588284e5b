"""Entity tags of a product and the ``If-Match``/``If-None-Match`` comparisons (RFC 9110).

The tag is derived from the row's id and ``version``, which every change bumps. It is a
strong tag: the representation is fully determined by the version (categories are only
created, never renamed, so their embedded names cannot change under it).
"""

from __future__ import annotations

from werkzeug.http import parse_etags

from app.products.models import Product


def etag_of(product: Product) -> str:
    return f'"{product.id}-v{product.version}"'


def _opaque(tag: str) -> str:
    return tag.strip('"')


def if_match_passes(header: str | None, product: Product) -> bool:
    """``If-Match``: absent, ``*``, or one of its tags equals ours (strong comparison)."""
    if header is None:
        return True
    tags = parse_etags(header)
    return tags.star_tag or tags.contains(_opaque(etag_of(product)))
