"""Question: how fast does arrowlog find the few records of one id, or the records whose
message mentions a word, next to DuckDB?

The data: ``--rows`` demo web-log records (``arrowlog.demo.generate_web_logs``) with two
more columns and a wider ``user_id`` (generated here, seeded, cached under ``CACHE_ROOT``):

- ``trace_id``: a uuid4 string per record; ``request_id``: ``req_`` and 20 hex digits;
- ``user_id``: one of ``rows // 4`` users (an int64, ids in random order), skewed so that a
  few users send thousands of requests and most send a handful (the messages still name
  the demo's users);
- ``message`` as the demo writes it: ``timeout`` appears in about 0.7% of the records.

They are appended to an embedded ``arrowlog.open(dir)`` in batches of ``APPEND_ROWS``, then
flushed and compacted (the steady state, as ``queries_embedded`` does). Every query runs,
taking turns, three ways:

- ``arrowlog``: ``log.sql(q).to_arrow()``, DataFusion, snapshot and planning included;
- ``DuckDB, user's file`` (reference a): DuckDB over the same records written as a user
  would write them: NDJSON (Polars ``write_ndjson``) read back with ``pyarrow.json``
  defaults, then ``pq.write_table`` with defaults, one file (cached);
- ``DuckDB, arrowlog's files`` (reference b): DuckDB ``read_parquet`` over the stream's
  live files (from the Delta log).

Queries: needles by ``trace_id``, ``request_id`` (one existing value each) and a
``user_id`` with a few records; ``message LIKE '%timeout%'`` as a count and as a LIMIT
100; a regular expression over ``message``. Targets: each needle at least 10x faster than
reference a and no slower than reference b; text search at most 1.0x DuckDB over the same
files (b). Every answer must equal DuckDB's on arrowlog's files (a LIMIT without ORDER BY
is checked by its row count and its rows' match) or the run fails.

Run: ``python -m benchmarks.search [--rows N] [--reps N]``
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq
from deltalake import DeltaTable

import arrowlog
from arrowlog import segments
from arrowlog.demo import generate_web_logs
from benchmarks import _harness as h
from benchmarks import _suite
from benchmarks.queries_embedded import ResultMismatch, check_agree, read_parquet

BENCH = "search"
STREAM = "web_logs"
APPEND_ROWS = 10_000  # what a log shipper sends per request
NEEDLE_SPEEDUP_TARGET = 10.0  # over DuckDB on the user's file
SAME_FILES_TARGET = 1.0  # arrowlog / DuckDB on arrowlog's files
USERS_PER_ROW = 0.25
NDJSON_CHUNK_ROWS = 1_000_000
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


# -- the data --------------------------------------------------------------------------------


def generate(rows: int, seed: int) -> pa.Table:
    """The demo web logs with ``trace_id``, ``request_id`` and a high-cardinality ``user_id``."""
    rng = np.random.default_rng([seed, 17])
    users = max(1, int(rows * USERS_PER_ROW))
    # An id per popularity rank, in random order (so min/max statistics cannot prune).
    ids = rng.permutation(users).astype(np.int64) + 1_000_000
    pieces = []
    for table in generate_web_logs(rows, seed=seed, start=h.DATA_START, batch_rows=1_000_000):
        n = table.num_rows
        # rank = users * u^2: the first users are heavy, most have one to four requests.
        rank = (users * rng.random(n) ** 2).astype(np.int64)
        at = table.schema.get_field_index("user_id")
        table = table.set_column(at, "user_id", pa.array(ids[rank]))
        table = table.append_column("trace_id", _uuid4(rng, n))
        table = table.append_column("request_id", _request_ids(rng, n))
        pieces.append(table)
    return pa.concat_tables(pieces)


def _hex_strings(raw: np.ndarray, dashes: Sequence[int] = (), prefix: bytes = b"") -> pa.Array:
    """One fixed-width string per row of ``raw`` (n x k bytes): ``prefix``, its hex digits,
    with a dash before each hex position in ``dashes``."""
    n, k = raw.shape
    digits = np.empty((n, 2 * k), dtype=np.uint8)
    digits[:, 0::2] = _HEX[raw >> 4]
    digits[:, 1::2] = _HEX[raw & 15]
    parts = [np.full((n, len(prefix)), list(prefix), dtype=np.uint8)] if prefix else []
    last = 0
    for d in dashes:
        parts += [digits[:, last:d], np.full((n, 1), ord("-"), dtype=np.uint8)]
        last = d
    parts.append(digits[:, last:])
    chars = np.ascontiguousarray(np.concatenate(parts, axis=1))
    width = chars.shape[1]
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars))


def _uuid4(rng: np.random.Generator, n: int) -> pa.Array:
    raw = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    return _hex_strings(raw, dashes=(8, 12, 16, 20))


def _request_ids(rng: np.random.Generator, n: int) -> pa.Array:
    return _hex_strings(rng.integers(0, 256, (n, 10), dtype=np.uint8), prefix=b"req_")


def dataset(rows: int, seed: int) -> pa.Table:
    """``generate(rows, seed)``, written once as Arrow IPC under the cache and mapped after."""
    path = _cache_dir(rows, seed) / "web_logs.arrow"
    if not path.exists():
        h.progress(f"{BENCH}: generating {rows:,} rows into {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        table = generate(rows, seed)
        tmp = path.with_suffix(".tmp")
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=1_000_000)
        tmp.replace(path)
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def _cache_dir(rows: int, seed: int) -> Path:
    return h.CACHE_ROOT / f"search-{rows}-{seed}"


def load(rows: int, seed: int) -> tuple[Path, dict[str, Any]]:
    """An arrowlog data dir holding the data set, appended, flushed and compacted once.

    The marker is written only after a clean close, so a half-built directory is never
    reused; it also records what the files depend on (``_writer_fingerprint``).
    """
    base = _cache_dir(rows, seed)
    data_dir, marker = base / "log", base / "log.json"
    want = {"rows": rows, "seed": seed, "writer": _writer_fingerprint()}
    if marker.exists():
        meta = json.loads(marker.read_text())
        if {k: meta.get(k) for k in want} == want:
            h.progress(f"{BENCH}: reusing {data_dir}")
            return data_dir, {**meta, "reused": True}
    shutil.rmtree(data_dir, ignore_errors=True)
    marker.unlink(missing_ok=True)
    table = dataset(rows, seed)
    h.progress(f"{BENCH}: appending {rows:,} rows in batches of {APPEND_ROWS:,} to {data_dir}")
    start = time.perf_counter()
    with arrowlog.open(data_dir) as log:
        for batch in table.to_batches(max_chunksize=APPEND_ROWS):
            log.append(STREAM, batch)
        log.flush()
        load_s = time.perf_counter() - start
        flushed = log.describe(STREAM).segments
        log.compact(STREAM)
        segments = log.describe(STREAM).segments
    meta = {**want, "load_s": load_s, "segments_after_flush": flushed, "segments": segments}
    marker.write_text(json.dumps(meta))
    return data_dir, {**meta, "reused": False}


def _writer_fingerprint() -> str:
    """What the segment files depend on: arrowlog's writer code and pyarrow's version."""
    source = Path(segments.__file__).read_bytes()
    return f"{arrowlog.__version__}-{pa.__version__}-{hashlib.sha256(source).hexdigest()[:12]}"


def live_files(data_dir: Path) -> list[str]:
    """The stream's live Parquet files, from the Delta log (never a directory listing)."""
    uris = DeltaTable(str(data_dir / "streams" / STREAM)).file_uris()
    return [u.removeprefix("file://") for u in uris]


