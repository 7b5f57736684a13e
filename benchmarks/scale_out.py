"""Scale-out figures: the query set on S3 vs local disk, and two nodes' ingest vs one.

``python -m benchmarks.scale_out [--rows N] [--seconds S]``

- **Query set, S3 vs local.** The same demo rows are written into one embedded Log over a
  local directory and one over SeaweedFS (``weed mini`` on 127.0.0.1, the same S3 server
  the tests use); each demo query runs on both, interleaved, median of the repetitions.
  The S3 server shares this machine's two cores and disk, so the ratio measures the
  object-store protocol's cost (requests, no local page cache of our own), not a network.
- **Cluster ingest.** ``arrowlog serve --node-id`` over SeaweedFS: one node, then two nodes
  of one stream with two partitions; 4 Flight DoPut clients of 10k-row batches for
  ``--seconds``, split over the nodes. In cluster mode an append is acknowledged once its
  segment is committed to the shared Delta table, so the per-node ceiling is the group
  commit (one Parquet upload + one Delta commit per group); on two cores, two nodes also
  share the CPU with each other and with SeaweedFS.

Results are printed as markdown and appended to ``results/scale_out.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight

from benchmarks import _harness as h

REPO = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "results" / "scale_out.jsonl"


def _seaweed(base: Path):
    sys.path.insert(0, str(REPO))
    from tests._seaweed import start_seaweedfs

    return start_seaweedfs(base / "seaweedfs")


def query_set(rows: int, reps: int, s3, base: Path) -> list[dict]:
    import arrowlog
    from arrowlog.config import Settings
    from arrowlog.demo import DEMO_QUERIES, DEMO_STREAM

    table = h.dataset(rows)
    logs = {
        "local": arrowlog.open(settings=Settings.load(env={}, data_dir=base / "local")),
        "s3": arrowlog.open(
            settings=Settings.load(
                env=s3.env(), data_dir=base / "s3-wal", storage=s3.url("bench/queries")
            )
        ),
    }
    for log in logs.values():
        for batch in table.to_batches(max_chunksize=1_000_000):
            log.append(DEMO_STREAM, pa.Table.from_batches([batch]))
        log.flush()
        log.compact()
    results = []
    for name, sql in DEMO_QUERIES.items():
        times: dict[str, list[float]] = {"local": [], "s3": []}
        for _ in range(reps + 1):  # the first round warms both up and is dropped
            for where, log in logs.items():
                started = time.perf_counter()
                log.sql(sql).to_arrow()
                times[where].append(time.perf_counter() - started)
        local = statistics.median(times["local"][1:])
        remote = statistics.median(times["s3"][1:])
        results.append(
            {"case": "query on S3 vs local", "query": name, "local_ms": local * 1000,
             "s3_ms": remote * 1000, "ratio": remote / local}
        )  # fmt: skip
        h.progress(f"{name}: local {local * 1000:.0f} ms, S3 {remote * 1000:.0f} ms")
    for log in logs.values():
        log.close()
    return results


def _ingest(urls: list[str], batches: list[pa.RecordBatch], seconds: float, clients: int) -> float:
    """Rows/s acknowledged by ``clients`` DoPut writers spread over ``urls``."""
    acked = [0] * clients
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        conn = flight.connect(urls[i % len(urls)])
        descriptor = flight.FlightDescriptor.for_path("bench")
        writer, reader = conn.do_put(descriptor, batches[0].schema)
        n = 0
        while time.monotonic() < stop:
            batch = batches[n % len(batches)]
            n += 1
            try:
                writer.write_batch(batch)
                reader.read()  # the ack: committed to the shared table
            except flight.FlightUnavailableError:
                # A partition changing hands (no writer for a moment): reconnect, retry.
                writer, reader = conn.do_put(descriptor, batches[0].schema)
                time.sleep(0.05)
                continue
            acked[i] += batch.num_rows
        writer.done_writing()
        writer.close()
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(acked) / (time.perf_counter() - started)


def _settle(http_url: str, nodes: int, timeout: float = 60.0) -> None:
    """Wait until every node writes its share of the stream's two partitions."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owners = httpx.get(f"{http_url}/v1/cluster", timeout=10).json()["streams"].get("bench", [])
        holders = [p["node"] for p in owners]
        if None not in holders and len(set(holders)) == nodes:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the cluster did not settle: {owners}")


def cluster_ingest(seconds: float, s3, base: Path) -> list[dict]:
    batches = h.dataset(200_000).drop_columns([]).to_batches(max_chunksize=10_000)
    results = {}
    for nodes in (1, 2):
        url = s3.url(f"bench/ingest-{nodes}-{time.monotonic_ns()}")
        procs = []
        try:
            for n in range(nodes):
                procs.append(
                    h.serve(
                        base / f"n{nodes}-{n}",
                        base / f"logs-{nodes}-{n}",
                        env=s3.env(),
                        storage=url,
                        node_id=f"node-{n}",
                        partitions=2,
                        **h.READ_ONLY_SETTINGS,
                    )
                )
            # Create the stream, then let each node settle on its share of the partitions.
            _ingest([procs[0].flight_url], batches[:1], 0.01, 1)
            _settle(procs[0].http_url, nodes)
            results[nodes] = _ingest([p.flight_url for p in procs], batches, seconds, 4)
            h.progress(f"{nodes} node(s): {results[nodes]:,.0f} rows/s")
        finally:
            for p in procs:
                p.stop()
    return [
        {"case": "cluster ingest", "nodes": 1, "rows_per_s": results[1]},
        {"case": "cluster ingest", "nodes": 2, "rows_per_s": results[2],
         "ratio_vs_one": results[2] / results[1]},
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale_out", description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="arrowlog-scale-out-") as tmp:
        base = Path(tmp)
        s3 = _seaweed(base)
        try:
            records = query_set(args.rows, args.reps, s3, base)
            records += cluster_ingest(args.seconds, s3, base)
        finally:
            s3.stop()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    info = {
        "rows": args.rows,
        "reps": args.reps,
        "seconds": args.seconds,
        "cores": h.machine_info().get("cores"),
    }
    with OUT.open("a") as f:
        for r in records:
            f.write(json.dumps({**info, **r}) + "\n")
    print("| query | local ms | S3 ms | S3 / local |\n|---|---|---|---|")
    for r in records:
        if r["case"] == "query on S3 vs local":
            print(f"| {r['query']} | {r['local_ms']:.0f} | {r['s3_ms']:.0f} | {r['ratio']:.2f} |")
    ratios = [r["ratio"] for r in records if r["case"] == "query on S3 vs local"]
    print(f"\nmedian S3/local: {statistics.median(ratios):.2f}\n")
    print("| nodes | rows/s acknowledged |\n|---|---|")
    for r in records:
        if r["case"] == "cluster ingest":
            print(f"| {r['nodes']} | {r['rows_per_s']:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
