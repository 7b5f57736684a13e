"""Optional bearer-token authentication for the Flight server.

With a token configured, every call must carry ``authorization: Bearer <token>`` (compared
in constant time). Three ways clients send it, all accepted:

* the header itself: ``arrowlog.connect(url, token=...)``, pyarrow
  ``FlightCallOptions(headers=[(b"authorization", b"Bearer ...")])``, and the ADBC driver's
  ``adbc.flight.sql.authorization_header`` option (sent verbatim on every call);
* HTTP basic credentials, as the ADBC driver's ``username``/``password`` options and
  pyarrow's ``authenticate_basic_token`` send them in the Handshake: the password must be
  the token (the user name is ignored). The answer carries ``authorization: Bearer
  <token>``, which those clients then send on every later call.

Missing or wrong credentials → UNAUTHENTICATED (through the one error mapping). The token
never appears in a log line or an error message.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging

import pyarrow.flight as flight

from arrowlog.errors import Unauthenticated
from flight_server.errors import to_flight_error

__all__ = [
    "AUTH_HEADER",
    "BearerTokenMiddleware",
    "BearerTokenMiddlewareFactory",
    "NoOpAuthHandler",
]

logger = logging.getLogger(__name__)

AUTH_HEADER = "authorization"
_HINT = "send the header 'authorization: Bearer <token>' (or basic auth with the token as password)"


class BearerTokenMiddleware(flight.ServerMiddleware):
    """Per-call state: answers a basic-auth call with the bearer token to use from now on."""

    def __init__(self, reply_token: bytes | None) -> None:
        self._reply_token = reply_token

    def sending_headers(self) -> dict[str, str] | None:
        if self._reply_token is None:
            return None
        return {AUTH_HEADER: "Bearer " + self._reply_token.decode()}


class BearerTokenMiddlewareFactory(flight.ServerMiddlewareFactory):
    """Checks every incoming call's credentials against one token.

    Args:
        token: the shared secret clients must present.

    Example: ``FlightServerBase(..., middleware={"auth": BearerTokenMiddlewareFactory(t)})``
    """

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the token must not be empty")
        self._token = token.encode()

    def __repr__(self) -> str:
        return "BearerTokenMiddlewareFactory(token=<hidden>)"

    def start_call(
        self, info: flight.CallInfo, headers: dict[str, list[str | bytes]]
    ) -> BearerTokenMiddleware:
        values = headers.get(AUTH_HEADER) or []
        if not values:
            raise _refuse(f"missing credentials: {_HINT}", info)
        value = values[0]
        raw = value if isinstance(value, bytes) else value.encode("utf-8", "replace")
        scheme, _, credentials = raw.strip().partition(b" ")
        scheme = scheme.lower()
        if scheme == b"bearer":
            if self._matches(credentials.strip()):
                return BearerTokenMiddleware(None)
            raise _refuse("invalid bearer token", info)
        if scheme == b"basic":
            decoded = _decode_basic(credentials.strip())
            if decoded is None:
                raise _refuse("malformed basic credentials", info)
            _user, sep, password = decoded.partition(b":")
            if sep and self._matches(password):
                return BearerTokenMiddleware(self._token)
            raise _refuse("invalid password (it must be the server's token)", info)
        raise _refuse(f"unsupported authorization scheme: {_HINT}", info)

    def _matches(self, presented: bytes) -> bool:
        return hmac.compare_digest(presented, self._token)


def _decode_basic(credentials: bytes) -> bytes | None:
    # arrow-go (the ADBC driver) sends unpadded base64 (RawStdEncoding); others pad.
    padded = credentials + b"=" * (-len(credentials) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def _refuse(message: str, info: flight.CallInfo) -> Exception:
    logger.info("refused %s call: %s", info.method, message)
    return to_flight_error(Unauthenticated(message))


class NoOpAuthHandler(flight.ServerAuthHandler):
    """Lets the Handshake RPC succeed; the middleware above does the checking.

    Without an auth handler pyarrow answers Handshake with UNIMPLEMENTED, and clients
    that authenticate with basic credentials (ADBC ``username``/``password``) would fail.
    """

    def authenticate(
        self, outgoing: flight.ServerAuthSender, incoming: flight.ServerAuthReader
    ) -> None:
        return None

    def is_valid(self, token: bytes) -> str:
        return ""
