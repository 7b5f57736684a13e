"""arrowlog.connect(): the remote Log, over Arrow Flight, with the same verbs.

The client speaks the plain-Flight side of ``flight_server`` (its module docstring is the
wire reference): SQL tickets for ``sql``, JSON tickets for ``read``, ``iter_read`` and
``tail``, DoPut with a path descriptor for ``append``, GetSchema for ``schema``, actions
for ``streams``, ``describe``, ``flush`` and ``compact``. Results arrive as Arrow record
batches, unconverted.

Each verb takes the parameters of ``Log``'s and returns the same types
(``arrowlog/results.py``, ``QueryResult``), so code written against ``arrowlog.open()``
runs against ``arrowlog.connect()`` unchanged; ``tests/unit/test_client_api.py`` holds
the two to it. What the wire cannot carry yet (``append``'s ``time_column`` and
``partition``, ``sql``'s ``engine`` and ``params``) and the verbs that exist only
embedded are listed there.

Server errors come back as the very class the server raised, with its message and
attributes, as ``Log`` raises them: the server maps each class to a Flight status in one
place (``flight_server/errors.py``) and names the class alongside (``arrowlog/wire_errors.py``);
:func:`_translate` here raises that class, stripping the detail pyarrow appends to every
status message. Without a name it knows (an older server, a client-side failure) it raises
the class the status code stands for.

    import arrowlog
    with arrowlog.connect("grpc://127.0.0.1:8815", token=None) as client:
        client.append("http_logs", [{"ts": "2026-11-23T10:00:00Z", "level": "INFO"}])
        client.sql("SELECT level, count(*) FROM http_logs GROUP BY level").to_pandas()
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight

from arrowlog import wire_errors
from arrowlog.errors import (
    ArrowlogError,
    InvalidInput,
    StreamNotFound,
    Unauthenticated,
    Unavailable,
)
from arrowlog.results import AppendResult, CompactionResult, StreamInfo
from arrowlog.schema import OFFSET, pick_shard, to_table, validate_stream_name
from arrowlog.sql.result import QueryResult

__all__ = ["Client", "connect"]

logger = logging.getLogger(__name__)

_STOP_POLL = 0.2  # seconds between checks that a tail's reader was closed

# pyarrow's text of a server error: the server's message, ". Detail: " and the status detail
# (a code's name or arrowlog's class name), then, for some calls, gRPC's debug context (which
# repeats them) and the client's own.
_DETAIL = ". Detail: "
_CONTEXT_MARKERS = (". gRPC client debug context: ", ". Client context: ")


def _message_and_detail(exc: BaseException) -> tuple[str, str]:
    """The message the server raised and its status detail, from a pyarrow error's text."""
    text = str(exc)
    for marker in _CONTEXT_MARKERS:
        text = text.split(marker, 1)[0]
    message, found, detail = text.rpartition(_DETAIL)  # the detail holds no ". Detail: "
    return (message, detail) if found else (text, "")


def _class_of_status(exc: BaseException) -> type[ArrowlogError]:
    """The arrowlog class a Flight/Arrow error's status code stands for."""
    if isinstance(exc, flight.FlightUnauthenticatedError):
        return Unauthenticated
    if isinstance(
        exc,
        flight.FlightUnavailableError | flight.FlightTimedOutError | flight.FlightCancelledError,
    ):
        return Unavailable
    if isinstance(exc, pa.ArrowKeyError):  # NOT_FOUND
        return StreamNotFound
    if isinstance(exc, pa.ArrowInvalid | pa.ArrowNotImplementedError):
        return InvalidInput  # INVALID_ARGUMENT, UNIMPLEMENTED
    return ArrowlogError


