"""The browsable API documentation, served with its own assets (no CDN: works offline).

Swagger UI's files come from the pinned ``flask-swagger-ui`` package (its ``dist``
folder; its blueprint, which needs an inline script, is not used). The page runs under a
Content-Security-Policy that allows scripts, styles and fetches from this origin only.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from flask import Blueprint, Response, redirect, render_template, send_from_directory, url_for
from werkzeug.wrappers import Response as BaseResponse

from app.errors import NotFound
from app.extensions import limiter

SWAGGER_UI_DIST = Path(str(files("flask_swagger_ui") / "dist"))
SWAGGER_UI_VERSION = (SWAGGER_UI_DIST / "VERSION").read_text().strip()
INITIALIZER = "swagger-initializer.js"
ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png"})
ASSET_MAX_AGE = 24 * 3600  # URLs carry the Swagger UI version, so a new release is fetched anew

# Swagger UI sets element styles from script (allowed by 'self' scripts, not by style-src)
# and embeds its icons as data: URIs in its stylesheet.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

bp = Blueprint("apidocs", __name__, url_prefix="/api/v1/docs", template_folder="templates", static_folder=None)


def _with_policy(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@bp.get("", strict_slashes=True)
@limiter.exempt
def page() -> Response:
    """Swagger UI over /api/v1/openapi.json."""
    html = render_template(
        "apidocs/swagger_ui.html",
        spec_url=url_for("api-docs.openapi_json"),
        version=SWAGGER_UI_VERSION,
    )
    return _with_policy(Response(html, mimetype="text/html"))


@bp.get("/")
@limiter.exempt
def trailing_slash() -> BaseResponse:
    return redirect(url_for("apidocs.page"), code=308)


@bp.get("/assets/<string:filename>")
@limiter.exempt
def asset(filename: str) -> Response:
    if filename == INITIALIZER:
        return _with_policy(send_from_directory(Path(__file__).parent / "static", filename, max_age=ASSET_MAX_AGE))
    if filename in ASSETS:
        return _with_policy(send_from_directory(SWAGGER_UI_DIST, filename, max_age=ASSET_MAX_AGE))
    raise NotFound()
