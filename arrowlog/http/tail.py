"""``GET /v1/streams/{stream}/tail``: ``Log.tail`` as Server-Sent Events.

One subscription is one ``Log.tail`` generator, run in a thread of its own (it blocks
while it waits for appends) and never on the event loop. The thread encodes each table
it gets into one SSE event and hands it over through a small bounded queue, so a slow
client slows its own tail down instead of piling events up in memory. The events::

    retry: 3000                                  reconnect delay hint for EventSource

    event: subscribed                            first: where the tail starts
    data: {"stream": "http_logs", "from_offset": 1002}

    id: 1004                                     one per batch of consecutive offsets;
    event: records                               id = the batch's last offset, so
    data: {"first_offset": 1002, "last_offset": 1004, "records": [{...}, ...]}
                                                 (a reconnect resumes at id + 1)
    : heartbeat                                  a comment every `heartbeat` seconds

    event: end                                   the server stops (or the log closed)
    data: {"reason": "...", "next_offset": 1005}

A tail ends when the client disconnects (Starlette cancels the response, whose
``finally`` sets the thread's stop event; the thread notices within ``_POLL`` seconds),
when the server shuts down (``TailHub.close``), or when the log closes. The number of
tail threads alive is the ``arrowlog_http_tails`` gauge.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
from collections.abc import AsyncIterator
from typing import Annotated

import pyarrow as pa
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from arrowlog._formats import ndjson_lines
from arrowlog.errors import ArrowlogError, InvalidInput, Unavailable
from arrowlog.http.deps import LogDep
from arrowlog.http.models import ErrorResponse
from arrowlog.log import Log
from arrowlog.metrics import Metrics
from arrowlog.schema import OFFSET, validate_stream_name

__all__ = ["TailHub", "router"]

logger = logging.getLogger(__name__)

EVENT_ROWS = 1000  # records per `records` event at most: a backlog arrives in slices
_POLL = 0.5  # seconds a tail thread waits before it checks its stop event again
_PENDING_EVENTS = 4  # events queued per subscriber before its tail thread waits
_RETRY_MS = 3000

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

    def open(self, log: Log, stream: str, from_offset: int, partition: int | None = None) -> _Feed:
        """Start a tail thread for ``stream`` (``partition``) from ``from_offset``.

        Raises:
            Unavailable: the server is shutting down.
        """
        feed = _Feed(self, log, stream, from_offset, asyncio.get_running_loop(), partition)
        with self._lock:
            if self._closed:
                raise Unavailable("the server is shutting down")
            self._feeds.add(feed)
        self._metrics.http_tails.inc()
        feed.start()
        return feed

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


class _Feed:
    """One subscriber: a thread running ``Log.tail`` and the events it has encoded."""

    def __init__(
        self,
        hub: TailHub,
        log: Log,
        stream: str,
        from_offset: int,
        loop: asyncio.AbstractEventLoop,
        partition: int | None = None,
    ) -> None:
        self.stop = threading.Event()
        self.partition = partition
        self.finished = False  # set by the thread after it queued its last event
        self.from_offset = from_offset
        self.error: ArrowlogError | None = None
        self.ready = asyncio.Event()  # set (from the thread) when there is something new
        # (encoded event, the offset after its last record)
        self.events: queue.Queue[tuple[bytes, int]] = queue.Queue(maxsize=_PENDING_EVENTS)
        self._hub = hub
        self._log = log
        self._stream = stream
        self._loop = loop
        self._thread = threading.Thread(
            target=self._run, name=f"arrowlog-http-tail-{stream}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Ask the thread to stop; it ends within ``_POLL`` seconds (never joined here)."""
        self.stop.set()
        self._wake()

    def _run(self) -> None:
        try:
            for table in self._log.tail(
                self._stream,
                self.from_offset,
                batch_rows=EVENT_ROWS,
                poll=_POLL,
                stop=self.stop,
                partition=self.partition,
            ):
                next_offset = table.column(OFFSET)[-1].as_py() + 1
                if not self._put((_records_event(table), next_offset)):
                    return
        except ArrowlogError as e:  # the log closed under the tail, the stream went away
            self.error = e
        except Exception as e:
            logger.exception("the HTTP tail of %r failed", self._stream)
            self.error = ArrowlogError(f"the tail failed: {e}")
        finally:
            self.finished = True
            self._hub._ended(self)
            self._wake()

    def _put(self, event: tuple[bytes, int]) -> bool:
        """Queue ``event``, waiting while the client is behind; False once stopped."""
        while not self.stop.is_set():
            try:
                self.events.put(event, timeout=_POLL)
            except queue.Full:
                continue
            self._wake()
            return True
        return False

    def _wake(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self.ready.set)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            self.stop.set()


