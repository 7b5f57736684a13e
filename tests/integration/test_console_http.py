"""The web console's files as HTTP serves them (the browser tests live in tests/e2e)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import resources

import httpx
import pytest

from tests.integration.conftest import ArrowlogServe

ASSETS = {
    "/": "text/html",
    "/console": "text/html",
    "/console/console.js": "text/javascript",
    "/console/console.css": "text/css",
}


@pytest.fixture
def anonymous(arrowlog_serve: ArrowlogServe) -> Iterator[httpx.Client]:
    """No token: the server has one, but the console's files must not need it."""
    with arrowlog_serve.client(token=None) as client:
        yield client


@pytest.mark.parametrize(("path", "media_type"), ASSETS.items())
def test_console_files_are_served_without_the_token(
    anonymous: httpx.Client, path: str, media_type: str
) -> None:
    r = anonymous.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].split(";")[0] == media_type
    assert r.headers["x-content-type-options"] == "nosniff"
    # Revalidated by ETag: a cached copy is confirmed with a 304 and no body.
    again = anonymous.get(path, headers={"If-None-Match": r.headers["etag"]})
    assert (again.status_code, again.content) == (304, b"")


def test_the_page_allows_only_its_own_files_and_server(anonymous: httpx.Client) -> None:
    r = anonymous.get("/")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    # Every file the page loads is relative (works offline and under a path prefix).
    refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert sorted(refs) == ["console/console.css", "console/console.js", refs[0]]
    assert refs[0].startswith("data:image/svg+xml")  # the favicon, inline


def test_the_data_still_needs_the_token(anonymous: httpx.Client) -> None:
    assert anonymous.get("/v1/streams").status_code == 401


def test_console_files_ship_in_the_package() -> None:
    static = resources.files("arrowlog.http") / "static"
    assert {p.name for p in static.iterdir()} >= {"index.html", "console.js", "console.css"}
