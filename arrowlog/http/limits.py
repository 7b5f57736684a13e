"""What a request must pass before a route sees it, and what its body may hold.

``RequestGuard`` is a plain ASGI middleware (streamed answers pass through untouched):

- **Host** (DNS rebinding): a page of ``attacker.example`` whose name the attacker then
  points at 127.0.0.1 can call this server with the browser's ``Host: attacker.example``.
  Answered: IP addresses (a rebinding needs a name), ``localhost`` and ``*.localhost``,
  the ``host`` and ``advertise_host`` settings, and what ``allowed_hosts`` lists (``*``:
  anything). Others get 400 ``HostNotAllowed``. A request without Host (HTTP/1.0) passes:
  browsers always send one.
- **Origin** (CSRF): browsers send ``Origin`` with every cross-origin request and every
  POST. One whose host and port are not this request's Host (the page is not ours) gets
  403 ``OriginNotAllowed`` unless ``allowed_origins`` lists it (``*``: any). Log shippers,
  curl and SDKs send no Origin and pass; so does the console, which is same-origin.
- **Body** (slow or never-ending senders): each wait for the next piece of the body lasts
  at most ``http_body_timeout``, and the whole body must average ``http_min_body_rate``
  bytes/s after that grace period, else 408 ``RequestTimeout`` and the connection is
  closed. Body bytes received are counted against ``max_inflight_body_bytes`` across
  all requests until the request ends; one that would pass it gets 503 ``BodiesInFlight``
  with ``Retry-After``.

The checks before the headers (their time and size) are in ``arrowlog.http.protocol``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from arrowlog.config import Settings
from arrowlog.errors import (
    ArrowlogError,
    BodiesInFlight,
    HostNotAllowed,
    OriginNotAllowed,
    RequestTimeout,
)
from arrowlog.http.errors import error_response

__all__ = ["BodyBudget", "HostPolicy", "OriginPolicy", "RequestGuard"]

logger = logging.getLogger(__name__)

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _names(value: str | None) -> list[str]:
    return [v.strip().lower().rstrip("/") for v in (value or "").split(",") if v.strip()]


def _split_host(host: str) -> tuple[str, int | None] | None:
    """``name:port`` / ``[v6]:port`` / ``name`` → (name, port); None if malformed."""
    host = host.strip().lower()
    if host.startswith("["):
        name, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
    elif host.count(":") > 1:
        return None  # an IPv6 address must be bracketed in a Host header
    else:
        name, _, port = host.partition(":")
    if port and not port.isdigit():
        return None
    return name.rstrip("."), int(port) if port else None


class HostPolicy:
    """Which ``Host`` headers this server answers."""

    def __init__(self, settings: Settings) -> None:
        listed = _names(settings.allowed_hosts)
        self.any = "*" in listed
        own = [settings.host, settings.advertise_host or ""]
        self._exact = {n.strip("[]").lower() for n in (*listed, *own) if n and "*" not in n}
        self._suffixes = tuple(n[1:] for n in listed if n.startswith("*.") and len(n) > 2)

    def allows(self, host: str | None) -> bool:
        if host is None or self.any:
            return True
        split = _split_host(host)
        if split is None:
            return False
        name = split[0]
        if name == "localhost" or name.endswith(".localhost") or name in self._exact:
            return True
        if self._suffixes and name.endswith(self._suffixes):
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def check(self, host: str | None) -> None:
        if not self.allows(host):
            raise HostNotAllowed(
                f"this server does not answer for the host {host!r}: requests must name "
                "it by IP address, localhost, or a name listed in allowed_hosts (the setting; "
                "'*' allows any), which protects it from DNS rebinding"
            )


class OriginPolicy:
    """Which browser pages (``Origin`` headers) may call this server."""

    def __init__(self, settings: Settings) -> None:
        listed = _names(settings.allowed_origins)
        self.any = "*" in listed
        self._listed = {o for o in (_origin(x) for x in listed) if o is not None}

    def allows(self, origin: str | None, host: str | None) -> bool:
        if origin is None or self.any:
            return True
        parsed = _origin(origin)
        if parsed is None:
            return False  # "null" (sandboxed pages, file://) or garbage
        if parsed in self._listed:
            return True
        split = _split_host(host) if host else None
        if split is None:
            return False
        scheme, name, port = parsed
        # Same host and port: the page came from this server (whatever a TLS-terminating
        # proxy did to the scheme). A Host without a port means the Origin's default one.
        return (name, port) == (split[0], split[1] or _DEFAULT_PORTS.get(scheme))

    def check(self, origin: str | None, host: str | None) -> None:
        if not self.allows(origin, host):
            raise OriginNotAllowed(
                f"cross-origin request refused: a page of {origin!r} may not call this "
                "server; list its origin in allowed_origins (the setting) to allow it"
            )


def _origin(value: str) -> tuple[str, str, int | None] | None:
    try:
        parts = urlsplit(value.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.rstrip("."), port or _DEFAULT_PORTS[parts.scheme]


class BodyBudget:
    """Request body bytes held in memory by all requests together, under ``limit``.

    Used from the event loop only (every ``receive`` runs there), so it needs no lock.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> None:
        if self.held + size > self.limit:
            raise BodiesInFlight(
                f"the server holds {self.held} bytes of request bodies, and this request's "
                f"{size} more would pass max_inflight_body_bytes ({self.limit}); retry shortly"
            )
        self.held += size

    def give_back(self, size: int) -> None:
        self.held -= size


