"""Question: does one ``arrowlog serve`` keep every record, and how do latencies and memory
behave, under many concurrent clients of every kind?

N client threads (default 50) run for D seconds (default 60) against one server, each in
one role, round-robin: Flight DoPut writers (one long DoPut per client, one acknowledged
batch of 100-500 rows per operation), HTTP NDJSON writers (one POST of 50-300 rows per
operation) and ADBC Flight SQL readers (a count, a group-by, the newest rows), in the
ratio 2 : 2 : 1. Writers share two streams, so offsets are contended. Every record carries
a unique ``k``.

Recorded: operations and errors per kind (the first messages of each error kind), p50 /
p99 / max latency in ms per kind, the server's RSS once a second, and at the end a check
through the server that every acknowledged record is there exactly once (``lost``,
``duplicated``) with gap-free offsets. The server is started by this script (default
settings, fresh data directory) unless ``--flight``/``--http`` point at a running one.

Run: ``python -m benchmarks.load [--clients 50] [--duration 60] [--token T]``: prints one
JSON line and appends it to the results file. ``tests/reliability/test_load.py`` runs a
10 s version and asserts zero errors and nothing lost.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as dbapi
import httpx
import numpy as np
import pyarrow as pa
import pyarrow.flight as flight

from benchmarks import _harness as h

BENCH = "load"
STREAMS = ("load_a", "load_b")
ROLES = ("flight_put", "flight_put", "http_ndjson", "http_ndjson", "adbc_query")
QUERIES = (
    "SELECT count(*) FROM {stream}",
    "SELECT level, count(*) AS n, max(k) AS k FROM {stream} GROUP BY level",
    "SELECT * FROM {stream} ORDER BY _offset DESC LIMIT 100",
)
BASE_TIME = datetime(2026, 11, 23, tzinfo=UTC)
_K_STRIDE = 10**10  # client i writes k in [i * stride, (i + 1) * stride)


@dataclass
class _Client:
    """One client thread's record: latencies, errors, acknowledged k ranges."""

    role: str
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    acked: dict[str, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))


def _records(rng: random.Random, k0: int, n: int) -> tuple[list[datetime], list[str], list[int]]:
    ks = list(range(k0, k0 + n))
    times = [BASE_TIME + timedelta(seconds=k % 86_400) for k in ks]
    levels = [rng.choice(("INFO", "INFO", "INFO", "WARN", "ERROR")) for _ in ks]
    return times, levels, ks


def _flight_put(
    c: _Client, i: int, flight_url: str, token: str | None, stop: threading.Event
) -> None:
    rng = random.Random(i)
    stream = STREAMS[i % len(STREAMS)]
    schema = pa.schema(
        [("ts", pa.timestamp("us", tz="UTC")), ("level", pa.string()), ("k", pa.int64())]
    )
    # No call deadline here: a gRPC deadline covers the whole DoPut stream, and this one
    # stays open for the entire run (a 120 s deadline cut every writer at 120 s).
    options = _flight_options(token, timeout=None)
    k = i * _K_STRIDE
    with flight.FlightClient(flight_url) as client:
        writer, reader = client.do_put(flight.FlightDescriptor.for_path(stream), schema, options)
        try:
            while not stop.is_set():
                n = rng.randint(100, 500)
                k0, k = k, k + n
                times, levels, ks = _records(rng, k0, n)
                batch = pa.record_batch(
                    [pa.array(times, schema[0].type), levels, pa.array(ks, pa.int64())],
                    schema=schema,
                )
                started = time.perf_counter()
                writer.write_batch(batch)
                buf = reader.read()
                c.latencies.append(time.perf_counter() - started)
                if buf is None:
                    raise ConnectionError("DoPut ended without an acknowledgement")
                ack = json.loads(buf.to_pybytes())
                if ack["accepted"] != n:
                    raise ValueError(f"acknowledged {ack['accepted']} of {n}")
                c.acked[stream].append((k0, n))
            writer.done_writing()
        finally:
            writer.close()


