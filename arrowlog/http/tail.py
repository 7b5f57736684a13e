"""``GET /v1/streams/{stream}/tail``: ``Log.open_tail`` as Server-Sent Events.

One subscription is one ``Log.Tail``, read by a thread of its own (it blocks while it
waits for appends, and encoding JSON is CPU work) and never on the event loop. The
thread encodes what it gets into SSE events and hands them over through a queue of at
most ``tail_buffer_bytes``, so a slow client slows its own tail down instead of piling
events up in memory. The events::

    retry: 3000                                  reconnect delay hint for EventSource

    event: subscribed                            first: where the tail starts
    data: {"stream": "http_logs", "from_offset": 1002}

    id: 1004                                     one per batch of consecutive offsets;
    event: records                               id = the batch's last offset, so
    data: {"first_offset": 1002, "last_offset": 1004, "records": [{...}, ...]}
                                                 (a reconnect resumes at id + 1)
    : keepalive                                  a comment every `heartbeat` seconds

    event: error                                 the tail was cut off: its client took
    data: {"reason": "...", "next_offset": 1005}  nothing for tail_send_timeout seconds

    event: end                                   the server stops (or the log closed)
    data: {"reason": "...", "next_offset": 1005}

Every parameter is checked, and the tail's slot taken (``max_tails``,
``max_tails_per_client``: 503 and 429 when over), before the answer starts: a bad one is a
400 naming it, never a 200 with an error inside.

A tail ends when the client disconnects (Starlette cancels the response, whose
``finally`` closes the tail; its thread wakes at once), when a send fails or its client
takes nothing for ``tail_send_timeout`` seconds (``_TailResponse``), when the server shuts
down (``TailHub.close``), or when the log closes. Heartbeats keep data moving on an idle
tail, and the connection's ``TCP_USER_TIMEOUT`` drops a peer that stops acknowledging it,
so a client that vanished without closing is noticed too. The number of tail threads
alive is the ``arrowlog_http_tails`` gauge; ``arrowlog_tails{protocol="http"}`` counts
the slots.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pyarrow as pa
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from arrowlog._formats import ndjson_lines
from arrowlog.config import Settings
from arrowlog.errors import ArrowlogError, InvalidInput, TooManyTails, Unavailable
from arrowlog.http.deps import LogDep
from arrowlog.http.models import ErrorResponse
from arrowlog.log import Log, Tail
from arrowlog.metrics import Metrics
from arrowlog.schema import OFFSET, pick_shard, validate_stream_name
from arrowlog.tails import MAX_OFFSET, check_offset, client_address

__all__ = ["TailHub", "router"]

logger = logging.getLogger(__name__)

EVENT_ROWS = 1000  # records per `records` event at most: a backlog arrives in slices
_WAIT = 30.0  # seconds a tail thread waits for records per call (close() wakes it at once)
_RETRY_MS = 3000
_PARAMETERS = ("from_offset", "heartbeat", "shard", "partition")
_CLOSE_GRACE = 5.0  # seconds a cut-off client gets to take its last bytes before the reset

router = APIRouter(tags=["streams"])


class TailHub:
    """The open HTTP tails of one app, so that a shutting-down server can end them all.

    Without it an open tail would hold uvicorn's graceful shutdown until its timeout:
    a tail never ends by itself.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._lock = threading.Lock()
        self._feeds: set[_Feed] = set()
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once ``close`` ran: new tails are refused."""
        return self._closed

    def start(self, feed: _Feed) -> None:
        """Start ``feed``'s thread.

        Raises:
            Unavailable: the server is shutting down.
        """
        with self._lock:
            if self._closed:
                raise Unavailable("the server is shutting down")
            self._feeds.add(feed)
        self._metrics.http_tails.inc()
        feed.start()

    def _ended(self, feed: _Feed) -> None:
        with self._lock:
            self._feeds.discard(feed)
        self._metrics.http_tails.dec()

    def close(self) -> None:
        """End every open tail (each answer ends with an ``end`` event) and refuse new ones."""
        with self._lock:
            self._closed = True
            feeds = list(self._feeds)
        for feed in feeds:
            feed.close()


class _Outbox:
    """Encoded events from a tail thread to the event loop: at most ``limit`` bytes.

    One event is always let in, however large (a single huge record must still go out).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._events: collections.deque[tuple[bytes, int]] = collections.deque()
        self._bytes = 0
        self._closed = False
        self._room = threading.Condition()

    def put(self, event: bytes, next_offset: int) -> bool:
        """Queue ``event``, waiting while the queue is full; False once closed."""
        with self._room:
            while self._events and self._bytes + len(event) > self.limit and not self._closed:
                self._room.wait()
            if self._closed:
                return False
            self._events.append((event, next_offset))
            self._bytes += len(event)
            return True

    def get(self) -> tuple[bytes, int] | None:
        with self._room:
            if not self._events:
                return None
            event = self._events.popleft()
            self._bytes -= len(event[0])
            self._room.notify()
            return event

    def close(self) -> None:
        with self._room:
            self._closed = True
            self._room.notify_all()


