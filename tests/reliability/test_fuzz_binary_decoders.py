"""Fuzzing the binary decoders (Arrow IPC, CSV, gzip, Flight DoPut) and the Flight request decoders.

The sibling of ``test_fuzz_decoders.py`` (the JSON bodies), with the same approach: every
native decoder runs in a worker subprocess (``_fuzz_worker.py``) fed one input at a time,
so a crash is a failed test naming the input, and the worker is restarted. Inputs are
mutations of valid ones, seeded so a failure reproduces:

- Arrow IPC streams (many types, dictionaries and dictionary deltas, LZ4/ZSTD body
  compression, several batches): flipped bits and bytes, int32/int64 words set to
  extremes (lengths, offsets, buffer sizes), truncations, huge length prefixes, messages
  swapped in from other streams (a batch under another schema), dropped or repeated;
  read as an HTTP body (``decode_body``, plain and gzipped) and as a Flight DoPut (the
  same messages as ``FlightData``, sent over raw HTTP/2 so that the server's reader sees
  exactly the bytes: also mutated ``FlightData`` protobufs and gRPC frames);
- CSV files as ``arrowlog ingest`` reads them, plain, ``.csv.gz`` and in tiny blocks;
- gzip framing of HTTP bodies (header flags and lengths, deflate data, CRC and size
  trailers, several members, trailing bytes);
- Parquet files as ``arrowlog ingest`` reads them;
- in-process (pure Python): the Flight ticket decoder ``_decode`` and every action body
  parser, on mutated tickets and random JSON, which must return a request that meets its
  schema or raise ``InvalidInput``.

Anything but a table, a refusal (``InvalidInput``/``BatchTooLarge``) or, for DoPut, a
call ended by the transport fails; so does a crash, except the one pyarrow crash no
handler can guard (the end of this module), which is counted apart.
``ARROWLOG_FUZZ_CASES`` (default 300: a few seconds) sets the cases per decoder; the
``slow`` tests run 100x that (30,000 per decoder, a few minutes; raise pytest's
``--timeout``), seeded by ``ARROWLOG_FUZZ_SEED``. ``-s`` prints how many inputs each
decoder got; ``ARROWLOG_FUZZ_DUMP=DIR`` writes the inputs that failed to DIR.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import random
import struct
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from google.protobuf import any_pb2
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrowlog.arrow_input import checked
from arrowlog.errors import InvalidInput
from flight_server import sql_protocol as sp
from flight_server.json_requests import (
    MAX_OFFSET,
    MAX_READ_LIMIT,
    MAX_SHARD,
    MAX_TAIL_OFFSET,
    no_body,
    stream_from_body,
)
from flight_server.server import _close_prepared, _decode, _set_session_options
from tests.reliability._mutations import mutate_text
from tests.reliability._worker_process import WorkerProcess

CASES = int(os.environ.get("ARROWLOG_FUZZ_CASES", "300"))
SLOW_CASES = 100 * CASES
SEED = int(os.environ.get("ARROWLOG_FUZZ_SEED", "1"))
HANG_SECONDS = 60

ARROW_HTTP, GZIP_HTTP, CSV_CLI, DOPUT, PARQUET_CLI = range(5)
KIND_NAMES = {
    ARROW_HTTP: "arrow body",
    GZIP_HTTP: "gzip body",
    CSV_CLI: "csv ingest",
    DOPUT: "flight do_put",
    PARQUET_CLI: "parquet ingest",
}


class Worker:
    """``_fuzz_worker`` in a subprocess, restarted when it dies or hangs."""

    def __init__(self) -> None:
        self.process = WorkerProcess(
            ["-m", "tests.reliability._fuzz_worker"], hang_seconds=HANG_SECONDS
        )
        self.cases: Counter[str] = Counter()

    def run(self, kind: int, body: bytes, flags: int = 0) -> str:
        """The worker's answer, ``crash <exit code> in <frames>`` or ``hang``."""
        self.cases[KIND_NAMES[kind]] += 1
        answer = self.process.request(struct.pack(">BBI", kind, flags, len(body)) + body)
        return f"{answer} in {self.process.where()}" if answer.startswith("crash") else answer

    def close(self) -> None:
        self.process.close()


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    w = Worker()
    yield w
    print(f"\nfuzz inputs per decoder: {dict(w.cases)}")
    w.close()


@dataclass
class Failure:
    kind: int
    flags: int
    body: bytes
    answer: str

    def __str__(self) -> str:
        return f"{self.answer}: {KIND_NAMES[self.kind]} (flags {self.flags}) of {self.body[:400]!r}"


def is_fine(kind: int, answer: str) -> bool:
    return answer.startswith(("ok ", "refused ")) or (
        kind == DOPUT and answer.startswith("transport ")
    )


KNOWN_UPSTREAM: Counter[str] = Counter()


