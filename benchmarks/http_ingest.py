"""Question: how fast does NDJSON ingest through the HTTP API go, next to parsing it in-process?

Both sides get the same bytes: demo web-log rows (``arrowlog.demo.generate_web_logs``, via
the harness's cached data set) serialised as NDJSON bodies of 1 to 5 MB (sizes drawn from
a seeded generator).

- ``http``: a real ``python -m arrowlog serve`` (``arrowlog.testing.serve``; default
  settings: WAL fsync on, the background flusher running) and 4 threads, each with its own
  keep-alive httpx client, posting the bodies from one shared queue to
  ``POST /v1/streams/{stream}/records``. A body counts once its answer (sent after the WAL
  fsync) is back. Every repetition appends
  to the same stream (the warm-up creates it: a steady state, as for a shipper); starting
  the server is not timed.
- ``read_json``: ``pyarrow.json.read_json`` on each body in this process (it parses with
  its own thread pool), one body after another, and again from 4 threads; the faster of
  the two is the baseline.

The ratio http/read_json rows/s is the headline; the target is >= 0.5. The server parses
with the same ``read_json`` and then validates, coerces, encodes, writes and fsyncs, all
on the same CPUs as the benchmark's own clients.

Run: ``python -m benchmarks.http_ingest [--rows N] [--reps N]``; prints one JSON line per
case and one with the ratio (``--table`` for markdown instead), and appends them to the
results file like the other benchmarks.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.json as pajson

from benchmarks import _harness as h
from benchmarks import _suite

BENCH = "http_ingest"
CLIENTS = 4
BODY_BYTES = (1_000_000, 5_000_000)
TARGET_RATIO = 0.5
DEFAULT_ROWS = 1_000_000


def ndjson_bodies(table: pa.Table, seed: int) -> list[tuple[bytes, int]]:
    """(body, rows) pairs: ``table`` as NDJSON cut into bodies of 1-5 MB."""
    rng = np.random.default_rng(seed)
    sample = _ndjson(table.slice(0, 10_000))
    bytes_per_row = len(sample) / min(10_000, table.num_rows)
    low, high = BODY_BYTES
    bodies = []
    start = 0
    while start < table.num_rows:
        # Aim inside the range (row sizes vary); a short tail joins the body before it.
        rows = max(1, int(rng.uniform(low * 1.05, high * 0.95) / bytes_per_row))
        if (table.num_rows - start - rows) * bytes_per_row < low:
            rows = table.num_rows - start
        bodies.append((_ndjson(table.slice(start, rows)), min(rows, table.num_rows - start)))
        start += rows
    return bodies


def _ndjson(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pl.from_arrow(table).write_ndjson(sink)  # type: ignore[union-attr]
    return sink.getvalue()


def post_all(clients: Sequence[httpx.Client], bodies: Sequence[tuple[bytes, int]]) -> int:
    """Post every body from one thread per client; return the records acknowledged."""
    headers = {"Content-Type": "application/x-ndjson"}
    accepted = [0] * len(clients)

    def post(worker: int, item: tuple[bytes, int]) -> None:
        r = clients[worker].post("/v1/streams/web_logs/records", content=item[0], headers=headers)
        r.raise_for_status()
        accepted[worker] += r.json()["accepted"]

    h.feed_threads(len(clients), bodies, post, name="bench-http")
    return sum(accepted)


def parse_all(bodies: Sequence[tuple[bytes, int]], threads: int) -> int:
    """``pyarrow.json.read_json`` (default options) over every body; return the rows."""
    rows = [0] * threads

    def parse(worker: int, item: tuple[bytes, int]) -> None:
        rows[worker] += pajson.read_json(pa.BufferReader(item[0])).num_rows

    h.feed_threads(threads, bodies, parse, name="bench-http")
    return sum(rows)


def run(
    rows: int = DEFAULT_ROWS,
    reps: int = h.REPS,
    *,
    seed: int = h.SEED,
    workdir: Path | None = None,
    out: Path = h.RESULTS_PATH,
    run_id: str = h.RUN_ID,
    dataset_rows: int | None = None,
) -> list[dict[str, Any]]:
    """Run both sides on the same bodies; emit one record per case plus the ratio.

    The cases take turns within each repetition (http, read_json x1, read_json x4, then
    again), so a neighbour's load on a shared machine weighs on all of them alike.
    """
    # The first ``rows`` of the data set of ``dataset_rows`` (the suite's reference set).
    table = h.dataset(max(rows, dataset_rows or rows), seed).slice(0, rows)
    h.progress(f"{BENCH}: serialising {rows:,} rows as NDJSON bodies of 1-5 MB")
    bodies = ndjson_bodies(table, seed)
    nbytes = sum(len(b) for b, _ in bodies)
    root = Path(workdir or h.CACHE_ROOT / "http-scratch")
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="http-ingest-", dir=root))
    common = {
        "run_id": run_id,
        "bench": BENCH,
        "rows": rows,
        "bodies": len(bodies),
        "body_mb_min": min(len(b) for b, _ in bodies) / 1e6,
        "body_mb_max": max(len(b) for b, _ in bodies) / 1e6,
        "ndjson_mb": nbytes / 1e6,
        "seed": seed,
        "data_dir": str(root),
        "http_stack": _http_stack(),
    }
    server = h.serve(scratch / "data", scratch / "server")
    clients = [httpx.Client(base_url=server.http_url, timeout=120) for _ in range(CLIENTS)]
    cases: list[tuple[str, int, Callable[[], int], str]] = [
        ("http", CLIENTS, lambda: post_all(clients, bodies),
         "arrowlog serve, POST NDJSON, ack after WAL fsync"),
        ("read_json", 1, lambda: parse_all(bodies, 1),
         "pyarrow.json.read_json in-process, one body at a time"),
        ("read_json", CLIENTS, lambda: parse_all(bodies, CLIENTS),
         "pyarrow.json.read_json in-process, 4 threads"),
    ]  # fmt: skip
    samples: list[list[float]] = [[] for _ in cases]
    warmup = 1
    try:
        for rep in range(warmup + reps):
            h.progress(f"{BENCH}: repetition {rep + 1 - warmup} of {reps} (0: warm-up)")
            for i, (case, _, fn, _) in enumerate(cases):
                started = time.perf_counter()
                done = fn()
                elapsed = time.perf_counter() - started
                if done != rows:
                    raise RuntimeError(f"{case}: {done} rows instead of {rows}")
                if rep >= warmup:
                    samples[i].append(elapsed)
    except BaseException:
        alive = server.running
        h.progress(f"{BENCH}: failed; the server is {'running' if alive else 'gone'}; its log:")
        print(server.output()[-6000:], file=sys.stderr)
        raise
    finally:
        for c in clients:
            c.close()
        code = server.stop()
        if code != 0:
            print(server.output()[-6000:], file=sys.stderr)
        shutil.rmtree(scratch, ignore_errors=True)
    if code != 0:
        raise RuntimeError(f"arrowlog serve exited with code {code}")
    records = []
    for (case, threads, _, note), times in zip(cases, samples, strict=True):
        stats = h.Stats(tuple(times), warmup)
        record = {
            **common,
            "case": case,
            "threads": threads,
            "rows_per_s": rows / stats.median,
            "mb_per_s": nbytes / 1e6 / stats.median,
            "note": note,
            **stats.to_dict(),
        }
        records.append(h.emit(record, out))
    http = records[0]["rows_per_s"]
    baseline = max(r["rows_per_s"] for r in records[1:])
    ratio = http / baseline
    records.append(
        h.emit(
            {
                **common,
                "case": "ratio http/read_json",
                "ratio": ratio,
                "http_rows_per_s": http,
                "read_json_rows_per_s": baseline,
                "target": f">= {TARGET_RATIO}",
                "target_met": ratio >= TARGET_RATIO,
            },
            out,
        )
    )
    return records


def _http_stack() -> str:
    """What uvicorn runs on here: httptools and uvloop when installed, else h11 and asyncio."""
    import importlib.util

    parser = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"uvicorn {parser}/{loop}"


def report(records: Sequence[dict[str, Any]]) -> str:
    """Markdown: one row per case, then the ratio."""
    cases = [r for r in records if r.get("bench") == BENCH and "rows_per_s" in r]
    ratios = [r for r in records if r.get("bench") == BENCH and "ratio" in r]
    if not cases:
        return ""
    first = cases[0]
    rows = [
        {
            "case": r["case"],
            "threads": r["threads"],
            "rows/s": r["rows_per_s"],
            "MB/s": r["mb_per_s"],
            "median s": r["median_s"],
            "min s": r["min_s"],
            "max s": r["max_s"],
        }
        for r in cases
    ]
    lines = [
        f"### Ingest over HTTP: {first['rows']:,} rows as {first['bodies']} NDJSON bodies of "
        f"{first['body_mb_min']:.1f}-{first['body_mb_max']:.1f} MB ({first['ndjson_mb']:.0f} MB), "
        f"median of {first['reps']} reps; server on {first.get('http_stack', '?')}",
        "",
        h.markdown_table(rows),
        "",
    ]
    for r in ratios:
        lines.append(
            f"- http/read_json rows/s: **{r['ratio']:.2f}** (target {r['target']}: "
            f"{'met' if r['target_met'] else 'NOT met'})"
        )
    return "\n".join(lines) + "\n"


def summarize(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The suite's row: HTTP rows/s next to the faster of the two read_json baselines."""
    mine = [r for r in records if r.get("bench") == BENCH and "rows_per_s" in r]
    if not mine:
        return []
    http = next(r for r in mine if r["case"] == "http")
    best = max((r for r in mine if r["case"] == "read_json"), key=lambda r: r["rows_per_s"])
    ratio = http["rows_per_s"] / best["rows_per_s"]
    return [
        _suite.row(
            "http_ndjson",
            f"NDJSON over HTTP, {http['rows']:,} rows in {http['bodies']} bodies "
            f"of {http['body_mb_min']:.1f}-{http['body_mb_max']:.1f} MB",
            f"POST /v1/streams/{{s}}/records, {CLIENTS} clients, ack after fsync",
            _suite.throughput(
                f"{http['ndjson_mb']:.0f} MB of NDJSON; {http.get('http_stack', '')}",
                http["rows"],
                http,
                "rows/s",
            ),
            _suite.throughput(
                f"pyarrow.json.read_json on the same bytes, {best['threads']} thread(s)",
                best["rows"],
                best,
                "rows/s",
            ),
            ratio=ratio,
            ratio_of="arrowlog / reference rows/s (higher is better)",
            target=f">= {TARGET_RATIO}",
            met=ratio >= TARGET_RATIO,
            reps=http["reps"],
            record=http,
            details={
                f"read_json_{r['threads']}_threads_rows_per_s": r["rows_per_s"]
                for r in mine
                if r["case"] == "read_json"
            },
        )
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.http_ingest", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows per repetition")
    parser.add_argument("--reps", type=int, default=h.REPS, help="timed repetitions per case")
    parser.add_argument(
        "--dataset-rows", type=int, default=None, help="take the rows from a larger data set"
    )
    parser.add_argument("--seed", type=int, default=h.SEED)
    parser.add_argument("--workdir", type=Path, default=None, help="where scratch data goes")
    h.add_common_arguments(parser)
    parser.add_argument("--table", action="store_true", help="print markdown, not JSON lines")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    records = run(
        args.rows,
        args.reps,
        seed=args.seed,
        workdir=args.workdir,
        out=args.out,
        run_id=args.run_id,
        dataset_rows=args.dataset_rows,
    )
    h.progress(f"{BENCH}: done in {time.perf_counter() - started:.0f} s")
    if args.table:
        print(report(records))
    elif not args.no_table:
        for record in records:
            print(json.dumps({k: v for k, v in record.items() if k != "machine"}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