def user_file(rows: int, seed: int) -> Path:
    """The data set as a user would write it: NDJSON read back with ``pyarrow.json``
    defaults (``ts`` stays a string), then ``pq.write_table`` with defaults. Cached."""
    path = _cache_dir(rows, seed) / "user.parquet"
    if path.exists():
        return path
    table = dataset(rows, seed)
    h.progress(f"{BENCH}: NDJSON -> pyarrow.json -> pq.write_table into {path}")
    parts = []
    for start in range(0, table.num_rows, NDJSON_CHUNK_ROWS):
        sink = io.BytesIO()
        pl.from_arrow(table.slice(start, NDJSON_CHUNK_ROWS)).write_ndjson(sink)  # type: ignore[union-attr]
        parts.append(pj.read_json(io.BytesIO(sink.getvalue())))
    tmp = path.with_suffix(".tmp")
    pq.write_table(pa.concat_tables(parts), tmp)
    tmp.replace(path)
    return path


# -- the queries -----------------------------------------------------------------------------


COLUMNS = "ts, service, host, status, latency_ms, user_id, request_id, trace_id, message"
REGEX = "timeout after [0-9]+ms on /payments/"


def queries(table: pa.Table) -> dict[str, tuple[str, str]]:
    """Name -> (DataFusion SQL, DuckDB SQL), with needles taken from the data."""
    n = table.num_rows
    trace = table.column("trace_id")[int(n * 0.37)].as_py()
    request = table.column("request_id")[int(n * 0.83)].as_py()
    user = needle_user(table.column("user_id"))
    like = f"FROM {STREAM} WHERE message LIKE '%timeout%'"
    both = {
        "needle_trace_id": f"SELECT {COLUMNS} FROM {STREAM} WHERE trace_id = '{trace}'",
        "needle_request_id": f"SELECT {COLUMNS} FROM {STREAM} WHERE request_id = '{request}'",
        "needle_user_id": f"SELECT {COLUMNS} FROM {STREAM} WHERE user_id = {user} ORDER BY ts",
        "like_count": f"SELECT count(*) AS n {like}",
        "like_limit": f"SELECT ts, service, status, message {like} LIMIT 100",
    }
    sql = {name: (q, q) for name, q in both.items()}
    where = f"FROM {STREAM} WHERE regexp_%s(message, '{REGEX}')"
    sql["regex_count"] = (
        f"SELECT count(*) AS n {where % 'like'}",
        f"SELECT count(*) AS n {where % 'matches'}",
    )
    return sql