def run_cases(
    worker: Worker,
    kind: int,
    make: Callable[[random.Random], tuple[bytes, int]],
    cases: int,
    seed: int,
) -> None:
    rng = random.Random(seed)
    failures = []
    for _ in range(cases):
        body, flags = make(rng)
        answer = worker.run(kind, body, flags)
        known = known_do_put_crash(body) if kind == DOPUT and answer.startswith("crash") else None
        if known:
            KNOWN_UPSTREAM[known] += 1
        elif not is_fine(kind, answer):
            failures.append(Failure(kind, flags, body, answer))
    if KNOWN_UPSTREAM:
        print(f"\nknown pyarrow crashes, counted apart: {dict(KNOWN_UPSTREAM)}")
    if failures and os.environ.get("ARROWLOG_FUZZ_DUMP"):  # a directory for the inputs
        for i, f in enumerate(failures):
            name = f"{KIND_NAMES[f.kind].replace(' ', '_')}-{seed}-{i}-flags{f.flags}.bin"
            (Path(os.environ["ARROWLOG_FUZZ_DUMP"]) / name).write_bytes(f.body)
    assert not failures, f"{len(failures)} inputs broke the decoder:\n" + "\n".join(
        str(f) for f in failures[:10]
    )


# -- corpus ------------------------------------------------------------------------------------


def _tables() -> list[pa.Table]:
    ts = pa.array([datetime(2026, 11, 23, 10, tzinfo=UTC), None], pa.timestamp("us", tz="UTC"))
    return [
        pa.table({"n": pa.array([1, 2, None], pa.int64()), "s": ["a", None, "ccc"]}),
        pa.table({"ts": ts, "level": ["INFO", "WARN"], "status": pa.array([200, 500], pa.int16())}),
        pa.table(
            {
                "l": pa.array([[1, 2], None, []], pa.list_(pa.int32())),
                "st": pa.array([{"a": 1, "b": "x"}, None, {"a": None, "b": "y"}]),
            }
        ),
        pa.table(
            {
                "d": pa.array(["x", "y", "x", None]).dictionary_encode(),
                "b": pa.array([b"\x00", b"", None, b"zz"]),
            }
        ),
        pa.table(
            {
                "m": pa.array([[("k", 1)], [], None], pa.map_(pa.string(), pa.int64())),
                "dec": pa.array([Decimal("1.23"), None, Decimal("-0.01")], pa.decimal128(5, 2)),
            }
        ),
        pa.table({"f": pa.array([1.5, float("nan")], pa.float32()), "ok": [True, None]}),
        pa.table(
            {
                "ls": pa.array(["a" * 50, "b"], pa.large_string()),
                "sv": pa.array(["x", "a string longer than twelve"], pa.string_view()),
            }
        ),
        pa.table({"ll": pa.array([[["a"]], [[], None]], pa.list_(pa.list_(pa.string())))}),
    ]


def _ipc(table: pa.Table, *, compression: str | None, batches: int, deltas: bool) -> bytes:
    sink = io.BytesIO()
    options = pa.ipc.IpcWriteOptions(compression=compression, emit_dictionary_deltas=deltas)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        for i in range(batches):
            writer.write_table(table.slice(i % max(table.num_rows, 1)) if i else table)
    return sink.getvalue()


def _delta_stream() -> bytes:
    """Two batches whose dictionaries differ: the second sends a dictionary delta."""
    schema = pa.schema([("d", pa.dictionary(pa.int32(), pa.string()))])
    first = pa.record_batch([pa.DictionaryArray.from_arrays([0, 1], ["a", "b"])], schema=schema)
    second = pa.record_batch(
        [pa.DictionaryArray.from_arrays([2, 0], ["a", "b", "c"])], schema=schema
    )
    sink = io.BytesIO()
    options = pa.ipc.IpcWriteOptions(emit_dictionary_deltas=True)
    with pa.ipc.new_stream(sink, schema, options=options) as writer:
        writer.write_batch(first)
        writer.write_batch(second)
    return sink.getvalue()


def _ipc_corpus() -> list[bytes]:
    streams = [_delta_stream()]
    for i, table in enumerate(_tables()):
        for compression in (None, "lz4", "zstd"):
            streams.append(_ipc(table, compression=compression, batches=1 + i % 3, deltas=False))
    schema_only = io.BytesIO()
    pa.ipc.new_stream(schema_only, _tables()[0].schema).close()
    streams.append(schema_only.getvalue())
    return streams


IPC_CORPUS = _ipc_corpus()


def _messages(stream: bytes) -> list[tuple[bytes, bytes]]:
    """The (metadata flatbuffer, body) of each message of an IPC stream."""
    reader = pa.ipc.MessageReader.open_stream(pa.py_buffer(stream))
    out = []
    while True:
        try:
            message = reader.read_next_message()
        except StopIteration:
            return out
        out.append(
            (message.metadata.to_pybytes(), message.body.to_pybytes() if message.body else b"")
        )


MESSAGES = [_messages(s) for s in IPC_CORPUS]


def _frame_message(metadata: bytes, body: bytes) -> bytes:
    """One IPC stream message: continuation, length, metadata padded to 8, body."""
    padded = metadata + b"\x00" * (-len(metadata) % 8)
    return b"\xff\xff\xff\xff" + struct.pack("<i", len(padded)) + padded + body


EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"

# Values for int32/int64 words: lengths, offsets, counts and buffer sizes gone wrong.
WORDS32 = [0, 1, 7, 8, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFF8, 0x10000, 0x3FFFFFFF]
WORDS64 = [0, 1, 2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**64 - 1, 2**64 - 8]