class RequestGuard:
    """Host and Origin checks, and the body's time and memory limits (module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings, budget: BodyBudget) -> None:
        self._app = app
        self._hosts = HostPolicy(settings)
        self._origins = OriginPolicy(settings)
        self._budget = budget
        self._timeout = settings.http_body_timeout
        self._min_rate = settings.http_min_body_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            host = headers.get("host")
            self._hosts.check(host)
            self._origins.check(headers.get("origin"), host)
        except ArrowlogError as e:
            await error_response(e)(scope, receive, send)
            return
        body = _Body(receive, self._budget, self._timeout, self._min_rate)
        try:
            await self._app(scope, body.receive, send)
        except ClientDisconnect:
            # Gone in the middle of its body: nobody to answer, nothing was written.
            logger.info(
                "%s %s: the client disconnected while sending its body (%d bytes)",
                scope["method"],
                scope["path"],
                body.received,
            )
        finally:
            self._budget.give_back(body.held)


class _Body:
    """One request's ``receive``, timed and counted while its body arrives."""

    def __init__(self, receive: Receive, budget: BodyBudget, timeout: float, rate: int) -> None:
        self._receive = receive
        self._budget = budget
        self._timeout = timeout
        self._rate = rate
        self._started: float | None = None
        self._done = False
        self.received = 0
        self.held = 0  # taken from the budget, given back when the request ends
        # The connection's transport, as uvicorn's own ``receive`` carries it: the tail
        # route reaches it through ``receive.__self__`` to cut off a client that reads
        # nothing (``arrowlog/http/tail.py``).
        self.transport = getattr(getattr(receive, "__self__", None), "transport", None)

    async def receive(self) -> Message:
        if self._done:  # the body is complete: only a disconnect can come (no limits)
            return await self._receive()
        now = asyncio.get_running_loop().time()
        if self._started is None:
            self._started = now
        # Apache's mod_reqtimeout model: http_body_timeout, plus 1 s per min_rate bytes.
        deadline = self._started + self._timeout + self.received / self._rate
        wait = min(self._timeout, deadline - now)
        try:
            if wait <= 0:
                raise TimeoutError
            async with asyncio.timeout(wait):
                message = await self._receive()
        except TimeoutError:
            silent = wait >= self._timeout
            raise RequestTimeout(self._too_slow(silent=silent)) from None
        if message["type"] != "http.request":
            self._done = True
            return message
        size = len(message.get("body", b""))
        if size:
            self._budget.take(size)
            self.held += size
            self.received += size
        if not message.get("more_body", False):
            self._done = True
        return message

    def _too_slow(self, *, silent: bool) -> str:
        if silent:
            return (
                f"the request body stopped arriving: nothing for {self._timeout:g} s "
                f"(http_body_timeout) after {self.received} bytes"
            )
        now = asyncio.get_running_loop().time()
        elapsed = now - (self._started or now)
        return (
            f"the request body arrives too slowly: {self.received} bytes in {elapsed:.0f} s, "
            f"under http_min_body_rate ({self._rate} bytes/s after {self._timeout:g} s)"
        )
