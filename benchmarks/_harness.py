"""What every benchmark shares: fixed seeds and sizes, timing, the machine, the output.

Each benchmark script answers one question and records its answer as JSON lines
(``emit``) that carry the machine they ran on and a run id, so results from different
machines, commits and days can be told apart. Baselines go through the same ``repeat`` and
``emit`` as arrowlog itself, so the two sides are timed the same way.

The demo data is generated once per (rows, seed) into an Arrow IPC file under
``CACHE_ROOT`` and memory-mapped on later runs: generating 10M rows takes longer than most
of the measurements.

Servers come from ``arrowlog.testing`` (``serve``, ``start_process``); ``CHILD_ENV`` makes
them import this checkout, and ``rss_bytes`` / ``peak_rss_bytes`` read their memory.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from arrowlog import testing

__all__ = [
    "BATCH_ROWS",
    "CACHE_ROOT",
    "CHILD_ENV",
    "DATA_START",
    "INGEST_ROWS",
    "LOAD_BATCH_ROWS",
    "QUERY_ROWS",
    "QUICK_REPS",
    "QUICK_ROWS",
    "READ_ONLY_SETTINGS",
    "REPS",
    "RESULTS_PATH",
    "RUN_ID",
    "SECONDS",
    "SEED",
    "Stats",
    "child_pids",
    "cpu_seconds",
    "dataset",
    "emit",
    "interleaved",
    "machine_info",
    "markdown_table",
    "peak_rss_bytes",
    "progress",
    "read_records",
    "repeat",
    "reset_peak_rss",
    "rss_bytes",
    "serve",
]

# -- fixed seeds and sizes ---------------------------------------------------------------------

SEED = 42
# A fixed start, so the same (rows, seed) always gives the same bytes (the generator's
# default start is "now"); midnight, so every row lands in one day partition.
DATA_START = datetime(2026, 1, 1, tzinfo=UTC)
INGEST_ROWS = 2_000_000  # rows of one ingest burst (and the set the sustained clients cycle)
QUERY_ROWS = 10_000_000  # the reference data set: --rows of a full run
BATCH_ROWS = 10_000  # rows per append in the ingest benchmark
LOAD_BATCH_ROWS = 250_000  # rows per append when loading the query data set (~27 MB)
REPS = 5
SECONDS = 60.0  # the sustained-ingest phase
QUICK_ROWS = 1_000_000
QUICK_REPS = 3
QUICK_SECONDS = 10.0

# BENCHMARKS_CACHE moves the cache (the smoke test keeps its data in its own tmp dir).
CACHE_ROOT = Path(os.environ.get("BENCHMARKS_CACHE") or "/tmp/arrowlog-bench-cache")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Each script appends its raw records (JSON lines) here when run alone; the suite
# (``python -m benchmarks``) collects its children's records into results/latest.json.
RESULTS_PATH = RESULTS_DIR / "records.jsonl"
# One id for everything this process (and, through --run-id, its children) records.
RUN_ID = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{os.getpid()}"


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every case module takes: where its records go, and the two the suite
    passes to its children (one run id; no table, the parent prints one)."""
    parser.add_argument("--out", type=Path, default=RESULTS_PATH, help="JSON-lines output")
    parser.add_argument("--run-id", default=RUN_ID, help=argparse.SUPPRESS)
    parser.add_argument("--no-table", action="store_true", help=argparse.SUPPRESS)


T = TypeVar("T")