def mutate_bytes(data: bytes, rng: random.Random, *, aligned: bool = True) -> bytes:
    d = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if not d:
            d += rng.randbytes(rng.randint(1, 16))
            continue
        at = rng.randrange(len(d))
        op = rng.randrange(9)
        if op == 0:
            d[at] ^= 1 << rng.randrange(8)
        elif op == 1:
            d[at] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif op in (2, 3):  # a word set to an extreme (little-endian, as IPC stores it)
            at -= at % 4 if aligned else 0
            if op == 2:
                d[at : at + 4] = struct.pack("<I", rng.choice(WORDS32))
            else:
                d[at : at + 8] = struct.pack("<Q", rng.choice(WORDS64))
        elif op == 4:
            del d[rng.randrange(len(d)) :]
        elif op == 5:
            del d[at : at + rng.randint(1, 64)]
        elif op == 6:
            d[at:at] = rng.randbytes(rng.randint(1, 16))
        elif op == 7:
            end = min(len(d), at + rng.randint(1, 128))
            d[end:end] = d[at:end]
        else:
            d[at : at + 4] = struct.pack("<i", rng.choice([-1, -8, 1 << 30, 0x7FFFFFF8]))
    return bytes(d)


def mutate_messages(rng: random.Random) -> list[tuple[bytes, bytes]]:
    """A valid stream's messages, changed: bytes of one, or messages swapped in and out."""
    messages = list(rng.choice(MESSAGES))
    for _ in range(rng.randint(1, 2)):
        op = rng.randrange(6)
        i = rng.randrange(len(messages))
        if op in (0, 1):  # the metadata flatbuffer
            meta, body = messages[i]
            messages[i] = (mutate_bytes(meta, rng), body)
        elif op == 2 and messages[i][1]:  # the body (buffers, compressed or not)
            meta, body = messages[i]
            messages[i] = (meta, mutate_bytes(body, rng))
        elif op == 3:  # a message of another stream: a batch under another schema
            other = rng.choice(MESSAGES)
            messages.insert(rng.randint(1, len(messages)), rng.choice(other))
        elif op == 4 and len(messages) > 1:
            del messages[rng.randrange(len(messages))]
        else:
            messages.insert(rng.randint(0, len(messages)), messages[i])
    return messages