def _translate(exc: BaseException) -> ArrowlogError:
    """The arrowlog error a Flight/Arrow error from the server stands for.

    The class the server named (in ``extra_info`` or the status detail) if it is one of
    arrowlog's and agrees with the status code, else the status code's class.
    """
    message, detail = _message_and_detail(exc)
    by_status = _class_of_status(exc)
    info = getattr(exc, "extra_info", None) or b""
    name, attributes = wire_errors.decode(info) or (wire_errors.name_in_detail(detail), {})
    error = wire_errors.rebuild(name, message, attributes, within=by_status) if name else None
    return error if error is not None else by_status(message)


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (flight.FlightError, pa.ArrowException) as e:
        raise _translate(e) from e


def _batches(reader: flight.FlightStreamReader) -> Iterator[pa.RecordBatch]:
    with _translated():
        while True:
            try:
                chunk = reader.read_chunk()
            except StopIteration:
                return
            if chunk.data is not None:
                yield chunk.data


class Client:
    """A connection to an arrowlog Flight server. Thread-safe; also a context manager.

    Not constructed directly: use :func:`arrowlog.connect`.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        tls_root_certs: bytes | str | Path | None = None,
        timeout: float | None = None,
    ) -> None:
        if "://" not in url:
            url = "grpc://" + url
        self.url = url
        kwargs: dict[str, Any] = {}
        if tls_root_certs is not None:
            kwargs["tls_root_certs"] = (
                tls_root_certs
                if isinstance(tls_root_certs, bytes)
                else Path(tls_root_certs).read_bytes()
            )
        with _translated():
            self._flight = flight.FlightClient(url, **kwargs)
        headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
        self._options = flight.FlightCallOptions(headers=headers, timeout=timeout)
        # Tails block in reads with no deadline.
        self._stream_options = flight.FlightCallOptions(headers=headers)

    # -- writing ---------------------------------------------------------------------------

    def append(self, stream: str, data: Any) -> AppendResult:
        """Append records durably; the same inputs as ``Log.append``.

        The records travel as one Arrow batch, so they get contiguous offsets; the answer
        comes after the server's WAL fsync.

        Raises:
            InvalidInput, BatchTooLarge, StorageError, Unavailable: as ``Log.append``.

        Example: ``client.append("http_logs", df).last_offset``
        """
        validate_stream_name(stream)
        table = to_table(data).combine_chunks()
        descriptor = flight.FlightDescriptor.for_path(stream)
        with _translated():
            writer, acks = self._flight.do_put(descriptor, table.schema, self._options)
            with writer:
                writer.write_table(table)
                writer.done_writing()
                ack = acks.read()
        if ack is None:
            raise ArrowlogError(f"the server sent no acknowledgement for the append to {stream!r}")
        return AppendResult.from_dict(json.loads(ack.to_pybytes()))

    # -- reading ---------------------------------------------------------------------------

    def sql(self, query: str) -> QueryResult:
        """Run a read-only SQL query on the server; the result streams as it is read.

        The query is planned now (errors raise here); iterating again re-runs it.

        Raises:
            ReadOnlyQuery, StreamNotFound, InvalidInput: as ``Log.sql``.

        Example: ``client.sql("SELECT count(*) FROM http_logs").to_pandas()``
        """
        ticket = flight.Ticket(query.encode("utf-8"))
        first = [self._do_get(ticket)]
        with _translated():
            schema = first[0].schema

        def batches() -> Iterator[pa.RecordBatch]:
            reader = first.pop() if first else self._do_get(ticket)
            finished = False
            try:
                yield from _batches(reader)
                finished = True
            finally:
                if not finished:
                    reader.cancel()  # abandoned half-way: free the server's stream

        return QueryResult(schema, batches)

    def sql_schema(self, query: str) -> pa.Schema:
        """The schema ``sql`` would return, planned by the server without data (GetSchema).

        Raises:
            ReadOnlyQuery, StreamNotFound, InvalidInput: as ``Log.sql_schema``.

        Example: ``client.sql_schema("SELECT level, count(*) FROM http_logs GROUP BY level")``
        """
        descriptor = flight.FlightDescriptor.for_command(query.encode("utf-8"))
        with _translated():
            return self._flight.get_schema(descriptor, self._options).schema

    def read(
        self,
        stream: str,
        from_offset: int = 0,
        limit: int = 1000,
        *,
        shard: int | None = None,
        partition: int | None = None,
    ) -> pa.Table:
        """Records ``from_offset`` onwards in offset order, at most ``limit``: as ``Log.read``.

        ``partition`` is the former name of ``shard``.
        """
        ticket: dict[str, Any] = {"read": stream, "from_offset": from_offset, "limit": limit}
        shard = pick_shard(shard, partition)
        if shard is not None:
            ticket["shard"] = shard
        reader = self._do_get(flight.Ticket(json.dumps(ticket).encode()))
        with _translated():
            return reader.read_all()

    def iter_read(
        self,
        stream: str,
        from_offset: int = 0,
        batch_rows: int = 64 * 1024,
        *,
        shard: int | None = None,
        partition: int | None = None,
    ) -> Iterator[pa.Table]:
        """Replay everything from ``from_offset`` up to the current end, ``batch_rows`` at a time.

        One read ticket without a limit: the server streams up to the stream's end as of
        the call, and the batches are regrouped here into tables of ``batch_rows``.
        ``partition`` is the former name of ``shard``.

        Example: ``for table in client.iter_read("http_logs"): ...``
        """
        _check_batch_rows(batch_rows)
        ticket: dict[str, Any] = {"read": stream, "from_offset": from_offset}
        shard = pick_shard(shard, partition)
        if shard is not None:
            ticket["shard"] = shard
        reader = self._do_get(flight.Ticket(json.dumps(ticket).encode()))
        pending: list[pa.RecordBatch] = []
        rows = 0
        finished = False
        try:
            for batch in _batches(reader):
                pending.append(batch)
                rows += batch.num_rows
                while rows >= batch_rows:
                    table = pa.Table.from_batches(pending).combine_chunks()
                    yield table.slice(0, batch_rows)
                    rest = table.slice(batch_rows)
                    pending, rows = rest.to_batches(), rest.num_rows
            finished = True
        finally:
            if not finished:
                reader.cancel()  # abandoned half-way: free the server's stream
        if rows:
            yield pa.Table.from_batches(pending).combine_chunks()

    def tail(
        self,
        stream: str,
        from_offset: int = 0,
        *,
        batch_rows: int = 64 * 1024,
        poll: float = 1.0,
        stop: threading.Event | None = None,
        shard: int | None = None,
        partition: int | None = None,
    ) -> Iterator[pa.Table]:
        """Follow a stream: records from ``from_offset``, then new ones as they are acknowledged.

        Runs until ``stop`` is set (from any thread), the iterator is closed (``break``), or
        the server goes away (then ``Unavailable`` is raised). Each table holds
        consecutive offsets, at most ``batch_rows`` of them; ``poll`` bounds how long a
        wait lasts before ``stop`` is checked again. When the stream's schema evolves the
        server ends the Flight stream; this resubscribes from the next offset with the new
        schema. ``partition`` is the former name of ``shard``.

        Example: ``for table in client.tail("http_logs", from_offset=1000): ...``
        """
        _check_batch_rows(batch_rows)
        stopped = stop.is_set if stop is not None else (lambda: False)
        shard = pick_shard(shard, partition)
        offset = from_offset
        while not stopped():
            ticket: dict[str, Any] = {"tail": stream, "from_offset": offset}
            if shard is not None:
                ticket["shard"] = shard
            reader = self._do_get(flight.Ticket(json.dumps(ticket).encode()), self._stream_options)
            received = 0
            # Read in a thread: a Flight read blocks in C++ with no timeout, where neither
            # `stop` nor Ctrl-C (KeyboardInterrupt) could reach it.
            pump = _Pump(reader)
            try:
                while not stopped():
                    batch = pump.get(poll)
                    if batch is None:
                        continue  # nothing yet: check stop again
                    if batch is _END:
                        break
                    received += batch.num_rows
                    offset = batch.column(OFFSET)[-1].as_py() + 1
                    table = pa.Table.from_batches([batch])
                    for start in range(0, table.num_rows, batch_rows):
                        yield table.slice(start, batch_rows)
            finally:
                pump.close()
            if not received and not stopped():
                raise Unavailable(f"the server ended the tail of stream {stream!r}")

    # -- streams ---------------------------------------------------------------------------

    def streams(self) -> list[StreamInfo]:
        """Every stream: name, schema, time column, row count, offset range, bytes."""
        return [StreamInfo.from_dict(info) for info in self._action("list_streams")]

    def describe(self, stream: str) -> StreamInfo:
        """One stream's StreamInfo. Raises StreamNotFound."""
        return StreamInfo.from_dict(self._action("describe", stream))

    def schema(self, stream: str) -> pa.Schema:
        """The stream's current schema, system columns included."""
        descriptor = flight.FlightDescriptor.for_path(stream)
        with _translated():
            return self._flight.get_schema(descriptor, self._options).schema

    def flush(self, stream: str | None = None) -> None:
        """Make the server write buffered records to Parquet segments now."""
        self._action("flush", stream)

    def compact(self, stream: str | None = None) -> list[CompactionResult]:
        """Make the server compact small segments now; one CompactionResult per stream."""
        return [CompactionResult(**result) for result in self._action("compact", stream)]

    # -- plumbing --------------------------------------------------------------------------

    def _do_get(
        self, ticket: flight.Ticket, options: flight.FlightCallOptions | None = None
    ) -> flight.FlightStreamReader:
        with _translated():
            return self._flight.do_get(ticket, options or self._options)

    def _action(self, name: str, stream: str | None = None) -> Any:
        body = stream.encode("utf-8") if stream else b""
        with _translated():
            results = list(self._flight.do_action(flight.Action(name, body), self._options))
        return json.loads(results[0].body.to_pybytes()) if results else None

    def close(self) -> None:
        """Close the connection (calls in progress are cancelled)."""
        self._flight.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<arrowlog.Client {self.url!r}>"


