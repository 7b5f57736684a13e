"""uvicorn's HTTP/1.1 protocol (httptools), with the limits it lacks before a request starts.

uvicorn bounds nothing until a request's headers are complete: a client may take forever
to send them (slowloris), send megabytes of them, or connect and say nothing; its
keep-alive timeout only starts after an answer. ``protocol_class(settings)`` returns
the same protocol with two limits added:

- ``http_header_timeout``: the request line and headers must be complete this many
  seconds after the connection opened (or the previous answer ended). Past it, a client
  in the middle of its headers gets 408; one that sent nothing is just disconnected.
- ``http_max_header_bytes``: more bytes than this without the headers ending get 431.

Both answers use the API's error shape (``arrowlog.http.errors``) and close the
connection, as does uvicorn's 400 for a request httptools cannot parse (plain text in
uvicorn). What comes after the headers (the body) is bounded by ``arrowlog.http.limits``.
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from arrowlog.config import Settings
from arrowlog.http.errors import error_body, status_name

__all__ = ["protocol_class"]


def protocol_class(settings: Settings) -> type[HttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)``, with ``settings``' header limits."""

    class Protocol(_GuardedProtocol):
        header_timeout = settings.http_header_timeout
        max_header_bytes = settings.http_max_header_bytes

    return Protocol


class _GuardedProtocol(HttpToolsProtocol):
    header_timeout: float
    max_header_bytes: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_head = False  # a request's line and headers are arriving
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Still in a request's head after this chunk: its bytes count against the limit.
        # (A chunk that ends the head is not counted: one read is at most 256 KiB.)
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse(
                    431,
                    f"the request line and headers are over {self.max_header_bytes} bytes "
                    "(http_max_header_bytes)",
                )

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        idle = self.cycle is None or self.cycle.response_complete  # no pipelined request
        if idle and not self.transport.is_closing():
            # The next request's head gets the same time (uvicorn's keep-alive timer, armed
            # by the call above, still closes a silent connection sooner).
            self._arm_header_timer()

    def send_400_response(self, msg: str) -> None:
        self._cancel_header_timer()
        self._write_error(400, f"invalid HTTP request: {msg}")

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if not self._in_head:
            # Nothing asked, or only the rest of an answered request's body: just close.
            self.transport.close()
            return
        self._refuse(
            408,
            f"the request's headers did not arrive within {self.header_timeout:g} s "
            "(http_header_timeout)",
        )

    def _refuse(self, status: int, message: str) -> None:
        self.logger.info("%s: %s", self._peer(), message)
        self._cancel_header_timer()
        self._write_error(status, message)

    def _write_error(self, status: int, message: str) -> None:
        body = json.dumps(error_body(status_name(status), message)).encode()
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        ).encode()
        self.transport.write(head + body)
        self.transport.close()

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