class _Feed:
    """One subscriber: a thread reading its ``Tail`` and the events it has encoded."""

    def __init__(
        self,
        hub: TailHub,
        tail: Tail,
        loop: asyncio.AbstractEventLoop,
        buffer_bytes: int,
    ) -> None:
        self.tail = tail
        self.from_offset = tail.offset
        self.finished = False  # set by the thread after it queued its last event
        self.error: ArrowlogError | None = None
        self.ready = asyncio.Event()  # set (from the thread) when there is something new
        # Half the budget for encoded events, half for the records read ahead of them.
        self.outbox = _Outbox(max(buffer_bytes // 2, 1))
        self._hub = hub
        self._loop = loop
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name=f"arrowlog-http-tail-{tail.stream}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    @property
    def stopped(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the thread now: its wait and its queue wake at once (never joined here)."""
        self._closed = True
        self.outbox.close()
        self.tail.close()
        self._wake()

    def _run(self) -> None:
        try:
            while not self._closed:
                events = self.tail.next(_WAIT, self._encode)
                if events is None:
                    if self.tail.ended:
                        return
                    continue
                for event, next_offset in events:
                    if not self.outbox.put(event, next_offset):
                        return
                    self._wake()
        except ArrowlogError as e:  # the log closed under the tail, the stream went away
            self.error = e
        except Exception as e:
            logger.exception("the HTTP tail of %r failed", self.tail.stream)
            self.error = ArrowlogError(f"the tail failed: {e}")
        finally:
            self.tail.close()  # gives the slot back
            self.finished = True
            self._hub._ended(self)
            self._wake()

    def _encode(self, table: pa.Table) -> list[tuple[bytes, int]]:
        return _records_events(table, self.outbox.limit)  # on the log's tail workers

    def _wake(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self.ready.set)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            self._closed = True


class _TailResponse(StreamingResponse):
    """A streamed answer whose sends time out: a client that takes nothing is cut off.

    uvicorn's ``send`` waits while the connection's write buffer is full, forever if the
    client never reads. Each send here waits at most ``send_timeout`` seconds; then the
    body ends with an ``error`` event (best effort: written past the full buffer), the
    connection is closed, and reset ``_CLOSE_GRACE`` seconds later if it has not gone.
    """

    def __init__(self, content: Any, *, send_timeout: float, cut_off: Any, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._send_timeout = send_timeout
        self._cut_off = cut_off  # () -> the error event's bytes, once the body is closed
        self._transport: asyncio.Transport | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._transport = _transport(receive)
        if self._transport is not None:
            _set_user_timeout(self._transport, self._send_timeout)
        await super().__call__(scope, receive, send)

    async def stream_response(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        async for chunk in self.body_iterator:
            message = {"type": "http.response.body", "body": chunk, "more_body": True}
            try:
                await asyncio.wait_for(send(message), self._send_timeout)
            except TimeoutError:
                await self._cut(send)
                return
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _cut(self, send: Send) -> None:
        await self.body_iterator.aclose()  # type: ignore[attr-defined]  # ends the tail now
        error = self._cut_off()
        transport = self._transport
        if transport is None or transport.is_closing():
            return  # uvicorn closes a connection whose answer did not complete
        # Chunked framing, as uvicorn would have written it.
        transport.write(b"%x\r\n%s\r\n" % (len(error), error))
        transport.close()  # sends what is buffered, then closes
        asyncio.get_running_loop().call_later(_CLOSE_GRACE, transport.abort)
        # Wait for the disconnect: Starlette's listener then ends this response (uvicorn
        # would log an unfinished answer if it ended first).
        await asyncio.sleep(_CLOSE_GRACE + 1.0)


def _transport(receive: Receive) -> asyncio.Transport | None:
    """The connection's transport: uvicorn's ``receive`` is a method of its request cycle."""
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    # uvloop's transports are not asyncio.Transport subclasses: check what is used.
    needed = ("write", "close", "abort", "is_closing", "get_extra_info")
    return transport if all(hasattr(transport, name) for name in needed) else None  # type: ignore[return-value]


def _set_user_timeout(transport: asyncio.Transport, seconds: float) -> None:
    """Drop the connection once sent data stays unacknowledged ``seconds`` (a gone peer)."""
    sock = transport.get_extra_info("socket")
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    if sock is None or option is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):  # not TCP after all: heartbeats alone must do
        sock.setsockopt(socket.IPPROTO_TCP, option, int(seconds * 1000))


def _event(name: str, data: bytes, event_id: int | None = None) -> bytes:
    # `data` is one line of JSON: json.dumps escapes CR and LF, the only line breaks of
    # text/event-stream (HTML Living Standard §9.2.6), so it needs no splitting.
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: ".encode() + data + b"\n\n"


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _records_events(table: pa.Table, limit: int) -> list[tuple[bytes, int]]:
    """``table`` as ``records`` events of at most EVENT_ROWS records and about ``limit``
    bytes (JSON runs ~2x Arrow's size): (event, the offset after its last record)."""
    rows = EVENT_ROWS
    if table.nbytes * 2 > limit and table.num_rows:
        rows = min(rows, max(limit * table.num_rows // (table.nbytes * 2), 1))
    out = []
    for start in range(0, table.num_rows, rows):
        piece = table.slice(start, rows)
        out.append((_records_event(piece), piece.column(OFFSET)[-1].as_py() + 1))
    return out


def _records_event(table: pa.Table) -> bytes:
    """One ``records`` event for a table of consecutive offsets (runs in the tail thread)."""
    first = table.column(OFFSET)[0].as_py()
    last = table.column(OFFSET)[-1].as_py()
    # ndjson_lines writes a row per line; no raw newline can occur inside a JSON value,
    # so joining the lines with commas makes a JSON array of the same objects.
    rows = b"".join(ndjson_lines(batch) for batch in table.to_batches())
    records = b"[" + rows.rstrip(b"\n").replace(b"\n", b",") + b"]"
    head = f'{{"first_offset":{first},"last_offset":{last},"records":'.encode()
    return _event("records", head + records + b"}", last)


class _Progress:
    """Where an answer stands: the offset after the last record sent."""

    def __init__(self, next_offset: int) -> None:
        self.next_offset = next_offset


async def _events(
    request: Request,
    hub: TailHub,
    feed: _Feed,
    heartbeat: float,
    progress: _Progress,
) -> AsyncIterator[bytes]:
    # The thread starts with the first iteration, not with the route: a response that is
    # cancelled before its body starts (the client already gone) never runs a `finally`
    # (the Tail, dropped, then gives its slot back when it is collected).
    try:
        hub.start(feed)
    except Unavailable as e:
        feed.close()
        yield _event("end", _json({"reason": str(e), "next_offset": feed.from_offset}))
        return
    try:
        yield f"retry: {_RETRY_MS}\n\n".encode() + _event(
            "subscribed", _json({"stream": feed.tail.stream, "from_offset": feed.from_offset})
        )
        ending = False
        while True:
            item = feed.outbox.get()
            if item is None:
                if ending:
                    break
                # The thread queues its last event before it sets `finished`: once it is
                # seen, one more pass over the queue sends everything.
                ending = feed.finished or feed.stopped
                if not ending:
                    try:
                        await asyncio.wait_for(feed.ready.wait(), heartbeat)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield b": keepalive\n\n"
                    feed.ready.clear()  # then look at the queue again: no wake-up is lost
                continue
            event, after = item
            yield event
            progress.next_offset = after  # resumed: the send completed, the client has it
        reason = str(feed.error) if feed.error else "the server is shutting down"
        yield _event("end", _json({"reason": reason, "next_offset": progress.next_offset}))
    finally:
        # Runs when the client disconnects too: Starlette cancels the response's task.
        feed.close()


_SSE_EXAMPLE = (
    "retry: 3000\n\n"
    'event: subscribed\ndata: {"stream":"http_logs","from_offset":1002}\n\n'
    'id: 1003\nevent: records\ndata: {"first_offset":1002,"last_offset":1003,"records":'
    '[{"ts":"2026-11-23T10:00:00+00:00","level":"INFO","msg":"GET /","_offset":1002,'
    '"_ingested_at":"2026-11-23T10:00:00.120000+00:00"},{"ts":"2026-11-23T10:00:01+00:00",'
    '"level":"ERROR","msg":"POST /pay","_offset":1003,'
    '"_ingested_at":"2026-11-23T10:00:01.004000+00:00"}]}\n\n'
    ": keepalive\n\n"
)


@router.get(
    "/v1/streams/{stream}/tail",
    summary="Follow a stream (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "An endless `text/event-stream`: a `subscribed` event, then a "
            "`records` event per batch of new records, `: keepalive` comments while idle, "
            "an `error` event if the client took nothing for `tail_send_timeout` seconds, "
            "and an `end` event if the server stops.",
            "content": {
                "text/event-stream": {"schema": {"type": "string"}, "example": _SSE_EXAMPLE}
            },
        },
        400: {"model": ErrorResponse, "description": "Bad stream name or parameters."},
        401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
        404: {"model": ErrorResponse, "description": "No such stream."},
        429: {
            "model": ErrorResponse,
            "description": "This client has `max_tails_per_client` tails open already.",
        },
        503: {
            "model": ErrorResponse,
            "description": "`max_tails` tails are open already, or the server is shutting down.",
        },
    },
)
async def tail(
    request: Request,
    stream: Annotated[str, Path(description="The stream name.", examples=["http_logs"])],
    log: LogDep,
    from_offset: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_OFFSET,
            description="The first offset to send. Default: the stream's next offset (only "
            "records acknowledged after subscribing), or `Last-Event-ID` + 1 on a reconnect.",
        ),
    ] = None,
    heartbeat: Annotated[
        float | None,
        Query(
            ge=0.5,
            le=300,
            description="Seconds between `: keepalive` comments while idle "
            "(default: the `tail_heartbeat` setting, 5).",
        ),
    ] = None,
    shard: Annotated[
        int | None,
        Query(
            ge=0,
            le=1023,
            description="For a stream of several shards (cluster mode), the shard to "
            "follow: offsets count per shard.",
        ),
    ] = None,
    partition: Annotated[
        int | None,
        Query(ge=0, le=1023, description="The former name of `shard`.", deprecated=True),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(description="Sent by SSE clients when they reconnect: the last `id` seen."),
    ] = None,
) -> Response:
    """Send the stream's records as they are acknowledged, until the client disconnects.

    Each `records` event carries a batch of consecutive offsets as JSON objects (system
    columns included, values spelled as in `POST /v1/query`'s NDJSON); its `id` is the
    batch's last offset. A client that reconnects with `Last-Event-ID` (or
    `from_offset` = last id + 1) misses nothing and sees nothing twice.

    A client may hold `max_tails_per_client` tails (429 beyond), the server `max_tails`
    (503 beyond). A client that takes nothing for `tail_send_timeout` seconds is cut off
    with an `error` event.

    ```
    curl -N http://127.0.0.1:8080/v1/streams/http_logs/tail?from_offset=0
    ```
    """
    settings: Settings = request.app.state.settings
    _check_parameters(request)
    validate_stream_name(stream)
    if from_offset is None and last_event_id is not None:
        try:
            last = int(last_event_id)
        except ValueError:
            raise InvalidInput(f"Last-Event-ID must be an offset, not {last_event_id!r}") from None
        from_offset = check_offset("Last-Event-ID + 1", last + 1)
    hub: TailHub = request.app.state.tails
    if hub.closed:
        raise Unavailable("the server is shutting down")
    client = client_address(request.client.host if request.client is not None else "unknown")
    try:
        # In a thread: the first look at a stream may read its catalog.
        opened = await run_in_threadpool(
            _open,
            log,
            stream,
            from_offset,
            pick_shard(shard, partition),
            client,
            settings.tail_buffer_bytes,
        )
    except TooManyTails as e:
        status = 429 if e.per_client else 503
        return JSONResponse(
            {"error": "TooManyTails", "message": str(e)},
            status_code=status,
            headers={"Retry-After": "5"},
        )
    feed = _Feed(hub, opened, asyncio.get_running_loop(), settings.tail_buffer_bytes)
    progress = _Progress(opened.offset)

    def cut_off() -> bytes:
        log.metrics.tails_cut_off.inc()
        reason = (
            f"the client took nothing for {settings.tail_send_timeout:g} s "
            "(tail_send_timeout): cut off; resume from next_offset"
        )
        logger.info("HTTP tail of %r from %s cut off: %s", stream, client, reason)
        return _event("error", _json({"reason": reason, "next_offset": progress.next_offset}))

    return _TailResponse(
        _events(request, hub, feed, heartbeat or settings.tail_heartbeat, progress),
        send_timeout=settings.tail_send_timeout,
        cut_off=cut_off,
        media_type="text/event-stream",
        # no-transform and X-Accel-Buffering: proxies must pass events through as they come.
        headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
    )


def _check_parameters(request: Request) -> None:
    """Refuse query parameters the tail does not take (``limit``: a tail has no end)."""
    for name in request.query_params:
        if name not in _PARAMETERS:
            raise InvalidInput(
                f"unknown query parameter {name!r}: a tail takes "
                + ", ".join(_PARAMETERS)
                + (
                    " (it has no limit: it runs until the client disconnects)"
                    if name == "limit"
                    else ""
                )
            )


def _open(
    log: Log,
    stream: str,
    from_offset: int | None,
    shard: int | None,
    client: str,
    buffer_bytes: int,
) -> Tail:
    info = log.describe(stream)  # 404 before the answer starts
    if info.shards > 1 and shard is None:
        raise InvalidInput(
            f"stream {stream!r} has {info.shards} shards, each with its own offsets: pass ?shard="
        )
    if from_offset is None:
        from_offset = log.next_offset(stream, shard)
    return log.open_tail(
        stream,
        from_offset,
        shard=shard,
        batch_rows=64 * 1024,
        max_bytes=max(buffer_bytes // 2, 1),
        client=client,
        protocol="http",
    )