def progress(message: str) -> None:
    """Progress goes to stderr so that stdout holds only the result tables."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- timing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """Wall-clock seconds of the timed repetitions (warm-ups excluded)."""

    samples: tuple[float, ...]
    warmup: int
    results: tuple[Any, ...] = ()  # what fn returned on each timed repetition

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    def to_dict(self) -> dict[str, Any]:
        return {
            "median_s": self.median,
            "min_s": self.min,
            "max_s": self.max,
            "reps": len(self.samples),
            "warmup": self.warmup,
            "samples_s": list(self.samples),
        }


def repeat(
    fn: Callable[[T], Any],
    n: int = REPS,
    *,
    warmup: int = 1,
    setup: Callable[[], T] | None = None,
    teardown: Callable[[T], None] | None = None,
) -> Stats:
    """Time ``fn`` ``n`` times after ``warmup`` untimed runs; return median/min/max.

    ``setup`` runs before each repetition (untimed) and its value is passed to ``fn``;
    ``teardown`` runs after each (untimed), also after a failure. Only ``fn`` is timed.
    A warm-up fills caches and imports that a long-running process would already have; pass
    ``warmup=0`` when every repetition starts from scratch anyway.

    Example: ``repeat(lambda _: log.sql(q).to_arrow(), 5).median``
    """
    if n < 1 or warmup < 0:
        raise ValueError(f"need n >= 1 and warmup >= 0, got n={n}, warmup={warmup}")
    samples: list[float] = []
    results: list[Any] = []
    for i in range(warmup + n):
        ctx: Any = setup() if setup is not None else None
        try:
            start = time.perf_counter()
            result = fn(ctx)
            elapsed = time.perf_counter() - start
        finally:
            if teardown is not None:
                teardown(ctx)
        if i >= warmup:
            samples.append(elapsed)
            results.append(result)
    return Stats(tuple(samples), warmup, tuple(results))


def interleaved(
    runners: Mapping[str, Callable[[], Any]],
    n: int = REPS,
    *,
    warmup: int = 1,
    before: Callable[[str], None] | None = None,
    after: Callable[[str, Any], None] | None = None,
) -> dict[str, Stats]:
    """Time each runner ``n`` times, taking turns: a, b, c, a, b, c... after ``warmup`` rounds.

    On a shared machine the load changes from minute to minute; taking turns makes it
    weigh on every side alike, where ``repeat`` one after the other would not.
    ``before(name)`` and ``after(name, result)`` run untimed around each call.

    Example: ``interleaved({"ours": q1, "duckdb": q2}, 5)["ours"].median``
    """
    if n < 1 or warmup < 0:
        raise ValueError(f"need n >= 1 and warmup >= 0, got n={n}, warmup={warmup}")
    samples: dict[str, list[float]] = {name: [] for name in runners}
    results: dict[str, list[Any]] = {name: [] for name in runners}
    for i in range(warmup + n):
        for name, fn in runners.items():
            if before is not None:
                before(name)
            start = time.perf_counter()
            result = fn()
            elapsed = time.perf_counter() - start
            if after is not None:
                after(name, result)
            if i >= warmup:
                samples[name].append(elapsed)
                results[name].append(result)
    return {name: Stats(tuple(samples[name]), warmup, tuple(results[name])) for name in runners}


# -- the machine -------------------------------------------------------------------------------


@functools.cache
def _static_machine_info() -> dict[str, Any]:
    import adbc_driver_flightsql
    import datafusion
    import deltalake
    import duckdb
    import polars

    import arrowlog

    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "ram_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "datafusion": datafusion.__version__,
        "duckdb": duckdb.__version__,
        "deltalake": deltalake.__version__,
        "polars": polars.__version__,
        "adbc_driver_flightsql": adbc_driver_flightsql.__version__,
        "arrowlog": arrowlog.__version__,
        "git": _git_revision(),
    }


def machine_info(data_dir: str | Path = CACHE_ROOT) -> dict[str, Any]:
    """CPU, memory, library versions and the disk holding ``data_dir``.

    The load average is included because the machine may be shared: a high one explains
    an outlier better than any statistic.
    """
    info = dict(_static_machine_info())
    info["disk"] = _disk_info(Path(data_dir))
    info["loadavg_1m"] = os.getloadavg()[0]
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass  # not Linux: platform.processor() is the best we have
    return platform.processor() or "unknown"


def _git_revision() -> str | None:
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head


def _disk_info(path: Path) -> dict[str, Any]:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    usage = shutil.disk_usage(path)
    info: dict[str, Any] = {
        "path": str(path),
        "total_bytes": usage.total,
        "free_bytes": usage.free,
    }
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return info
    best: list[str] | None = None
    for m in mounts:
        mount_point = m[1]
        if (path == Path(mount_point) or Path(mount_point) in path.parents) and (
            best is None or len(mount_point) > len(best[1])
        ):
            best = m
    if best is not None:
        info.update(device=best[0], mount_point=best[1], fs_type=best[2])
        rotational = Path(f"/sys/block/{Path(best[0]).name}/queue/rotational")
        if rotational.exists():
            info["rotational"] = rotational.read_text().strip() == "1"
    return info


# -- output ------------------------------------------------------------------------------------


def emit(record: Mapping[str, Any], path: str | Path = RESULTS_PATH) -> dict[str, Any]:
    """Append ``record`` as one JSON line, with run id, timestamp and machine info added.

    ``record["data_dir"]``, when present, names the directory whose disk is reported.
    Returns the line as written.
    """
    line = {
        "run_id": RUN_ID,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        **record,
        "machine": machine_info(record.get("data_dir", CACHE_ROOT)),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(line, default=str) + "\n")
    return line


def read_records(path: str | Path = RESULTS_PATH, run_id: str | None = None) -> list[dict]:
    """The records of ``path``, only those of ``run_id`` when given."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open() as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [r for r in records if run_id is None or r.get("run_id") == run_id]