def _event(name: str, data: bytes, event_id: int | None = None) -> bytes:
    # `data` is one line of JSON: json.dumps escapes CR and LF, the only line breaks of
    # text/event-stream (HTML Living Standard §9.2.6), so it needs no splitting.
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: ".encode() + data + b"\n\n"


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


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


async def _events(
    hub: TailHub,
    log: Log,
    stream: str,
    from_offset: int,
    heartbeat: float,
    partition: int | None = None,
) -> AsyncIterator[bytes]:
    # The thread starts with the first iteration, not with the route: a response that is
    # cancelled before its body starts (the client already gone) never runs a `finally`.
    try:
        feed = hub.open(log, stream, from_offset, partition)
    except Unavailable as e:
        yield _event("end", _json({"reason": str(e), "next_offset": from_offset}))
        return
    try:
        yield f"retry: {_RETRY_MS}\n\n".encode() + _event(
            "subscribed", _json({"stream": stream, "from_offset": from_offset})
        )
        next_offset = from_offset  # after the last record sent: what a reconnect asks for
        ending = False
        while True:
            try:
                event, after = feed.events.get_nowait()
            except queue.Empty:
                if ending:
                    break
                # The thread queues its last event before it sets `finished`: once it is
                # seen, one more pass over the queue sends everything.
                ending = feed.finished or feed.stop.is_set()
                if not ending:
                    try:
                        await asyncio.wait_for(feed.ready.wait(), heartbeat)
                    except TimeoutError:
                        yield b": heartbeat\n\n"
                    feed.ready.clear()  # then look at the queue again: no wake-up is lost
                continue
            yield event
            next_offset = after
        reason = str(feed.error) if feed.error else "the server is shutting down"
        yield _event("end", _json({"reason": reason, "next_offset": next_offset}))
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
    ": heartbeat\n\n"
)


@router.get(
    "/v1/streams/{stream}/tail",
    summary="Follow a stream (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "An endless `text/event-stream`: a `subscribed` event, then a "
            "`records` event per batch of new records, heartbeat comments while idle, and "
            "an `end` event if the server stops.",
            "content": {
                "text/event-stream": {"schema": {"type": "string"}, "example": _SSE_EXAMPLE}
            },
        },
        400: {"model": ErrorResponse, "description": "Bad stream name or parameters."},
        401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
        404: {"model": ErrorResponse, "description": "No such stream."},
        503: {"model": ErrorResponse, "description": "The server is shutting down."},
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
            description="The first offset to send. Default: the stream's next offset (only "
            "records acknowledged after subscribing), or `Last-Event-ID` + 1 on a reconnect.",
        ),
    ] = None,
    heartbeat: Annotated[
        float,
        Query(ge=0.5, le=300, description="Seconds between heartbeat comments while idle."),
    ] = 15.0,
    partition: Annotated[
        int | None,
        Query(
            ge=0,
            description="For a stream of several partitions (cluster mode), the partition "
            "to follow: offsets count per partition.",
        ),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(description="Sent by SSE clients when they reconnect: the last `id` seen."),
    ] = None,
) -> StreamingResponse:
    """Send the stream's records as they are acknowledged, until the client disconnects.

    Each `records` event carries a batch of consecutive offsets as JSON objects (system
    columns included, values spelled as in `POST /v1/query`'s NDJSON); its `id` is the
    batch's last offset. A client that reconnects with `Last-Event-ID` (or
    `from_offset` = last id + 1) misses nothing and sees nothing twice.

    ```
    curl -N http://127.0.0.1:8080/v1/streams/http_logs/tail?from_offset=0
    ```
    """
    validate_stream_name(stream)
    info = await run_in_threadpool(log.describe, stream)  # 404 before the answer starts
    if from_offset is None and last_event_id is not None:
        try:
            from_offset = int(last_event_id) + 1
        except ValueError:
            raise InvalidInput(f"Last-Event-ID must be an offset, not {last_event_id!r}") from None
    if info.partitions > 1 and partition is None:
        raise InvalidInput(
            f"stream {stream!r} has {info.partitions} partitions, each with its own offsets: "
            "pass ?partition="
        )
    if from_offset is None:
        if info.partitions > 1:
            from_offset = log.next_offset(stream, partition)
        else:
            from_offset = 0 if info.last_offset is None else info.last_offset + 1
    hub: TailHub = request.app.state.tails
    if hub.closed:
        raise Unavailable("the server is shutting down")
    return StreamingResponse(
        _events(hub, log, stream, from_offset, heartbeat, partition),
        media_type="text/event-stream",
        # no-transform and X-Accel-Buffering: proxies must pass events through as they come.
        headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
    )