def needle_user(user_ids: pa.ChunkedArray) -> int:
    """A user with three to five records (the rarest, in a tiny data set): the middle one
    of them in order of first request."""
    counts = pc.value_counts(user_ids)
    n = counts.field("counts")
    few = pc.and_(pc.greater_equal(n, 3), pc.less_equal(n, 5))
    if not pc.any(few).as_py():
        few = pc.equal(n, pc.min(n))
    candidates = counts.field("values").filter(few)
    return candidates[len(candidates) // 2].as_py()


NEEDLES = ("needle_trace_id", "needle_request_id", "needle_user_id")


# -- checking answers ------------------------------------------------------------------------


def _as_written(table: pa.Table) -> pa.Table:
    """A result from the user's file with ``ts`` (a string there) parsed back to an instant."""
    if "ts" in table.column_names and pa.types.is_string(table.schema.field("ts").type):
        at = table.column_names.index("ts")
        ts = pc.cast(table.column("ts"), pa.timestamp("us", tz="UTC"))
        table = table.set_column(at, "ts", ts)
    return table


def check(name: str, expected: pa.Table, actual: pa.Table, engine: str) -> None:
    """Raise ResultMismatch unless ``actual`` answers ``name`` as ``expected`` does.

    A LIMIT without ORDER BY may return any of the matching rows: its answer is checked by
    its row count and by every row matching the predicate.
    """
    actual = _as_written(actual)
    if name != "like_limit":
        check_agree(name, expected, actual, engine)
        return
    if actual.num_rows != expected.num_rows:
        raise ResultMismatch(
            f"{name}: {engine} returned {actual.num_rows} rows, not {expected.num_rows}"
        )
    if not pc.all(pc.match_substring(actual.column("message"), "timeout")).as_py():
        raise ResultMismatch(f"{name}: {engine} returned a row whose message lacks 'timeout'")


# -- timing ----------------------------------------------------------------------------------


def run(
    rows: int = h.QUERY_ROWS,
    reps: int = h.REPS,
    *,
    seed: int = h.SEED,
    out: Path = h.RESULTS_PATH,
    run_id: str = h.RUN_ID,
) -> list[dict[str, Any]]:
    """Load (or reuse) the data and its user's file, time every query three ways, check."""
    data_dir, load_meta = load(rows, seed)
    users = user_file(rows, seed)
    sql = queries(dataset(rows, seed))
    files = live_files(data_dir)
    common = {
        "run_id": run_id,
        "bench": BENCH,
        "rows": rows,
        "seed": seed,
        "data_dir": str(data_dir),
    }
    records = [
        {
            **common,
            "case": "load",
            "files": len(files),
            "arrowlog_bytes_per_row": sum(Path(f).stat().st_size for f in files) / rows,
            "user_file_bytes_per_row": users.stat().st_size / rows,
            "user_file_row_groups": pq.ParquetFile(users).num_row_groups,
            **load_meta,
        }
    ]
    con = duckdb.connect(":memory:")
    own = f"{read_parquet(files)} AS {STREAM}"
    theirs = f"read_parquet('{users}') AS {STREAM}"
    with arrowlog.open(data_dir) as log:
        for name, (query, duck) in sql.items():
            on_user_file = duck.replace(f"FROM {STREAM}", f"FROM {theirs}")
            on_own_files = duck.replace(f"FROM {STREAM}", f"FROM {own}")
            runners: dict[str, Callable[[], pa.Table]] = {
                "arrowlog": lambda q=query: log.sql(q).to_arrow(),
                "duckdb_user_file": lambda q=on_user_file: con.sql(q).to_arrow_table(),
                "duckdb_own_files": lambda q=on_own_files: con.sql(q).to_arrow_table(),
            }
            h.progress(f"{BENCH}: {name}, {reps} reps x {len(runners)}, taking turns")
            stats = h.interleaved(runners, reps)
            expected = stats["duckdb_own_files"].results[-1]
            for engine in ("arrowlog", "duckdb_user_file"):
                check(name, expected, stats[engine].results[-1], engine)
            ms = {f"{engine}_ms": s.median * 1e3 for engine, s in stats.items()}
            records.append(
                {
                    **common,
                    "case": "query",
                    "query": name,
                    "kind": "needle" if name in NEEDLES else "text",
                    "sql": query,
                    "result_rows": expected.num_rows,
                    **ms,
                    "speedup_vs_user_file": ms["duckdb_user_file_ms"] / ms["arrowlog_ms"],
                    "ratio_vs_own_files": ms["arrowlog_ms"] / ms["duckdb_own_files_ms"],
                    "ratio_vs_user_file": ms["arrowlog_ms"] / ms["duckdb_user_file_ms"],
                    "results_agree": True,
                    "stats": {engine: s.to_dict() for engine, s in stats.items()},
                }
            )
    if live_files(data_dir) != files:
        raise RuntimeError(f"the live files of {data_dir} changed during the run; run again")
    con.close()
    return [h.emit(r, out) for r in records]


# -- the suite's rows --------------------------------------------------------------------------


def _figure(queries: Sequence[dict[str, Any]], engine: str, what: str) -> dict[str, Any]:
    """Sum of the per-query medians (ms); range: the sums of per-query minima and maxima."""
    total = sum(q[f"{engine}_ms"] for q in queries)
    lo = sum(q["stats"][engine]["min_s"] for q in queries) * 1e3
    hi = sum(q["stats"][engine]["max_s"] for q in queries) * 1e3
    return _suite.figure(what, "ms for the set", total, lo, hi)


def summarize(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    mine = [r for r in records if r.get("bench") == BENCH]
    loads = [r for r in mine if r["case"] == "load"]
    queries_ = [r for r in mine if r["case"] == "query"]
    if not loads or not queries_:
        return []
    load_rec = loads[-1]
    rows, files = load_rec["rows"], load_rec["files"]
    needles = [q for q in queries_ if q["kind"] == "needle"]
    text = [q for q in queries_ if q["kind"] == "text"]
    arrowlog_path = "embedded Log.sql (DataFusion), after flush and compaction"

    def per_query(qs: Sequence[dict[str, Any]]) -> dict[str, Any]:
        keys = ("result_rows", "arrowlog_ms", "duckdb_user_file_ms", "duckdb_own_files_ms",
                "speedup_vs_user_file", "ratio_vs_own_files", "ratio_vs_user_file")  # fmt: skip
        return {q["query"]: {k: q[k] for k in keys} for q in qs}

    user_file_what = (
        f"DuckDB over the same rows as a user writes them (NDJSON, pyarrow.json, "
        f"pq.write_table defaults; {load_rec['user_file_row_groups']} row groups)"
    )
    own_what = f"DuckDB read_parquet over arrowlog's {files} file(s)"
    worst_speedup = min(q["speedup_vs_user_file"] for q in needles)
    worst_needle = max(q["ratio_vs_own_files"] for q in needles)
    worst_text = max(q["ratio_vs_own_files"] for q in text)
    return [
        _suite.row(
            "needle",
            f"needle by id (trace_id, request_id, user_id), {rows:,} rows",
            arrowlog_path,
            _figure(needles, "arrowlog", f"{len(needles)} lookups, sum of medians"),
            _figure(needles, "duckdb_user_file", user_file_what),
            ratio=worst_speedup,
            ratio_of="smallest over the lookups of reference / arrowlog time: speed-up "
            "(higher is better)",
            target=f">= {NEEDLE_SPEEDUP_TARGET:g}",
            met=worst_speedup >= NEEDLE_SPEEDUP_TARGET,
            reps=needles[0]["stats"]["arrowlog"]["reps"],
            record=load_rec,
            details={"per_query": per_query(needles), "load": load_rec},
        ),
        _suite.row(
            "needle_same_files",
            f"needle by id, {rows:,} rows (vs DuckDB on arrowlog's files)",
            arrowlog_path,
            _figure(needles, "arrowlog", f"{len(needles)} lookups, sum of medians"),
            _figure(needles, "duckdb_own_files", own_what),
            ratio=worst_needle,
            ratio_of="largest over the lookups of arrowlog / reference time (lower is better)",
            target=f"<= {SAME_FILES_TARGET:g}",
            met=worst_needle <= SAME_FILES_TARGET,
            reps=needles[0]["stats"]["arrowlog"]["reps"],
            record=load_rec,
            details={"per_query": per_query(needles)},
        ),
        _suite.row(
            "text_search",
            f"text search (LIKE '%timeout%' count and LIMIT 100, a regex), {rows:,} rows",
            arrowlog_path,
            _figure(text, "arrowlog", f"{len(text)} queries, sum of medians"),
            _figure(text, "duckdb_own_files", own_what),
            ratio=worst_text,
            ratio_of="largest over the queries of arrowlog / reference time (lower is better)",
            target=f"<= {SAME_FILES_TARGET:g}",
            met=worst_text <= SAME_FILES_TARGET,
            reps=text[0]["stats"]["arrowlog"]["reps"],
            record=load_rec,
            details={"per_query": per_query(text)},
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.search", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=h.QUERY_ROWS, help="rows in the data set")
    parser.add_argument("--reps", type=int, default=h.REPS, help="timed repetitions per engine")
    parser.add_argument("--seed", type=int, default=h.SEED)
    h.add_common_arguments(parser)
    args = parser.parse_args(argv)
    try:
        records = run(args.rows, args.reps, seed=args.seed, out=args.out, run_id=args.run_id)
    except ResultMismatch as e:
        print(f"RESULTS DISAGREE: {e}", file=sys.stderr)
        return 2
    if not args.no_table:
        print(_suite.markdown(summarize(records)))
        print(report(records))
    return 0


def report(records: Sequence[dict[str, Any]]) -> str:
    """Markdown: one line per query, ms and ratios."""
    rows = [
        {
            "query": r["query"],
            "result rows": r["result_rows"],
            "arrowlog ms": r["arrowlog_ms"],
            "DuckDB user's file ms": r["duckdb_user_file_ms"],
            "DuckDB arrowlog's files ms": r["duckdb_own_files_ms"],
            "speed-up vs user's file": r["speedup_vs_user_file"],
            "arrowlog / DuckDB same files": r["ratio_vs_own_files"],
        }
        for r in records
        if r.get("bench") == BENCH and r["case"] == "query"
    ]
    return h.markdown_table(rows) if rows else ""


if __name__ == "__main__":
    sys.exit(main())
