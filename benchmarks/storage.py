"""Question: how many bytes does arrowlog keep on disk for the reference data set, next to
the same records as NDJSON (what a log shipper would send, or a JSON-lines archive holds)?

- ``arrowlog``: the reference data set loaded and compacted (``queries_embedded.load``);
  the bytes of the stream's live Parquet files, from the Delta log (the system columns
  ``_offset`` and ``_ingested_at`` included). The whole stream directory (Delta log, files
  that compaction replaced and that wait for their vacuum grace period) is recorded too.
- ``NDJSON``: the same records (the data set's own columns) serialised as NDJSON with
  Polars ``write_ndjson``, 1M rows at a time, as the HTTP ingest benchmark sends them;
  only the byte count is kept (cached beside the data set).

Target: arrowlog bytes / NDJSON bytes <= 0.12. Nothing is timed, so there are no
repetitions.

Run: ``python -m benchmarks.storage [--rows N]``
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from arrowlog.demo import DEMO_STREAM
from benchmarks import _harness as h
from benchmarks import _suite
from benchmarks.queries_embedded import live_files, load

BENCH = "storage"
TARGET_RATIO = 0.12
CHUNK_ROWS = 1_000_000


def ndjson_bytes(rows: int, seed: int) -> int:
    """Bytes of the reference data set as NDJSON, computed once per (rows, seed)."""
    path = h.CACHE_ROOT / f"{rows}-{seed}" / "ndjson_bytes.json"
    if path.exists():
        return json.loads(path.read_text())["ndjson_bytes"]
    h.progress(f"{BENCH}: serialising {rows:,} rows as NDJSON to count its bytes")
    table = h.dataset(rows, seed)
    total = 0
    for start in range(0, table.num_rows, CHUNK_ROWS):
        sink = io.BytesIO()
        pl.from_arrow(table.slice(start, CHUNK_ROWS)).write_ndjson(sink)  # type: ignore[union-attr]
        total += len(sink.getvalue())
    path.write_text(json.dumps({"rows": rows, "seed": seed, "ndjson_bytes": total}))
    return total


def _tree_bytes(directory: Path) -> int:
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(directory)
        for name in names
    )


def run(
    rows: int, *, seed: int = h.SEED, out: Path = h.RESULTS_PATH, run_id: str = h.RUN_ID
) -> list[dict[str, Any]]:
    data_dir, load_meta = load(rows, seed)
    files = live_files(data_dir)
    live = sum(os.path.getsize(f) for f in files)
    ndjson = ndjson_bytes(rows, seed)
    record = {
        "run_id": run_id,
        "bench": BENCH,
        "case": "storage",
        "rows": rows,
        "seed": seed,
        "files": len(files),
        "live_parquet_bytes": live,
        "stream_dir_bytes": _tree_bytes(data_dir / "streams" / DEMO_STREAM),
        "arrow_bytes": h.dataset(rows, seed).nbytes,
        "ndjson_bytes": ndjson,
        "ratio": live / ndjson,
        "bytes_per_row": live / rows,
        "load": load_meta,
        "data_dir": str(data_dir),
    }
    return [h.emit(record, out)]


def summarize(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    mine = [r for r in records if r.get("bench") == BENCH]
    if not mine:
        return []
    r = mine[-1]
    return [
        _suite.row(
            "storage",
            f"storage after compaction, {r['rows']:,} rows",
            f"live Parquet files of the stream ({r['files']} after compaction)",
            _suite.figure(
                f"{r['bytes_per_row']:.1f} bytes/row", "GB", r["live_parquet_bytes"] / 1e9
            ),
            _suite.figure("the same records as NDJSON", "GB", r["ndjson_bytes"] / 1e9),
            ratio=r["ratio"],
            ratio_of="arrowlog bytes / NDJSON bytes (lower is better)",
            target="<= 0.12",
            met=r["ratio"] <= TARGET_RATIO,
            record=r,
            details={k: r[k] for k in ("stream_dir_bytes", "arrow_bytes", "files")},
        )
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.storage", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=h.QUERY_ROWS)
    parser.add_argument("--reps", type=int, default=None, help=argparse.SUPPRESS)  # untimed
    parser.add_argument("--seed", type=int, default=h.SEED)
    h.add_common_arguments(parser)
    args = parser.parse_args(argv)
    records = run(args.rows, seed=args.seed, out=args.out, run_id=args.run_id)
    if not args.no_table:
        print(_suite.markdown(summarize(records)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