def make_ipc(rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        return mutate_bytes(rng.choice(IPC_CORPUS), rng)
    messages = mutate_messages(rng)
    stream = b"".join(_frame_message(m, b) for m, b in messages)
    return stream + (EOS if rng.random() < 0.7 else b"")


# -- Arrow IPC bodies over HTTP ---------------------------------------------------------------


def arrow_body_case(rng: random.Random) -> tuple[bytes, int]:
    body = make_ipc(rng)
    if rng.random() < 0.2:
        return gzip.compress(body), 1
    return body, 0


def test_arrow_bodies(worker: Worker) -> None:
    run_cases(worker, ARROW_HTTP, arrow_body_case, CASES, seed=20261205)


@pytest.mark.slow
def test_many_arrow_bodies(worker: Worker) -> None:
    run_cases(worker, ARROW_HTTP, arrow_body_case, SLOW_CASES, seed=SEED)


# -- Flight DoPut: FlightData over gRPC --------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


DESCRIPTOR = _varint(1 << 3) + _varint(1) + _field(3, b"fuzz")  # FlightDescriptor: PATH ["fuzz"]


def flight_data(meta: bytes, body: bytes, *, first: bool) -> bytes:
    """``FlightData``: descriptor (1, first message only), data_header (2), data_body (1000)."""
    return (_field(1, DESCRIPTOR) if first else b"") + _field(2, meta) + _field(1000, body)


def grpc_frame(message: bytes, rng: random.Random | None = None) -> bytes:
    length = len(message)
    compressed = 0
    if rng is not None and rng.random() < 0.5:
        length = rng.choice([0, 1, length - 1, length + 1, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 24])
    elif rng is not None:
        compressed = rng.choice([1, 2, 0xFF])
    return bytes([compressed]) + struct.pack(">I", length % 2**32) + message


def doput_case(rng: random.Random) -> tuple[bytes, int]:
    messages = mutate_messages(rng) if rng.random() < 0.6 else list(rng.choice(MESSAGES))
    datas = [flight_data(m, b, first=i == 0) for i, (m, b) in enumerate(messages)]
    roll = rng.random()
    if roll < 0.2 and datas:  # the protobuf itself
        i = rng.randrange(len(datas))
        datas[i] = mutate_bytes(datas[i], rng, aligned=False)
    frames = [grpc_frame(d) for d in datas]
    if 0.2 <= roll < 0.3 and frames:  # a gRPC frame's length prefix or compressed flag
        i = rng.randrange(len(frames))
        frames[i] = grpc_frame(datas[i], rng)
    body = b"".join(frames)
    if len(body) > 60_000:  # within HTTP/2's initial window: the worker sends no more
        body = body[:60_000]
    return body, 0


def _grpc_messages(body: bytes) -> Iterator[tuple[int, bytes]]:
    at = 0
    while at + 5 <= len(body):
        flag, length = body[at], struct.unpack_from(">I", body, at + 1)[0]
        yield flag, body[at + 5 : at + 5 + length]
        at += 5 + length


def _protobuf_fields(message: bytes) -> dict[int, bytes] | None:
    """The length-delimited fields of a protobuf message, or None if it does not parse."""
    fields, at = {}, 0
    try:
        while at < len(message):
            tag, at = _read_varint(message, at)
            if tag & 7 == 0:
                _, at = _read_varint(message, at)
                continue
            if tag & 7 != 2:
                return None
            length, at = _read_varint(message, at)
            fields[tag >> 3] = message[at : at + length]
            at += length
    except IndexError:
        return None
    return fields


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def _is_dictionary_message(meta: bytes) -> bool:
    framed = b"\xff\xff\xff\xff" + struct.pack("<i", len(meta)) + meta
    return pa.ipc.read_message(pa.py_buffer(framed + b"\x00" * (1 << 16))).type == "dictionary"


DICTIONARY_HEADERS = {
    meta for messages in MESSAGES for meta, _ in messages if _is_dictionary_message(meta)
}


def known_do_put_crash(body: bytes) -> str | None:
    """What in ``body`` crashes pyarrow's Flight server reader, if it has it (see the end)."""
    previous = None
    for flag, message in _grpc_messages(body):
        if flag >= 2:
            return "a gRPC message with compressed flag >= 2"
        fields = _protobuf_fields(message)
        header = None if fields is None else fields.get(2)
        if not header and previous in DICTIONARY_HEADERS:
            return "a FlightData without data_header after a dictionary batch"
        previous = header
    return None


def test_flight_do_put_uploads(worker: Worker) -> None:
    # A valid upload first: the raw HTTP/2 client works, so the mutations are meaningful.
    for messages in MESSAGES[:-1]:
        body = b"".join(
            grpc_frame(flight_data(m, b, first=i == 0)) for i, (m, b) in enumerate(messages)
        )
        assert worker.run(DOPUT, body).startswith("ok "), messages
    run_cases(worker, DOPUT, doput_case, CASES, seed=20261205)


@pytest.mark.slow
def test_many_flight_do_put_uploads(worker: Worker) -> None:
    run_cases(worker, DOPUT, doput_case, SLOW_CASES, seed=SEED)


# -- CSV as arrowlog ingest reads it ---------------------------------------------------------------

CSV_CORPUS = [
    b'ts,level,status,msg\n2026-11-23T10:00:00Z,INFO,200,"GET /"\n2026-11-23T10:00:01Z,WARN,500,"a, b"\n',
    b'a,b,c\r\n1,2.5,x\r\n,,"multi\nline"\r\n3,-1e308,"quote "" inside"\r\n',
    b"\xef\xbb\xbfn,s\n1,\xc3\xa9\n2,\xe2\x82\xac\n",
    b"only,a,header\n",
    b"x\n9223372036854775807\n-9223372036854775808\n9223372036854775808\n",
    b"t,b\n2026-01-01,true\n2026-01-02 03:04:05,false\n,\n",
]
CSV_TOKENS = [
    b'"', b",", b"\n", b"\r", b"\r\n", b'""', b"\x00", b"\xff", b"\xc3", b"1e400", b"NaN",
    b"-", b"null", b"true", b",,,,,,,,", b'"\n"', b"\t", b"\\", b"9" * 40, b"2026-13-45",
]  # fmt: skip


def mutate_csv(data: bytes, rng: random.Random) -> bytes:
    return mutate_text(data, rng, CSV_TOKENS)


def csv_case(rng: random.Random) -> tuple[bytes, int]:
    body = mutate_csv(rng.choice(CSV_CORPUS), rng)
    flags = rng.choice([0, 0, 2, 1, 3])
    if flags & 1:
        body = gzip.compress(body)
        if rng.random() < 0.5:
            body = mutate_gzip(body, rng)
    return body, flags


def test_csv_files(worker: Worker) -> None:
    run_cases(worker, CSV_CLI, csv_case, CASES, seed=20261205)


@pytest.mark.slow
def test_many_csv_files(worker: Worker) -> None:
    run_cases(worker, CSV_CLI, csv_case, SLOW_CASES, seed=SEED)


# -- gzip framing of HTTP bodies -------------------------------------------------------------------

NDJSON = b'{"ts": "2026-11-23T10:00:00Z", "level": "INFO", "n": 1}\n{"n": 2, "s": "x"}\n'


def _gzip_member(data: bytes, rng: random.Random) -> bytes:
    """A gzip member with random optional header fields (FEXTRA, FNAME, FCOMMENT, FHCRC)."""
    flags = rng.randrange(32) & 0b11110
    header = b"\x1f\x8b\x08" + bytes([flags]) + b"\x00\x00\x00\x00\x00\xff"
    if flags & 4:
        extra = rng.randbytes(rng.randint(0, 8))
        header += struct.pack("<H", len(extra)) + extra
    if flags & 8:
        header += b"name.ndjson\x00"
    if flags & 16:
        header += b"comment\x00"
    if flags & 2:
        header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)
    compressor = zlib.compressobj(rng.randint(0, 9), zlib.DEFLATED, -15)
    body = compressor.compress(data) + compressor.flush()
    return header + body + struct.pack("<II", zlib.crc32(data), len(data) % 2**32)