def markdown_table(
    records: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None
) -> str:
    """A GitHub-flavoured markdown table of flat records (missing values show as ``-``).

    ``columns`` picks and orders the keys; by default every key, in first-seen order.
    """
    records = list(records)
    if columns is None:
        columns = list(dict.fromkeys(k for r in records for k in r))
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|",
    ]
    for r in records:
        lines.append("| " + " | ".join(_cell(r.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value).replace("|", "\\|")


# -- data --------------------------------------------------------------------------------------


def dataset(rows: int, seed: int = SEED, *, cache_root: Path = CACHE_ROOT) -> pa.Table:
    """``rows`` demo web-log records for ``seed``, generated once and memory-mapped after.

    The file is written under a temporary name and renamed, so an interrupted run never
    leaves a truncated cache behind.

    Example: ``batches = dataset(2_000_000).to_batches(max_chunksize=10_000)``
    """
    from arrowlog.demo import DEMO_SCHEMA, generate_web_logs

    path = cache_root / f"{rows}-{seed}" / "web_logs.arrow"
    if not path.exists():
        progress(f"generating {rows:,} demo rows (seed {seed}) into {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, DEMO_SCHEMA) as writer:
            for table in generate_web_logs(rows, seed=seed, start=DATA_START):
                writer.write_table(table)
        tmp.replace(path)
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def in_threads(threads: int, work: Callable[[int], Any], name: str = "bench") -> None:
    """Run ``work(i)`` for i in ``range(threads)``, each in its own thread; re-raise the
    first error once all have ended."""
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as e:
            errors.append(e)

    pool = [threading.Thread(target=run, args=(i,), name=f"{name}-{i}") for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]


def feed_threads(
    threads: int, items: Sequence[Any], work: Callable[[int, Any], Any], name: str = "bench"
) -> None:
    """Hand ``items`` out to ``threads`` threads from one shared queue, as ``work(i, item)``;
    after the first error no new item is taken, and the error is re-raised."""
    it = iter(items)
    take = threading.Lock()
    failed = threading.Event()

    def drain(i: int) -> None:
        while not failed.is_set():
            with take:
                item = next(it, None)
            if item is None:
                return
            try:
                work(i, item)
            except BaseException:
                failed.set()
                raise

    in_threads(threads, drain, name)


# -- servers -----------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent
# A benchmark's server processes import this checkout (arrowlog, and benchmarks for the bare
# Flight server), whatever their working directory.
CHILD_ENV = {"PYTHONPATH": str(REPO)}
# For servers that only answer queries: no background compaction or retention run may
# rewrite the files in the middle of the timings (the data sets are compacted already).
READ_ONLY_SETTINGS: dict[str, Any] = {"compact_interval": 1_000_000}


def serve(
    data_dir: Path, log_dir: Path, *, env: Mapping[str, str] | None = None, **settings: Any
) -> testing.Server:
    """``arrowlog serve`` over ``data_dir`` on free ports (``arrowlog.testing.serve``).

    ``settings``: ``Settings`` fields; without them every setting is the default. Starting
    and stopping get minutes, not seconds: a shutdown may flush millions of buffered rows.
    """
    return testing.serve(
        data_dir,
        log_dir=log_dir,
        env={**CHILD_ENV, **(env or {})},
        timeout=180,
        stop_timeout=120,
        **settings,
    )


# -- memory of a process (Linux /proc) ---------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """The process's resident memory now (``VmRSS``)."""
    return _status_kb(pid, "VmRSS") * 1024


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident memory (``VmHWM``) since start or the last reset."""
    return _status_kb(pid, "VmHWM") * 1024


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, same user); False if not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far; 0.0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """The process's children now (its query workers, for ``arrowlog serve``)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
    return found


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)