def _http_ndjson(
    c: _Client, i: int, http_url: str, token: str | None, stop: threading.Event
) -> None:
    rng = random.Random(i)
    stream = STREAMS[i % len(STREAMS)]
    headers = {"Content-Type": "application/x-ndjson"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    k = i * _K_STRIDE
    with httpx.Client(base_url=http_url, headers=headers, timeout=60) as http:
        while not stop.is_set():
            n = rng.randint(50, 300)
            times, levels, ks = _records(rng, k, n)
            body = "".join(
                f'{{"ts": "{t.isoformat()}", "level": "{lv}", "k": {kk}}}\n'
                for t, lv, kk in zip(times, levels, ks, strict=True)
            ).encode()
            started = time.perf_counter()
            r = http.post(f"/v1/streams/{stream}/records", content=body)
            c.latencies.append(time.perf_counter() - started)
            if r.status_code != 200:
                raise ValueError(f"HTTP {r.status_code}: {r.text[:200]}")
            if r.json()["accepted"] != n:
                raise ValueError(f"acknowledged {r.json()['accepted']} of {n}")
            c.acked[stream].append((k, n))
            k += n


def _adbc_query(
    c: _Client, i: int, flight_url: str, token: str | None, stop: threading.Event
) -> None:
    rng = random.Random(i)
    kwargs = {}
    if token:
        kwargs[adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value] = f"Bearer {token}"
    # Wait for the writers' first acknowledgements: the streams exist from then on.
    with dbapi.connect(flight_url, db_kwargs=kwargs) as conn:
        while not stop.is_set():
            sql = rng.choice(QUERIES).format(stream=rng.choice(STREAMS))
            started = time.perf_counter()
            with conn.cursor() as cur:
                try:
                    cur.execute(sql)
                    cur.fetch_arrow_table()
                except dbapi.Error as e:
                    if "not found" in str(e) and time.perf_counter() - _T0[0] < 10:
                        stop.wait(0.05)  # the first writes have not created the stream yet
                        continue
                    raise
            c.latencies.append(time.perf_counter() - started)


_ROLE_FUNCS: dict[str, Callable[..., None]] = {
    "flight_put": _flight_put,
    "http_ndjson": _http_ndjson,
    "adbc_query": _adbc_query,
}
_T0 = [0.0]


def _guarded(fn: Callable[..., None], c: _Client, *args: Any) -> None:
    try:
        fn(c, *args)
    except Exception as e:  # a load test records every failure kind, whatever it is
        c.errors.append(f"{type(e).__name__}: {str(e)[:300]}")


def verify(flight_url: str, token: str | None, clients: Sequence[_Client]) -> dict[str, Any]:
    """Through the server: every acknowledged k present exactly once, offsets gap-free."""
    report: dict[str, Any] = {"lost": 0, "duplicated": 0, "unacknowledged_present": 0}
    with flight.FlightClient(flight_url) as client:
        for stream in STREAMS:
            ranges = [r for c in clients for r in c.acked.get(stream, [])]
            if not ranges:
                continue
            expected = np.concatenate([np.arange(k0, k0 + n, dtype=np.int64) for k0, n in ranges])
            sql = f"SELECT _offset, k FROM {stream}"
            table = client.do_get(flight.Ticket(sql.encode()), _flight_options(token)).read_all()
            offsets = np.sort(table.column("_offset").to_numpy())
            present = table.column("k").to_numpy()
            unique = np.unique(present)
            report["duplicated"] += int(len(present) - len(unique))
            report["lost"] += len(np.setdiff1d(expected, unique, assume_unique=False))
            report["unacknowledged_present"] += len(np.setdiff1d(unique, expected))
            gap_free = bool(len(offsets) == 0 or (offsets == np.arange(len(offsets))).all())
            report[f"{stream}_rows"] = len(present)
            report[f"{stream}_offsets_gap_free"] = gap_free
    return report


def run(
    *,
    clients: int = 50,
    duration: float = 60.0,
    flight_url: str | None = None,
    http_url: str | None = None,
    token: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run the load and return its result (see the module docstring). Starts a server
    (with ``env``) unless both URLs are given."""
    base = Path(tempfile.mkdtemp(prefix="arrowlog-load-"))
    server = None
    if flight_url is None or http_url is None:
        server = h.serve(base / "data", base / "logs", env=env, token=token)
        flight_url, http_url = server.flight_url, server.http_url
    stop = threading.Event()
    states: list[_Client] = []
    threads: list[threading.Thread] = []
    _T0[0] = time.perf_counter()
    for i in range(clients):
        role = ROLES[i % len(ROLES)]
        c = _Client(role)
        url = http_url if role == "http_ndjson" else flight_url
        states.append(c)
        threads.append(
            threading.Thread(target=_guarded, args=(_ROLE_FUNCS[role], c, i, url, token, stop))
        )
    rss: list[tuple[float, int]] = []
    try:
        for t in threads:
            t.start()
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < duration:
            if server is not None and server.running:
                rss.append((round(elapsed, 1), h.rss_bytes(server.pid)))
            stop.wait(min(1.0, max(0.0, duration - elapsed)))
        stop.set()
        for t in threads:
            t.join(timeout=120)
        wall = time.perf_counter() - started
        check = verify(flight_url, token, states)
    finally:
        stop.set()
        code = server.stop() if server is not None else 0
        shutil.rmtree(base, ignore_errors=True)
    result: dict[str, Any] = {
        "bench": BENCH,
        "clients": clients,
        "duration_s": round(wall, 2),
        "server_exit_code": code,
        "operations": {},
        "errors": sum(len(c.errors) for c in states),
        "error_samples": sorted({e for c in states for e in c.errors})[:10],
        "acked_records": int(sum(n for c in states for rs in c.acked.values() for _, n in rs)),
        "rss_bytes": rss,
        "rss_max_bytes": max((v for _, v in rss), default=None),
        **check,
    }
    for role in dict.fromkeys(ROLES):
        lat = np.array([x for c in states if c.role == role for x in c.latencies]) * 1000
        result["operations"][role] = {
            "count": len(lat),
            "per_s": round(len(lat) / wall, 1) if wall else None,
            "errors": sum(len(c.errors) for c in states if c.role == role),
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
            "max_ms": round(float(lat.max()), 2) if len(lat) else None,
        }
    return result


def _flight_options(token: str | None, timeout: float | None = 120) -> flight.FlightCallOptions:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    return flight.FlightCallOptions(headers=headers, timeout=timeout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--flight", default=None, help="a running server's Flight URL")
    parser.add_argument("--http", default=None, help="a running server's HTTP URL")
    parser.add_argument("--token", default=os.environ.get("ARROWLOG_TOKEN"))
    parser.add_argument("--run-id", default=None, help="record under this run id")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append")
    args = parser.parse_args(argv)
    if args.run_id:
        h.RUN_ID = args.run_id
    h.progress(f"load: {args.clients} clients for {args.duration:g} s")
    result = run(
        clients=args.clients,
        duration=args.duration,
        flight_url=args.flight,
        http_url=args.http,
        token=args.token,
    )
    line = result if args.no_record else h.emit(result)
    print(json.dumps(line, default=str))
    ok = result["errors"] == 0 and result["lost"] == 0 and result["duplicated"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