def mutate_gzip(data: bytes, rng: random.Random) -> bytes:
    d = bytearray(data)
    op = rng.randrange(6)
    if op == 0 and len(d) > 10:  # a header byte: method, flags, extra length
        d[rng.randrange(2, 12)] = rng.randrange(256)
    elif op == 1 and len(d) > 8:  # the trailer: CRC or size
        at = len(d) - rng.choice([4, 8])
        d[at : at + 4] = struct.pack("<I", rng.choice(WORDS32))
    elif op == 2:
        del d[rng.randrange(len(d) + 1) :]
    elif op == 3:
        d += rng.choice([b"\x00", b"\x1f", b"\x1f\x8b", b"garbage", bytes(d[:10]), b"\x00" * 64])
    else:
        d = bytearray(mutate_bytes(bytes(d), rng, aligned=False))
    return bytes(d)


def gzip_case(rng: random.Random) -> tuple[bytes, int]:
    members = b"".join(
        _gzip_member(rng.choice([NDJSON, b"", NDJSON * 50, b"\n"]), rng)
        for _ in range(rng.randint(1, 3))
    )
    return (mutate_gzip(members, rng) if rng.random() < 0.8 else members), 1


def test_gzip_bodies(worker: Worker) -> None:
    run_cases(worker, GZIP_HTTP, gzip_case, CASES, seed=20261205)


@pytest.mark.slow
def test_many_gzip_bodies(worker: Worker) -> None:
    run_cases(worker, GZIP_HTTP, gzip_case, SLOW_CASES, seed=SEED)


# -- Parquet as arrowlog ingest reads it -------------------------------------------------------------


def _parquet(table: pa.Table, compression: str) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression=compression, row_group_size=2)
    return sink.getvalue()


PARQUET_CORPUS = [
    _parquet(t, c) for t in _tables() if "sv" not in t.column_names for c in ("none", "zstd")
]


def parquet_case(rng: random.Random) -> tuple[bytes, int]:
    return mutate_bytes(rng.choice(PARQUET_CORPUS), rng), 0


def test_parquet_files(worker: Worker) -> None:
    run_cases(worker, PARQUET_CLI, parquet_case, CASES, seed=20261205)


@pytest.mark.slow
def test_many_parquet_files(worker: Worker) -> None:
    run_cases(worker, PARQUET_CLI, parquet_case, SLOW_CASES, seed=SEED)


def test_the_corpus_decodes(worker: Worker) -> None:
    for stream in IPC_CORPUS[:-1]:
        assert worker.run(ARROW_HTTP, stream).startswith("ok "), stream[:100]
    assert worker.run(ARROW_HTTP, IPC_CORPUS[-1]) == "refused InvalidInput"  # no rows
    for data in CSV_CORPUS:
        assert worker.run(CSV_CLI, data).startswith(("ok ", "refused ")), data
        assert worker.run(CSV_CLI, gzip.compress(data), 1).startswith(("ok ", "refused "))
    assert worker.run(GZIP_HTTP, gzip.compress(NDJSON), 1).startswith("ok 2 ")
    for data in PARQUET_CORPUS:
        assert worker.run(PARQUET_CLI, data).startswith("ok "), data[:100]
    assert pacsv  # CSV is read by arrowlog's own reader in the worker


# -- Flight tickets and action bodies (pure Python: in-process) ----------------------------------

TICKET_CORPUS = [
    b'{"read": "base", "from_offset": 0, "limit": 10}',
    b'{"tail": "base", "from_offset": 5, "partition": 0}',
    b'{"read": "base"}',
    b"SELECT * FROM base",
    sp.pack(sp.CommandStatementQuery(query="SELECT 1")),
    sp.pack(sp.CommandGetTables(include_schema=True)),
    sp.pack(sp.CommandGetSqlInfo(info=[0, 1])),
    sp.encode_statement_ticket("SELECT 1"),
]
ACTION_BODIES = [b"", b"base", b'{"stream": "base"}', b"{}", b'{"stream": null}']
JSON_TOKENS = [
    b"null", b"true", b"1.0", b"-1", b"9223372036854775808", b"[", b"]", b"{", b"}", b'"',
    b",", b":", b'"read"', b'"tail"', b'"limit"', b'"partition"', b"\xff", b"NaN", b"1e400",
]  # fmt: skip


def _check_ticket(raw: bytes) -> None:
    """``_decode`` gives a request that meets its schema, or raises InvalidInput."""
    try:
        decoded = _decode(raw)
    except InvalidInput:
        return
    if isinstance(decoded, dict):
        assert ("read" in decoded) != ("tail" in decoded), decoded
        stream = decoded.get("read", decoded.get("tail"))
        assert isinstance(stream, str) and stream, decoded
        offset, limit, partition = (decoded.get(k) for k in ("from_offset", "limit", "partition"))
        high = MAX_OFFSET if "read" in decoded else MAX_TAIL_OFFSET
        assert type(offset) is int and 0 <= offset <= high, decoded
        assert limit is None or (type(limit) is int and 1 <= limit <= MAX_READ_LIMIT), decoded
        assert limit is None or offset + limit <= MAX_OFFSET, decoded
        assert partition is None or (type(partition) is int and 0 <= partition <= MAX_SHARD)
        assert _decode(json.dumps(decoded).encode()) == decoded  # as _plan_command re-encodes
    else:
        assert isinstance(decoded, str | Message), decoded


