"""What routes depend on: the app's Log and Settings, and the bearer-token check.

The Log and Settings live on ``app.state`` (set once by ``create_app``); routes receive
them as parameters (``log: LogDep``) instead of reaching for a global.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from arrowlog.config import Settings
from arrowlog.errors import Unauthenticated
from arrowlog.log import Log

__all__ = ["LogDep", "SettingsDep", "require_token"]


def _log(request: Request) -> Log:
    return request.app.state.log


def _settings(request: Request) -> Settings:
    return request.app.state.settings


LogDep = Annotated[Log, Depends(_log)]
SettingsDep = Annotated[Settings, Depends(_settings)]

_bearer = HTTPBearer(
    auto_error=False,
    description="The server's token (`--token` / `ARROWLOG_TOKEN`), when it has one; "
    "the same token as for Flight.",
)
_HINT = "send the header 'Authorization: Bearer <token>'"


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Refuse the request unless it carries the server's token (if it has one).

    Compared in constant time (``hmac.compare_digest``); the token is never logged and no
    message repeats what the client sent.

    Raises:
        Unauthenticated: a token is configured and the request lacks it or has another.
    """
    expected: bytes | None = request.app.state.token
    if expected is None:
        return
    if credentials is None:
        raise Unauthenticated(f"missing bearer token: {_HINT}")
    if not hmac.compare_digest(credentials.credentials.encode(), expected):
        raise Unauthenticated("invalid bearer token")
