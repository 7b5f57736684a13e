"""arrowlog's HTTP API (FastAPI): ``create_app(log, settings)``; see ``arrowlog.http.app``."""

from __future__ import annotations

from arrowlog.http.app import create_app

__all__ = ["create_app"]