def _check_action_body(body: bytes) -> None:
    for parse in (
        lambda b: stream_from_body(b, required=True, action="describe"),
        lambda b: stream_from_body(b, required=False, action="flush"),
        lambda b: no_body(b, "list_streams"),
        _close_prepared,
        _set_session_options,
    ):
        with contextlib.suppress(InvalidInput):
            parse(body)


def _mutate_json(data: bytes, rng: random.Random) -> bytes:
    d = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(d))
        op = rng.randrange(4)
        if op == 0 and d:
            d[min(at, len(d) - 1)] = rng.randrange(256)
        elif op == 1:
            d[at:at] = rng.choice(JSON_TOKENS)
        elif op == 2:
            del d[at : at + rng.randint(1, 8)]
        else:
            d = bytearray(mutate_bytes(bytes(d), rng, aligned=False))
    return bytes(d)


def run_request_cases(cases: int, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(cases):
        raw = _mutate_json(rng.choice(TICKET_CORPUS), rng)
        try:
            _check_ticket(raw)
        except AssertionError:
            raise
        except Exception as e:
            raise AssertionError(f"{type(e).__name__}: {e} decoding ticket {raw!r}") from e
        body = _mutate_json(rng.choice(ACTION_BODIES + TICKET_CORPUS), rng)
        try:
            _check_action_body(body)
        except Exception as e:
            raise AssertionError(f"{type(e).__name__}: {e} parsing action body {body!r}") from e


def test_flight_tickets_and_action_bodies() -> None:
    run_request_cases(CASES * 10, seed=20261205)


@pytest.mark.slow
def test_many_flight_tickets_and_action_bodies() -> None:
    run_request_cases(SLOW_CASES * 10, seed=SEED)


FEW = settings(
    max_examples=max(50, CASES),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([MAX_OFFSET, MAX_OFFSET + 1, MAX_READ_LIMIT, 2**31, -0])
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | st.sampled_from(["base", "BASE", "a/b", ""]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
TICKETS = st.dictionaries(
    st.sampled_from(["read", "tail", "from_offset", "limit", "partition", "stream", "x"]),
    JSON_VALUES,
    max_size=5,
)


@FEW
@given(ticket=TICKETS)
def test_random_json_tickets_meet_their_schema_or_are_refused(ticket: dict[str, object]) -> None:
    _check_ticket(json.dumps(ticket).encode())
    _check_action_body(json.dumps(ticket).encode())


@FEW
@given(raw=st.binary(max_size=200))
def test_random_bytes_as_flight_requests(raw: bytes) -> None:
    _check_ticket(raw)
    _check_ticket(
        any_pb2.Any(type_url=sp.TYPE_URL_PREFIX + sp.PACKAGE + ".X", value=raw).SerializeToString()
    )
    _check_action_body(raw)


# -- what the fuzzing found: each a regression test ----------------------------------------------


def _stream(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _patched(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1, (old, data)
    return data.replace(old, new)


def _list_offsets(offsets: tuple[int, int, int, int]) -> bytes:
    """A list batch with other offsets: the IPC reader checks only the last one."""
    data = _stream(pa.table({"l": pa.array([[1, 2], [3], [4]], pa.list_(pa.int64()))}))
    return _patched(data, struct.pack("<4i", 0, 2, 3, 4), struct.pack("<4i", *offsets))


def _string_offsets_past_the_data() -> bytes:
    data = _stream(pa.table({"s": pa.array(["ab", "cde", "f"])}))
    return _patched(data, struct.pack("<4i", 0, 2, 5, 6), struct.pack("<4i", 0, 1 << 30, 5, 6))


def _compressed_claiming(size: int) -> bytes:
    """An LZ4 body whose first buffer says it inflates to ``size`` bytes."""
    messages = _messages(
        _ipc(pa.table({"n": [1, 2, 3]}), compression="lz4", batches=1, deltas=False)
    )
    (schema, _), (meta, body) = messages
    body = struct.pack("<q", size) + body[8:]
    return _frame_message(schema, b"") + _frame_message(meta, body) + EOS


def _dictionary_batch_for_a_plain_schema() -> bytes:
    plain = _messages(_stream(pa.table({"n": [1]})))
    dictionary = _messages(_stream(pa.table({"d": pa.array(["x"]).dictionary_encode()})))
    return _frame_message(*plain[0]) + _frame_message(*dictionary[1]) + EOS


ARROW_REGRESSIONS = {
    # Read, normalised and written to the WAL without error, then a crash (SIGSEGV) in
    # the Parquet writer of the flush, again after every restart (the WAL replays it).
    "list offsets out of order": _list_offsets((0, 3, 2, 4)),
    "a list offset past the values": _list_offsets((0, 100_000, 3, 4)),
    # Refused before too, by normalize's UTF-8 check; to_pylist() of it crashes.
    "string offsets past the data": _string_offsets_past_the_data(),
    # UnicodeDecodeError wherever pyarrow was asked for the name: 500 / INTERNAL.
    "a field name that is not UTF-8": _patched(
        _stream(pa.table({"status": [1]})), b"status", b"sta\x80us"
    ),
    "a nested field name that is not UTF-8": _patched(
        _stream(pa.table({"st": pa.array([{"a": 1, "bxyz": "x"}])})), b"bxyz", b"b\x80yz"
    ),
    # ArrowMemoryError (malloc of 2**60 bytes), ArrowKeyError, ArrowNotImplementedError
    # escaped decode_body, which caught only ArrowInvalid and OSError: 500.
    "a compressed buffer claiming 2**60 bytes": _compressed_claiming(2**60),
    "a dictionary batch for a schema without one": _dictionary_batch_for_a_plain_schema(),
    "a 4-bit integer type": _patched(
        _stream(pa.table({"n": pa.array([1], pa.int16())})),
        b"\x10\x00\x00\x00\x01",
        b"\x04\x00\x00\x00\x01",
    ),
    # decimal128(5, 65536): the IPC reader takes any scale; creating the stream's Delta
    # table failed with a StorageError naming the server's data directory: 500 / INTERNAL.
    "a decimal scale above its precision": _patched(
        _stream(pa.table({"d": pa.array([Decimal("1.5")], pa.decimal128(5, 2))})),
        b"\x05\x00\x00\x00\x02\x00\x00\x00",
        b"\x05\x00\x00\x00\x00\x00\x01\x00",
    ),
}


@pytest.mark.parametrize("name", list(ARROW_REGRESSIONS))
def test_arrow_regressions_are_refused_over_http_and_do_put(worker: Worker, name: str) -> None:
    stream = ARROW_REGRESSIONS[name]
    assert worker.run(ARROW_HTTP, stream) == "refused InvalidInput"
    assert worker.run(ARROW_HTTP, gzip.compress(stream), 1) == "refused InvalidInput"
    messages = _messages_leniently(stream)
    body = b"".join(
        grpc_frame(flight_data(m, b, first=i == 0)) for i, (m, b) in enumerate(messages)
    )
    assert worker.run(DOPUT, body) in ("refused InvalidInput", "refused BatchTooLarge")


def _messages_leniently(stream: bytes) -> list[tuple[bytes, bytes]]:
    """The messages of a stream that may not decode: split by their framing only."""
    out, at = [], 0
    while at + 8 <= len(stream):
        length = struct.unpack_from("<i", stream, at + 4)[0]
        if length <= 0:
            break
        meta = stream[at + 8 : at + 8 + length]
        body_length = _body_length(meta)
        start = at + 8 + length
        out.append((meta, stream[start : start + body_length]))
        at = start + body_length
    return out


def _body_length(meta: bytes) -> int:
    # Message table: the bodyLength (int64) is the last field; read it through pyarrow
    # from a valid copy of the framing (only the flatbuffer, no body, is parsed).
    framed = b"\xff\xff\xff\xff" + struct.pack("<i", len(meta)) + meta
    try:
        return pa.ipc.read_message(pa.py_buffer(framed + b"\x00" * (1 << 20))).body.size
    except (pa.ArrowException, OSError):
        return 0


# A Parquet file (zlib, base64) that pyarrow 26 reads without error into a dictionary
# column whose indices are out of range: ArrowIndexError, or worse, in what reads it next.
CORRUPT_PARQUET = zlib.decompress(
    __import__("base64").b64decode(
        "eNqVk0FrE0EUx99MhiXKHtLiDDsQJAc79JC2RmgRaQ8vtWmjAbNBEb2lMaQi2piqSYMHT34GD1J67LEXbx77UTz4AbwKvje71Q1mBR9k3sy+//zefx+bNnZqWulr2rUowSLA8pe1n5WrMYAAgAkvxxr0or5RJUFJBzoob8CyOI7EZGEBUv2VJoCkgxKiIElH8hke1xnlYx4OIsin/ac7meeuIIT8QLpQX29p+YcX1JL6dDqHJafTiH5zaFJI0MpurkMUHPUO+i+7WoEOl2Qkni1Bq8yv6k/7YIq2aqsOyjq06xCULEl0aJR5b06Fu+eK2Zla7g9a8qBKlDaNsoF1oAg4g9j3iIn5LNx34c5EZpJ/M+RvhvkhjHJF81VCvqePBXchs7PMIUr5D1cnyn0rzA4x5+U8JjF2Ib2zchRip/Pg8Z1ktNEnucZxe4AUMSZxH3GM9QE2EAe47UtYryPu8OagTfqxl27z8tBX4+Q+ZXq4i9jDu/55eslXYy9qYLZVut1tMu4FWyH9E+5L/ffYB50fMSeJnYa/n0B7aYvL8NunfjtIzGGc5jEvTc503uP65Z1mqstaRdzagqgy7I5ev+2/WekNhyvd0ehwXHnXHx09P3xVubWxenO1Zqv0NfIHeU5zbtN//hdSca6+"
    )
)


def test_a_corrupt_parquet_file_is_refused_by_ingest(worker: Worker) -> None:
    assert worker.run(PARQUET_CLI, CORRUPT_PARQUET) == "refused InvalidInput"


# -- a crash in pyarrow itself, that no handler can guard ----------------------------------------
#
# pyarrow 26's Flight server reader dereferences a null message (arrow::ipc::Message::Open,
# from FlightData::OpenMessage, in TransportIpcMessageReader::ReadNextMessage) when, after
# a dictionary batch, a DoPut sends a FlightData without a data_header (one carrying only
# app_metadata, or an empty one) or a gRPC message whose compressed flag is not 0 or 1.
# The server process dies with SIGSEGV in read_chunk(), before any Python code sees the
# message. The fuzzing counts such inputs apart (known_do_put_crash); these tests fail
# once pyarrow stops crashing, so that the exemption can go.


def _dictionary_upload() -> list[bytes]:
    messages = _messages(_stream(pa.table({"d": pa.array(["x", "y"]).dictionary_encode()})))
    return [flight_data(m, b, first=i == 0) for i, (m, b) in enumerate(messages)]


UPSTREAM_CRASHERS = {
    "app_metadata only": _field(3, b"app metadata"),
    "an empty FlightData": b"",
}


@pytest.mark.xfail(strict=True, reason="pyarrow 26: SIGSEGV in the Flight server's DoPut reader")
@pytest.mark.parametrize("name", list(UPSTREAM_CRASHERS))
def test_pyarrow_survives_a_message_without_header_after_a_dictionary(
    worker: Worker, name: str
) -> None:
    schema, dictionary, batch = _dictionary_upload()
    body = b"".join(grpc_frame(d) for d in (schema, dictionary, UPSTREAM_CRASHERS[name], batch))
    assert known_do_put_crash(body)
    assert not worker.run(DOPUT, body).startswith("crash")


@pytest.mark.xfail(strict=True, reason="pyarrow 26: SIGSEGV in the Flight server's DoPut reader")
def test_pyarrow_survives_a_compressed_flag_of_2_after_a_dictionary(worker: Worker) -> None:
    schema, dictionary, batch = _dictionary_upload()
    body = grpc_frame(schema) + grpc_frame(dictionary) + b"\x02" + grpc_frame(batch)[1:]
    assert known_do_put_crash(body)
    assert not worker.run(DOPUT, body).startswith("crash")


def test_the_pyarrow_crash_is_not_a_refusal_of_the_same_upload(worker: Worker) -> None:
    schema, dictionary, batch = _dictionary_upload()
    body = b"".join(grpc_frame(d) for d in (schema, dictionary, batch))
    assert not known_do_put_crash(body)
    assert worker.run(DOPUT, body).startswith("ok 2 ")


def test_an_empty_array_without_offsets_is_refused() -> None:
    # Full validation accepts a length-0 string or list array with an empty offsets
    # buffer; pyarrow 26's Array.nbytes (which normalize and Log.append call) reads its
    # first offset anyway, out of bounds: a crash when that address is not mapped.
    empty = pa.foreign_buffer(8, 0)  # 0 bytes at an address never to be read
    strings = pa.Array.from_buffers(pa.string(), 0, [None, empty, empty])
    lists = pa.Array.from_buffers(pa.list_(pa.string()), 0, [None, empty], children=[strings])
    nested = pa.Array.from_buffers(
        pa.list_(pa.list_(pa.string())), 2, [None, pa.py_buffer(bytes(12))], children=[lists]
    )
    for array in (strings, lists, nested):
        with pytest.raises(InvalidInput, match="an empty array without offsets"):
            checked(pa.table({"c": array}), "the body")
    fine = pa.table({"ll": pa.array([[], None], pa.list_(pa.list_(pa.string())))})
    assert checked(fine, "the body") is fine


# A DoPut whose second batch has such an array (an empty list<string> with 0-byte offsets
# buffers): the worker died in Array.nbytes now and then, depending on where the 0-byte
# buffer pointed.
EMPTY_OFFSETS_UPLOAD = zlib.decompress(
    __import__("base64").b64decode(
        "eNqdU71Ow0AMttu0PaIbolChgArKgFA2EAPqFIm3YGHoABJSkRhg6TMw9AEYeABWdpSpIwMDI28BC0qdq68Yp6UVjnI+25//dQAA76ExuBNc3o1G8QQjqCgEC21ogaEbEQYkA0mGzoBPUjN/KsuSJNuleyJsVawG/cMhwANh3gSuJ3D7fL+6vbiu0k0IF0GX8rSh4zJHMKsLW5HwBeUXuG9GRe7wJ/EXdlllYYubsi4oNANXbh88hSRb12DV9r1owVMHlpNlHjFH5onSZ8rPy4b5kfJ3pao6vE7iUNmLvO/VTeXi9ajcB8L8GX80fkaX1EZXbWH8q/09ajGYY155s0mt9DZhOnTO8oTCEquR7TLvq9aWydvMz5R9Xdnnv2HeE5iW6APhf6T9i3yM/p49H36nuDE3Wqm3g1osI+3mtFZYLS4nT6U+PXfDLhvwuHn8Mi/vYI1nk614NrjmszGKo3oufg6p8kv1HBbEbi7Y1aodFnnmYX+tubJNAVFeO90="
    )
)


def test_an_upload_with_an_empty_array_without_offsets_is_refused(worker: Worker) -> None:
    assert worker.run(DOPUT, EMPTY_OFFSETS_UPLOAD) == "refused InvalidInput"