_END = object()


def _check_batch_rows(batch_rows: int) -> None:
    if batch_rows < 1:
        raise InvalidInput(f"batch_rows must be at least 1, got {batch_rows}")


class _Pump:
    """Reads a Flight stream in a thread into a small queue, so waiting is interruptible."""

    def __init__(self, reader: flight.FlightStreamReader) -> None:
        self._reader = reader
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=4)  # bounded: back-pressure
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="arrowlog-tail", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for batch in _batches(self._reader):
                self._put(batch)
            self._put(_END)
        except Exception as e:  # forwarded: get() raises it in the consumer's thread
            self._put(e)

    def _put(self, item: object) -> None:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=_STOP_POLL)
                return
            except queue.Full:
                continue

    def get(self, timeout: float) -> Any:
        """The next batch, ``_END``, or None if nothing came within ``timeout``; raises errors."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._closed.set()
        self._reader.cancel()
        self._thread.join()


def connect(
    url: str, token: str | None = None, *, tls_root_certs: bytes | str | Path | None = None
) -> Client:
    """Connect to an arrowlog Flight server.

    Args:
        url: ``grpc://host:port`` or ``grpc+tls://host:port`` (``host:port`` means grpc).
        token: the server's bearer token, if it requires one.
        tls_root_certs: PEM bytes or a file of the CA (or self-signed certificate) to trust
            for ``grpc+tls``; default: the system's roots.

    Returns:
        A :class:`Client`; the connection is made on the first call.

    Example: ``client = arrowlog.connect("grpc://127.0.0.1:8815")``
    """
    return Client(url, token, tls_root_certs=tls_root_certs)
