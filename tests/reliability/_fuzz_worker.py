"""The worker process of ``test_fuzz_binary_decoders``: decodes one input at a time.

Native decoders (Arrow IPC, CSV, gzip, Flight's DoPut reader) can kill the process that
runs them, so they run here, not in pytest. Frames on stdin: ``>BBI`` (kind, flags,
length) and the input; one line per frame on stdout: ``ok <rows> <digest>``,
``refused <class>``, ``transport <what>`` (DoPut: refused before arrowlog's handler ran,
or with a status of pyarrow's own) or ``bug <what>`` (any other exception: the server
would answer INTERNAL). A crash is the parent's to see: the process is gone.

Kinds:

0. an HTTP Arrow IPC body: ``decode_body(body, "arrow")`` (flag 1: gzip-encoded);
1. an HTTP NDJSON body gzip-encoded as sent (the gzip framing: ``decode_body(gzipped=True)``);
2. a CSV file as ``arrowlog ingest`` reads it (``_Input.read``; flag 1: ``.csv.gz``, read
   by Arrow's gzip stream; flag 2: 64-byte blocks so records cross block boundaries);
3. a Flight DoPut: the bytes are the gRPC request body (length-prefixed ``FlightData``
   messages), sent over a raw HTTP/2 connection to a Flight server in this process whose
   ``do_put`` reads the upload with the server's own reader function (``_batches``);
4. a Parquet file as ``arrowlog ingest`` reads it.

Every table decoded goes through what ``Log.append`` does first (``to_table``,
``normalize``, the WAL's IPC encoding) and is then written as Parquet, as a flush
would: an invalid table that slipped through crashes or fails here.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import sys
import tempfile
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq

from arrowlog import cli
from arrowlog.errors import BatchTooLarge, InvalidInput
from arrowlog.http.body import decode_body
from arrowlog.schema import normalize, to_table
from arrowlog.wal import encode_batch
from flight_server.server import _batches, _path_stream

LIMIT = 1 << 20
REFUSED = (InvalidInput, BatchTooLarge)


def append_steps(data: object) -> tuple[int, str]:
    """What ``Log.append`` does with a decoded batch before the WAL, then what a flush does.

    Every value is read natively, as the Parquet writer of a flush reads them (values
    valid in Arrow but outside Python's range, such as a date in year 10,000, are fine).
    """
    table = normalize(to_table(data), max_string_bytes=LIMIT)
    encoded = encode_batch(table)
    pq.write_table(table, pa.BufferOutputStream())
    return table.num_rows, hashlib.sha256(encoded.ipc.to_pybytes()).hexdigest()[:16]


def outcome(run: object) -> str:
    try:
        rows, digest = run()  # type: ignore[operator]
        return f"ok {rows} {digest}"
    except REFUSED as e:
        return f"refused {type(e).__name__}"
    except (flight.FlightCancelledError, flight.FlightUnavailableError) as e:
        return f"transport {type(e).__name__}"  # the call ended under the reader
    except BaseException as e:  # everything else is what the fuzzing looks for
        return f"bug {type(e).__name__}: {str(e)[:300]!r}"


# -- HTTP bodies ---------------------------------------------------------------------------------


def http_arrow(body: bytes, flags: int) -> tuple[int, str]:
    return append_steps(decode_body(body, "arrow", gzipped=bool(flags & 1), limit=LIMIT))


def http_gzip(body: bytes, flags: int) -> tuple[int, str]:
    return append_steps(decode_body(body, "ndjson", gzipped=True, limit=LIMIT))


# -- arrowlog ingest -----------------------------------------------------------------------------

SCRATCH = Path(
    tempfile.mkdtemp(prefix="arrowlog-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
)
DEFAULT_CHUNK = cli._CHUNK_BYTES


def ingest_file(body: bytes, name: str, fmt: str, tiny: bool) -> tuple[int, str]:
    path = SCRATCH / name
    path.write_bytes(body)
    cli._CHUNK_BYTES = 64 if tiny else DEFAULT_CHUNK
    source = cli._Input.resolve(str(path), fmt)
    rows, digests = 0, []
    payloads = source.read(1000, 1 << 20)
    while True:
        # What _append_all refuses as "cannot read FILE as FORMAT" (a ClickException).
        try:
            item = next(payloads, None)
        except (pa.ArrowException, OSError, InvalidInput, UnicodeDecodeError) as e:
            raise InvalidInput(f"cannot read: {e}") from e
        if item is None:
            return rows, hashlib.sha256("".join(digests).encode()).hexdigest()[:16]
        n, digest = append_steps(item[0])
        rows += n
        digests.append(digest)


def cli_csv(body: bytes, flags: int) -> tuple[int, str]:
    return ingest_file(body, "in.csv.gz" if flags & 1 else "in.csv", "auto", bool(flags & 2))


def cli_parquet(body: bytes, flags: int) -> tuple[int, str]:
    return ingest_file(body, "in.parquet", "auto", False)


# -- Flight DoPut over raw HTTP/2 ----------------------------------------------------------------

LAST_PUT: list[str] = []
HANDLERS = threading.Condition()  # notified when a do_put handler ends
RUNNING = [0]  # do_put handlers running


class PutServer(flight.FlightServerBase):
    """``do_put`` reads the upload as the arrowlog server does, and notes what happened."""

    def do_put(self, context, descriptor, reader, writer):  # type: ignore[no-untyped-def]
        def run() -> tuple[int, str]:
            _path_stream(descriptor)
            rows, digests = 0, []
            for batch in _batches(reader):
                n, digest = append_steps(batch)
                rows += n
                digests.append(digest)
            return rows, hashlib.sha256("".join(digests).encode()).hexdigest()[:16]

        with HANDLERS:
            RUNNING[0] += 1
        try:
            LAST_PUT.append(outcome(run))
        finally:
            with HANDLERS:
                RUNNING[0] -= 1
                HANDLERS.notify_all()


def _hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def _hpack(headers: list[tuple[bytes, bytes]]) -> bytes:
    """Literal header fields without indexing, new names, no Huffman: no table to keep."""
    out = b""
    for name, value in headers:
        out += b"\x00" + _hpack_int(len(name), 7) + name + _hpack_int(len(value), 7) + value
    return out


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream)
        + payload
    )


DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0, 1, 3, 4, 6, 7
END_STREAM, END_HEADERS, ACK = 1, 4, 1


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def grpc_put(port: int, body: bytes) -> str:
    """Send ``body`` as the request of a DoPut; what the server's handler noted."""
    LAST_PUT.clear()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        headers = _hpack(
            [
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":path", b"/arrow.flight.protocol.FlightService/DoPut"),
                (b":authority", f"127.0.0.1:{port}".encode()),
                (b"content-type", b"application/grpc"),
                (b"te", b"trailers"),
            ]
        )
        out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(SETTINGS, 0, 0, b"")
        out += _frame(HEADERS, END_HEADERS, 1, headers)
        chunks = [body[i : i + 16384] for i in range(0, len(body), 16384)] or [b""]
        for i, chunk in enumerate(chunks):
            out += _frame(DATA, END_STREAM if i == len(chunks) - 1 else 0, 1, chunk)
        sock.sendall(out)
        while True:  # until the call ends: trailers, a reset, GOAWAY or a closed socket
            try:
                header = _read_exactly(sock, 9)
                length = int.from_bytes(header[:3], "big")
                kind, flags = header[3], header[4]
                stream = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
                payload = _read_exactly(sock, length)
            except (ConnectionError, OSError):
                break
            if kind == SETTINGS and not flags & ACK:
                sock.sendall(_frame(SETTINGS, ACK, 0, b""))
            elif kind == PING and not flags & ACK:
                sock.sendall(_frame(PING, ACK, 0, payload))
            elif kind == GOAWAY or (stream == 1 and (kind == RST_STREAM or flags & END_STREAM)):
                break
    with HANDLERS:  # the call may end (a gRPC error) while the handler still reads
        HANDLERS.wait_for(lambda: RUNNING[0] == 0, timeout=30)
    return LAST_PUT[-1] if LAST_PUT else "transport refused before the handler"


def main() -> None:
    server = PutServer("grpc://127.0.0.1:0")
    handlers = {
        0: http_arrow,
        1: http_gzip,
        2: cli_csv,
        4: cli_parquet,
    }
    stdin, stdout = sys.stdin.buffer, sys.stdout
    while True:
        header = stdin.read(6)
        if len(header) < 6:
            break
        kind, flags, size = struct.unpack(">BBI", header)
        body = stdin.read(size)
        if kind == 3:
            answer = grpc_put(server.port, body)
        else:
            answer = outcome(lambda: handlers[kind](body, flags))  # noqa: B023
        stdout.write(answer.replace("\n", " ") + "\n")
        stdout.flush()
    server.shutdown()


if __name__ == "__main__":
    threading.current_thread().name = "fuzz-worker"
    main()
