"""The web console: ``GET /`` (and ``/console``) serve one page, one script, one stylesheet.

The files live in ``arrowlog/http/static/`` and ship in the package: plain HTML, CSS and
JavaScript with no build step and nothing fetched from elsewhere, so the console works
offline. They are public (a browser cannot send a bearer header when it navigates) and
hold no data; the page asks for the token itself and sends it on every API call.

The page uses relative URLs (``console/console.js``, ``v1/query``), so it also works
behind a proxy that mounts arrowlog under a path prefix. A strict Content-Security-Policy
allows only these files and calls back to this server.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter, Request, Response

__all__ = ["router"]

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str


def _load(name: str, media_type: str) -> _Asset:
    body = (resources.files("arrowlog.http") / "static" / name).read_bytes()
    return _Asset(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:20] + '"')


_ASSETS = {
    "index.html": _load("index.html", "text/html; charset=utf-8"),
    "console.js": _load("console.js", "text/javascript; charset=utf-8"),
    "console.css": _load("console.css", "text/css; charset=utf-8"),
}

router = APIRouter(include_in_schema=False)


def _serve(request: Request, name: str) -> Response:
    asset = _ASSETS[name]
    headers = {
        # Revalidate every time (cheap: 304 by ETag), so an upgraded server never pairs
        # a new page with an old cached script.
        "Cache-Control": "no-cache",
        "ETag": asset.etag,
        "X-Content-Type-Options": "nosniff",
    }
    if name == "index.html":
        headers |= {"Content-Security-Policy": _CSP, "Referrer-Policy": "no-referrer"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.get("/")
def index(request: Request) -> Response:
    return _serve(request, "index.html")


@router.get("/console")
def console(request: Request) -> Response:
    return _serve(request, "index.html")


@router.get("/console/console.js")
def script(request: Request) -> Response:
    return _serve(request, "console.js")


@router.get("/console/console.css")
def stylesheet(request: Request) -> Response:
    return _serve(request, "console.css")
