"""kill -9 of a whole ``arrowlog serve`` under concurrent Flight and HTTP ingest.

Each cycle: Flight DoPut writers and HTTP NDJSON writers append to two streams while
another client asks for flushes and compactions back to back (and the server flushes and
compacts on its own, with tiny thresholds, and rotates its WAL every 64 KiB); after a random
number of acknowledgements the server gets SIGKILL. Then, before restarting: every file
the Delta logs list exists and reads as Parquet. After the restart, through the server:
every acknowledged record is there exactly once at its acknowledged offset, and offsets
are gap-free. The next cycle writes to the restarted server.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import re
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.flight as flight
import pytest

import arrowlog
from tests.integration.conftest import ArrowlogServe, start_arrowlog_serve
from tests.reliability._support import Acks, check_delta_files, wait_until

STREAMS = ("crash_a", "crash_b")
# Small thresholds, so kills land in flushes, compactions and WAL rotations.
ENV = {
    "ARROWLOG_FLUSH_ROWS": "300",
    "ARROWLOG_FLUSH_INTERVAL": "0.1",
    "ARROWLOG_COMPACT_INTERVAL": "0.2",
    "ARROWLOG_VACUUM_GRACE_HOURS": "0",
    "ARROWLOG_WAL_SEGMENT_BYTES": str(64 * 1024),
}
BASE = datetime(2026, 11, 20, tzinfo=UTC)
CLIENT_ERRORS = (flight.FlightError, pa.ArrowException, OSError, httpx.HTTPError, ValueError)


def _start(base: Path, data_dir: Path, cycle: int) -> ArrowlogServe:
    return start_arrowlog_serve(
        base, data_dir=data_dir, env=ENV, verbose=1, log_name=f"logs-{cycle}"
    )


@dataclass
class _Ingest:
    """The clients of one cycle and what they saw."""

    server: ArrowlogServe
    acks: Acks
    next_k: Callable[[int], int]
    killing: threading.Event = field(default_factory=threading.Event)
    unexpected: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, seed: int) -> None:
        targets: list[Callable[[random.Random, str], None]] = [
            self._flight_writer,
            self._http_writer,
        ]
        for i, (target, stream) in enumerate(itertools.product(targets, STREAMS)):
            rng = random.Random(seed * 100 + i)
            self.threads.append(threading.Thread(target=self._guard, args=(target, rng, stream)))
        self.threads.append(
            threading.Thread(target=self._guard, args=(self._operator, random.Random(seed), ""))
        )
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join(timeout=60)
            assert not t.is_alive(), "a client thread did not stop after the kill"

    def _guard(
        self, target: Callable[[random.Random, str], None], rng: random.Random, stream: str
    ) -> None:
        try:
            target(rng, stream)
        except CLIENT_ERRORS as e:
            if not self.killing.is_set():  # before the kill, every call must succeed
                self.unexpected.append(f"{target.__name__}({stream}): {type(e).__name__}: {e}")

    def _records(self, rng: random.Random) -> tuple[int, int, list[int]]:
        n = rng.randint(1, 120)
        k0 = self.next_k(n)
        return k0, n, list(range(k0, k0 + n))

    @staticmethod
    def _times(ks: list[int]) -> list[datetime]:
        return [BASE + timedelta(hours=(k * 7) % 72) for k in ks]  # three day partitions

    def _flight_writer(self, rng: random.Random, stream: str) -> None:
        schema = pa.schema([("ts", pa.timestamp("us", tz="UTC")), ("k", pa.int64())])
        with flight.FlightClient(self.server.flight_url) as client:
            writer, reader = client.do_put(flight.FlightDescriptor.for_path(stream), schema)
            try:
                self._put_until_killed(rng, stream, schema, writer, reader)
            finally:
                # Closed here, not by the destructor (which prints the kill's error).
                with contextlib.suppress(*CLIENT_ERRORS):
                    writer.close()

    def _put_until_killed(
        self,
        rng: random.Random,
        stream: str,
        schema: pa.Schema,
        writer: flight.FlightStreamWriter,
        reader: flight.FlightMetadataReader,
    ) -> None:
        while not self.killing.is_set():
            k0, _, ks = self._records(rng)
            batch = pa.record_batch([pa.array(self._times(ks), schema[0].type), ks], schema=schema)
            writer.write_batch(batch)
            buf = reader.read()
            if buf is None:
                raise ConnectionError("the DoPut stream ended without an acknowledgement")
            ack = json.loads(buf.to_pybytes())
            self.acks.add(stream, ack["first_offset"], ack["last_offset"], k0)

    def _http_writer(self, rng: random.Random, stream: str) -> None:
        headers = {"Content-Type": "application/x-ndjson"}
        with httpx.Client(base_url=self.server.http_url, timeout=30) as http:
            while not self.killing.is_set():
                k0, _, ks = self._records(rng)
                body = "".join(
                    json.dumps({"ts": t.isoformat(), "k": k}) + "\n"
                    for t, k in zip(self._times(ks), ks, strict=True)
                )
                r = http.post(f"/v1/streams/{stream}/records", content=body, headers=headers)
                if r.status_code != 200:
                    raise ValueError(f"HTTP {r.status_code}: {r.text}")
                ack = r.json()
                self.acks.add(stream, ack["first_offset"], ack["last_offset"], k0)

    def _operator(self, rng: random.Random, _stream: str) -> None:
        """Flushes and compactions on demand, back to back, on top of the background ones."""
        with flight.FlightClient(self.server.flight_url) as client:
            while not self.killing.is_set():
                action = rng.choice(["flush", "compact"])
                list(client.do_action(flight.Action(action, b"")))


def _verify(server: ArrowlogServe, acks: Acks) -> int:
    rows = 0
    with flight.FlightClient(server.flight_url) as client:
        for stream in STREAMS:
            if not acks.ranges.get(stream):
                continue
            sql = f"SELECT _offset, k FROM {stream} ORDER BY _offset"
            table = client.do_get(flight.Ticket(sql.encode())).read_all()
            acks.check(stream, table.column("_offset").to_pylist(), table.column("k").to_pylist())
            rows += table.num_rows
    return rows


def _activity(server: ArrowlogServe) -> tuple[int, int]:
    log = server.process.stderr_path.read_text(errors="replace")
    return len(re.findall(r" flushed \d+ rows", log)), len(re.findall(r" compacted ", log))


def _cycles(tmp_path: Path, cycles: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    acks = Acks()
    counter = itertools.count()
    k_lock = threading.Lock()
    k_next = [0]

    def next_k(n: int) -> int:
        with k_lock:
            k0 = k_next[0]
            k_next[0] += n
            return k0

    stats = {"cycles": 0, "flushes": 0, "compactions": 0, "acked_records": 0, "rows": 0}
    server = _start(tmp_path, data_dir, next(counter))
    try:
        for cycle in range(cycles):
            ingest = _Ingest(server, acks, next_k)
            before = sum(len(v) for v in acks.ranges.values())
            kill_after = 0 if rng.random() < 0.1 else rng.randint(10, 400)
            ingest.start(seed * 1000 + cycle)
            target = before + kill_after
            wait_until(
                lambda i=ingest, t=target: (
                    sum(len(v) for v in acks.ranges.values()) >= t or i.unexpected
                ),
                60,
                f"{kill_after} acknowledgements",
            )
            ingest.killing.set()
            server.stop(signal.SIGKILL)
            ingest.join()
            assert not ingest.unexpected, "\n".join(ingest.unexpected) + server.process.output()
            flushes, compactions = _activity(server)
            stats["flushes"] += flushes
            stats["compactions"] += compactions
            for stream in STREAMS:  # the directory as the crash left it
                if (data_dir / "streams" / stream / "_delta_log").is_dir():
                    check_delta_files(data_dir / "streams" / stream)
            server = _start(tmp_path, data_dir, next(counter))
            stats["rows"] = _verify(server, acks)
            stats["cycles"] += 1
    finally:
        code = server.stop()
    assert code == 0, server.process.output()
    with arrowlog.open(data_dir) as log:  # and once more without a server in between
        for stream in STREAMS:
            t = log.sql(f"SELECT _offset, k FROM {stream} ORDER BY _offset").to_arrow()
            acks.check(stream, t.column("_offset").to_pylist(), t.column("k").to_pylist())
    for stream in STREAMS:
        check_delta_files(data_dir / "streams" / stream)
    stats["acked_records"] = acks.count()
    assert stats["rows"] >= stats["acked_records"]
    return stats


def test_kill_9_of_serve_under_flight_and_http_ingest(tmp_path: Path) -> None:
    stats = _cycles(tmp_path, 5, seed=7)
    assert stats["flushes"] > 0 and stats["compactions"] > 0, stats
    print(f"server crash suite: {stats}")


@pytest.mark.slow
def test_kill_9_of_serve_fifty_cycles(tmp_path: Path) -> None:
    stats = _cycles(tmp_path, 50, seed=8)
    print(f"server crash suite (slow): {stats}")
