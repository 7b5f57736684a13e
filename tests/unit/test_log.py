"""The embedded Log: ingest, bad input, evolution, flushing, storage format, SQL, recovery."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import deltalake
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import arrowlog
from arrowlog import (
    BatchTooLarge,
    InvalidInput,
    ReadOnlyQuery,
    StreamNotFound,
    Unavailable,
)
from arrowlog.snapshot import build_dataset
from arrowlog.wal import WriteAheadLog

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.01)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[arrowlog.Log]:
    with arrowlog.open(tmp_path / "data", flush_interval=3600.0) as lg:
        yield lg


def _records(n: int, start: int = 0, **extra) -> list[dict]:
    return [
        {
            "ts": T0 + timedelta(minutes=i),
            "level": "ERROR" if i % 5 == 0 else "INFO",
            "n": start + i,
            **extra,
        }
        for i in range(n)
    ]


def _count(log: arrowlog.Log, stream: str) -> int:
    return log.sql(f"SELECT count(*) AS c FROM {stream}").to_arrow().column("c")[0].as_py()


# -- accepted inputs --------------------------------------------------------------------------


def test_every_input_kind_appends_the_same_records(log: arrowlog.Log) -> None:
    recs = _records(3)
    table = pa.Table.from_pylist(recs)
    inputs = [recs, table, table.to_batches()[0], table.to_pandas(), pl.from_arrow(table)]
    for i, data in enumerate(inputs):
        res = log.append("s", data)
        assert (res.stream, res.accepted, res.first_offset, res.last_offset) == (
            "s",
            3,
            3 * i,
            3 * i + 2,
        )
    got = log.sql("SELECT n, level FROM s ORDER BY _offset").to_arrow()
    assert got.column("n").to_pylist() == [0, 1, 2] * len(inputs)


def test_offsets_are_gap_free_under_concurrent_appends_and_fsyncs_are_shared(
    log: arrowlog.Log,
) -> None:
    def worker(k: int) -> None:
        for j in range(30):
            log.append("s", [{"k": k, "j": j}])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t = log.sql("SELECT _offset, k, j FROM s ORDER BY _offset").to_arrow()
    assert t.column("_offset").to_pylist() == list(range(240))
    assert sorted(zip(t.column("k").to_pylist(), t.column("j").to_pylist(), strict=True)) == [
        (k, j) for k in range(8) for j in range(30)
    ]
    # Group commit: 240 acknowledged appends needed fewer fsyncs than appends.
    assert 0 < log._wal.fsync_count < 240


def test_read_your_writes_before_and_after_flush_and_reopen(tmp_path: Path) -> None:
    with arrowlog.open(tmp_path, flush_interval=3600.0) as log:
        log.append("s", _records(10))
        assert _count(log, "s") == 10  # from the buffer
        log.flush()
        log.append("s", _records(5, 10))
        assert _count(log, "s") == 15  # segments plus buffer
        info = log.describe("s")
        assert (info.rows, info.first_offset, info.last_offset, info.buffered_rows) == (
            15,
            0,
            14,
            5,
        )
    with arrowlog.open(tmp_path) as log:
        assert _count(log, "s") == 15
        assert log.read("s", 0, 100).column("n").to_pylist() == list(range(15))


# -- bad input changes nothing ------------------------------------------------------------------


def _invalid_utf8() -> pa.Table:
    arr = pa.Array.from_buffers(
        pa.string(),
        1,
        [None, pa.py_buffer(b"\x00\x00\x00\x00\x02\x00\x00\x00"), pa.py_buffer(b"\xff\xfe")],
    )
    return pa.table({"ts": pa.array([T0], pa.timestamp("us", tz="UTC")), "level": arr, "n": [1]})


BAD_INPUTS = [
    (
        "s",
        [{"ts": T0, "level": "INFO", "n": "forty-two"}],
        InvalidInput,
        r"column 'n' has type string, but stream 's' has int64",
    ),
    (
        "s",
        [{"ts": T0, "level": 7, "n": 1}],
        InvalidInput,
        r"column 'level' has type int64, but stream 's' has string",
    ),
    ("s", [{"ts": "yesterday", "n": 1}], InvalidInput, r"column 'ts'.*'yesterday'"),
    ("s", [], InvalidInput, r"empty batch"),
    ("s", [1, 2, 3], InvalidInput, r"records must be dicts"),
    ("s", "not records", InvalidInput, r"str"),
    ("s", [{"_offset": 5, "n": 1}], InvalidInput, r"column '_offset' is reserved"),
    ("s", [{"n": 1, "msg": "x" * 2_000_000}], BatchTooLarge, r"column 'msg'"),
    ("s", _invalid_utf8(), InvalidInput, r"column 'level'.*not valid UTF-8"),
    ("../etc", [{"n": 1}], InvalidInput, r"invalid stream name '../etc'"),
    ("a" * 129, [{"n": 1}], InvalidInput, r"invalid stream name"),
    ("naïve", [{"n": 1}], InvalidInput, r"invalid stream name"),
]


@pytest.mark.parametrize(("stream", "data", "error", "message"), BAD_INPUTS)
def test_bad_input_is_rejected_whole_and_changes_nothing(
    log: arrowlog.Log, stream: str, data: object, error: type, message: str
) -> None:
    log.append("s", _records(4))
    before = log.describe("s")
    wal_bytes = sum(p.stat().st_size for p in (log.path / "wal").iterdir())
    with pytest.raises(error, match=message):
        log.append(stream, data)
    after = log.describe("s")
    assert (after.rows, after.last_offset, after.schema) == (
        before.rows,
        before.last_offset,
        before.schema,
    )
    assert sum(p.stat().st_size for p in (log.path / "wal").iterdir()) == wal_bytes
    assert [s.name for s in log.streams()] == ["s"]
    # The next good append continues at the next offset.
    assert log.append("s", _records(1)).first_offset == 4


def test_batch_over_the_size_limit_is_rejected(tmp_path: Path) -> None:
    with arrowlog.open(tmp_path, max_batch_bytes=10_000) as log:
        with pytest.raises(BatchTooLarge, match=r"over the limit of 10000 bytes"):
            log.append("s", {"x": list(range(5000))})
        assert log.streams() == []


# -- schemas, streams, time column ------------------------------------------------------------


def test_schema_evolves_additively_and_survives_flush_and_reopen(tmp_path: Path) -> None:
    with arrowlog.open(tmp_path, flush_interval=3600.0) as log:
        log.append("s", _records(2))
        log.flush()
        log.append("s", _records(2, 2, host="web-1"))
        names = log.schema("s").names
        assert names == ["ts", "level", "n", "host", "_offset", "_ingested_at"]
    with arrowlog.open(tmp_path) as log:  # the new column came back from the WAL, then the catalog
        got = log.sql("SELECT n, host FROM s ORDER BY n").to_arrow().to_pylist()
        assert got == [
            {"n": 0, "host": None},
            {"n": 1, "host": None},
            {"n": 2, "host": "web-1"},
            {"n": 3, "host": "web-1"},
        ]
        delta_names = (
            deltalake.DeltaTable(str(tmp_path / "streams" / "s")).schema().to_arrow().names
        )
        assert "host" in delta_names


def test_missing_fields_become_nulls_and_ints_widen(log: arrowlog.Log) -> None:
    log.append("s", pa.table({"n": pa.array([1], pa.int64()), "f": [0.5]}))
    log.append("s", pa.table({"n": pa.array([2], pa.int16())}))
    log.append("s", pa.table({"f": pa.array([3], pa.int32())}))
    assert log.sql("SELECT n, f FROM s ORDER BY _offset").to_arrow().to_pylist() == [
        {"n": 1, "f": 0.5},
        {"n": 2, "f": None},
        {"n": None, "f": 3.0},
    ]


def test_time_column_defaults_parses_strings_and_falls_back_to_ingested_at(
    log: arrowlog.Log,
) -> None:
    log.append("a", [{"@timestamp": "2026-11-23T10:00:00Z", "ts": 5, "m": "x"}])
    assert log.describe("a").time_column == "@timestamp"  # 'ts' is an int: not a time
    assert log.schema("a").field("@timestamp").type == pa.timestamp("us", tz="UTC")
    log.append("b", [{"m": "no time here"}])
    assert log.describe("b").time_column == "_ingested_at"
    log.append("c", [{"ts": "2026-11-23T10:00:00+01:00"}, {"ts": None}])
    got = log.sql("SELECT ts, _ingested_at FROM c ORDER BY _offset").to_arrow().to_pylist()
    assert got[0]["ts"] == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert got[1]["ts"] is None  # kept as sent; the ingestion time places it (see below)


def test_declared_stream_with_schema_and_time_column(log: arrowlog.Log) -> None:
    schema = pa.schema([("at", pa.timestamp("ms")), ("code", pa.int32()), ("msg", pa.string())])
    info = log.create_stream("events", schema, time_column="at")
    assert info.time_column == "at" and info.rows == 0
    assert info.schema.field("at").type == pa.timestamp("us", tz="UTC")
    log.append("events", [{"at": "2026-11-23T00:00:00Z", "code": 7}])
    assert log.sql("SELECT code, msg FROM events").to_arrow().to_pylist() == [
        {"code": 7, "msg": None}
    ]
    with pytest.raises(InvalidInput, match=r"stream 'events' already exists"):
        log.create_stream("events", schema)
    with pytest.raises(InvalidInput, match=r"already uses time column 'at', not 'ts'"):
        log.append("events", [{"code": 1}], time_column="ts")
    assert log.describe("events").rows == 1


def test_unknown_stream_errors(log: arrowlog.Log) -> None:
    with pytest.raises(StreamNotFound, match=r"stream 'nope' not found"):
        log.read("nope")
    with pytest.raises(StreamNotFound, match=r"stream 'nope' not found"):
        log.sql("SELECT * FROM nope")
    with pytest.raises(StreamNotFound):
        log.describe("nope")


# -- flushing and storage -----------------------------------------------------------------------


def test_background_flush_by_rows_and_by_age(tmp_path: Path) -> None:
    with arrowlog.open(tmp_path, flush_rows=100, flush_interval=3600.0) as log:
        log.append("s", _records(150))
        _wait_until(lambda: log.describe("s").segments > 0)
        assert log.describe("s").buffered_rows == 0
    with arrowlog.open(tmp_path, flush_interval=0.2) as log:
        log.append("s", _records(3, 150))
        _wait_until(lambda: log.describe("s").buffered_rows == 0)
        assert _count(log, "s") == 153


def test_segments_are_a_delta_table_other_engines_read(tmp_path: Path) -> None:
    days = [T0 + timedelta(hours=h) for h in (0, 30, 5, 55, 1)]  # three days, out of order
    with arrowlog.open(tmp_path, flush_interval=3600.0, row_group_rows=2) as log:
        log.append("s", [{"ts": d, "n": i} for i, d in enumerate(days)])
        log.flush()
    path = tmp_path / "streams" / "s"
    dt = deltalake.DeltaTable(str(path))
    assert dt.transaction_version("arrowlog:s") == 4  # the watermark: last flushed offset
    assert sorted(dt.to_pyarrow_table().column("n").to_pylist()) == [0, 1, 2, 3, 4]
    assert pl.scan_delta(str(path)).select(pl.len()).collect().item() == 5
    files = dt.file_uris()
    assert sorted(Path(f).parent.name for f in files) == [
        "day=2026-11-20",
        "day=2026-11-21",
        "day=2026-11-22",
    ]
    for f in files:
        pf = pq.ParquetFile(f)
        assert pf.metadata.row_group(0).column(0).compression == "ZSTD"
        ts = pf.read().column("ts").to_pylist()
        assert ts == sorted(ts)  # sorted by the time column within a segment
    big = max(files, key=lambda f: pq.ParquetFile(f).metadata.num_rows)
    assert (
        pq.ParquetFile(big).metadata.num_rows == 3
        and pq.ParquetFile(big).metadata.num_row_groups == 2
    )


def test_wal_space_is_reclaimed_only_after_a_flush(tmp_path: Path) -> None:
    with arrowlog.open(tmp_path, flush_interval=3600.0, wal_segment_bytes=4096) as log:
        for i in range(20):
            log.append("s", _records(20, i * 20))
        wal_files = len(list((tmp_path / "wal").iterdir()))
        assert wal_files > 3
        log.flush()
        assert len(list((tmp_path / "wal").iterdir())) < wal_files
        assert _count(log, "s") == 400


def test_a_flush_committed_before_a_crash_is_not_replayed_twice(
    tmp_path: Path, monkeypatch
) -> None:
    # Crash between the Delta commit and the WAL release: the WAL still holds flushed entries.
    monkeypatch.setattr(WriteAheadLog, "release", lambda self, below_seq: 0)
    log = arrowlog.open(tmp_path, flush_interval=3600.0)
    log.append("s", _records(7))
    log.flush()
    log.append("s", _records(3, 7))
    # Simulate kill -9: stop the flusher thread and drop the directory lock, no close().
    log._stop.set()
    log._flusher.stop()
    os.close(log._lock_fd)
    monkeypatch.undo()
    with arrowlog.open(tmp_path) as again:
        t = again.sql("SELECT _offset, n FROM s ORDER BY _offset").to_arrow()
        assert t.column("_offset").to_pylist() == list(range(10))
        assert t.column("n").to_pylist() == list(range(10))


def test_second_process_on_the_same_directory_is_refused(log: arrowlog.Log) -> None:
    with pytest.raises(Unavailable, match=r"in use by another arrowlog process"):
        arrowlog.open(log.path)


def test_closed_log_refuses_calls(tmp_path: Path) -> None:
    log = arrowlog.open(tmp_path)
    log.close()
    with pytest.raises(Unavailable, match=r"the log is closed"):
        log.append("s", [{"n": 1}])


# -- SQL -------------------------------------------------------------------------------------------


def test_sql_results_in_every_shape(log: arrowlog.Log) -> None:
    log.append("s", _records(10))
    res = log.sql("SELECT level, count(*) AS c FROM s GROUP BY level ORDER BY level")
    assert isinstance(res.to_pandas(), pd.DataFrame)
    assert res.to_polars().to_dicts() == [{"level": "ERROR", "c": 2}, {"level": "INFO", "c": 8}]
    assert sum(b.num_rows for b in res) == 2
    assert pa.table(res).num_rows == 2  # Arrow C stream protocol
    assert res.schema.field("level").type == pa.string()  # plain utf8, never Utf8View


def test_both_engines_agree(log: arrowlog.Log) -> None:
    log.append("s", _records(50))
    log.flush()
    log.append("s", _records(20, 50))
    q = "SELECT level, count(*) AS c, sum(n) AS total FROM s GROUP BY level ORDER BY level"
    df = log.sql(q).to_arrow().to_pylist()
    dd = log.sql(q, engine="duckdb").to_arrow().to_pylist()
    assert [(r["level"], r["c"], int(r["total"])) for r in df] == [
        (r["level"], r["c"], int(r["total"])) for r in dd
    ]


@pytest.mark.parametrize(
    ("query", "engine", "message"),
    [
        (
            "COPY (SELECT 1) TO '/tmp/arrowlog-copy.csv'",
            "datafusion",
            r"not allowed: arrowlog is read-only",
        ),
        (
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
            "datafusion",
            r"CreateExternalTable is not allowed",
        ),
        ("INSERT INTO s (n) VALUES (1)", "datafusion", r"Insert is not allowed"),
        ("DROP TABLE s", "datafusion", r"DropTable is not allowed"),
        ("SET datafusion.execution.batch_size = 1", "datafusion", r"SetVariable is not allowed"),
        ("COPY s TO '/tmp/arrowlog-copy.csv'", "duckdb", r"only SELECT queries are allowed"),
        ("INSERT INTO s VALUES (1)", "duckdb", r"only SELECT queries are allowed"),
    ],
)
def test_sql_is_read_only(log: arrowlog.Log, query: str, engine: str, message: str) -> None:
    log.append("s", _records(3))
    with pytest.raises(ReadOnlyQuery, match=message):
        log.sql(query, engine=engine).to_arrow()
    assert _count(log, "s") == 3
    assert not Path("/tmp/arrowlog-copy.csv").exists()


def test_queries_cannot_read_files(log: arrowlog.Log) -> None:
    log.append("s", _records(1))
    with pytest.raises(StreamNotFound):
        log.sql("SELECT * FROM '/etc/passwd'").to_arrow()
    with pytest.raises(InvalidInput, match=r"(?i)disabled"):
        log.sql("SELECT * FROM read_csv('/etc/passwd')", engine="duckdb").to_arrow()


def test_sql_errors_carry_the_engine_message(log: arrowlog.Log) -> None:
    log.append("s", _records(1))
    with pytest.raises(InvalidInput, match=r"ParserError"):
        log.sql("SELEC 1")
    with pytest.raises(InvalidInput, match=r"(?i)divide by zero"):
        log.sql("SELECT n / 0 FROM s").to_arrow()
    with pytest.raises(InvalidInput, match=r"empty SQL query"):
        log.sql("   ")


def test_time_filters_prune_segments_before_files_are_opened(log: arrowlog.Log) -> None:
    for day in range(5):
        log.append("s", [{"ts": T0 + timedelta(days=day, minutes=m), "n": m} for m in range(10)])
        log.flush()
    assert log.describe("s").segments == 5
    plan = (
        log.sql("EXPLAIN SELECT count(*) FROM s WHERE ts >= TIMESTAMP '2026-11-24T00:00:00Z'")
        .to_arrow()
        .column("plan")
        .to_pylist()
    )
    # The catalog pruned four of the five segments: only one file reaches the scan.
    scanned = re.findall(r"day=[0-9-]+/part-[0-9a-f-]+\.zstd\.parquet", "\n".join(plan))
    assert len(scanned) == 1 and scanned[0].startswith("day=2026-11-24/"), plan
    assert _count(log, "s") == 50
    got = log.sql(
        "SELECT count(*) AS c FROM s WHERE ts >= TIMESTAMP '2026-11-24T00:00:00Z'"
    ).to_arrow()
    assert got.column("c")[0].as_py() == 10
    got = log.sql("SELECT count(*) AS c FROM s WHERE _offset BETWEEN 12 AND 27").to_arrow()
    assert got.column("c")[0].as_py() == 16


def test_stream_names_are_case_insensitive_in_sql_when_unambiguous(log: arrowlog.Log) -> None:
    log.append("HttpLogs", _records(2))
    assert _count(log, "HttpLogs") == 2
    assert _count(log, '"HttpLogs"') == 2


def test_tail_follows_new_records(log: arrowlog.Log) -> None:
    log.append("s", _records(2))
    seen: list[int] = []
    stop = threading.Event()

    def follow() -> None:
        for table in log.tail("s", 1, poll=0.05, stop=stop):
            seen.extend(table.column("n").to_pylist())

    t = threading.Thread(target=follow)
    t.start()
    for i in range(2, 6):
        log.append("s", _records(1, i))
    _wait_until(lambda: len(seen) == 5)
    stop.set()
    t.join()
    assert seen == [1, 2, 3, 4, 5]


def test_tail_reads_the_same_records_as_read_from_segments_and_buffer(
    log: arrowlog.Log,
) -> None:
    from arrowlog.tails import CHUNK_ROWS

    log.append("s", _records(CHUNK_ROWS + 500))
    log.flush("s")  # in a segment: read through the shared backlog chunks
    log.append("s", _records(300, CHUNK_ROWS + 500))
    log.append("s", _records(200, CHUNK_ROWS + 800))  # in the buffer: sliced from it
    with log.open_tail("s", 7, batch_rows=1000, max_bytes=8 * 1024) as tail:
        tables = []
        while (table := tail.next(0.1)) is not None:
            assert table.nbytes <= 8 * 1024 or table.num_rows == 1
            tables.append(table)
    got = pa.concat_tables(tables)
    assert got.equals(log.read("s", 7, 10**9))
    assert got.column("n").to_pylist() == list(range(7, CHUNK_ROWS + 1000))


def test_shard_is_also_taken_under_its_former_name_partition(log: arrowlog.Log) -> None:
    from arrowlog.results import AppendResult

    result = log.append("s", _records(2), partition=0)
    assert result.shard == result.partition == 0
    assert log.next_offset("s", partition=0) == log.next_offset("s", shard=0) == 2
    with pytest.raises(InvalidInput, match="shard 0 and partition 1 disagree"):
        log.append("s", _records(1), shard=0, partition=1)
    assert log.describe("s").shards == log.describe("s").partitions == 1
    # An older server's acknowledgement (no "shard") still reads.
    old = {"stream": "s", "accepted": 1, "first_offset": 5, "last_offset": 5, "partition": 0}
    assert AppendResult.from_dict(old) == AppendResult("s", 1, 5, 5, 0)
    assert AppendResult.from_dict(AppendResult("s", 1, 5, 5, 0).to_dict()).shard == 0


def test_open_tail_checks_its_offset_and_shard_first(log: arrowlog.Log) -> None:
    log.append("s", _records(2))
    with pytest.raises(InvalidInput, match="from_offset must be an integer from 0 to"):
        log.open_tail("s", 2**63 - 1)
    with pytest.raises(InvalidInput, match="from_offset"):
        log.open_tail("s", -1)
    with pytest.raises(InvalidInput, match="one shard"):
        log.open_tail("s", 0, shard=1)
    with pytest.raises(StreamNotFound):
        log.open_tail("nope", 0)


def test_tails_are_limited_overall_and_per_client(tmp_path: Path) -> None:
    from arrowlog.errors import TooManyTails

    with arrowlog.open(tmp_path / "d", max_tails=3, max_tails_per_client=2) as lg:
        lg.append("s", _records(1))
        a1 = lg.open_tail("s", 0, client="10.0.0.1", protocol="http")
        lg.open_tail("s", 0)  # embedded tails take no slot
        a2 = lg.open_tail("s", 0, client="10.0.0.1", protocol="flight")
        with pytest.raises(TooManyTails, match="max_tails_per_client") as refused:
            lg.open_tail("s", 0, client="10.0.0.1", protocol="http")
        assert refused.value.per_client
        b = lg.open_tail("s", 0, client="10.0.0.2", protocol="http")
        with pytest.raises(TooManyTails, match=r"at most 3 \(max_tails\)") as refused:
            lg.open_tail("s", 0, client="10.0.0.3", protocol="http")
        assert not refused.value.per_client
        a1.close()
        a1.close()  # idempotent: gives back one slot, not two
        assert lg.tails.open == 2
        lg.open_tail("s", 0, client="10.0.0.1", protocol="http").close()
        del a2  # dropped without close: its slot comes back when it is collected
        assert lg.tails.open == 1
        b.close()


def test_a_waiting_tail_wakes_at_once_on_append_and_on_close(log: arrowlog.Log) -> None:
    log.append("s", _records(1))
    tail = log.open_tail("s", 1)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(tail.next(30)))
    waiter.start()
    time.sleep(0.1)
    started = time.monotonic()
    log.append("s", _records(1, 1))
    waiter.join(5)
    assert time.monotonic() - started < 1
    assert got[0].column("n").to_pylist() == [1]
    waiter = threading.Thread(target=lambda: got.append(tail.next(30)))
    waiter.start()
    time.sleep(0.1)
    started = time.monotonic()
    tail.close()
    waiter.join(5)
    assert time.monotonic() - started < 1 and got[1] is None and tail.ended


def test_appends_and_queries_do_not_wait_for_a_flush_in_progress(
    tmp_path: Path, monkeypatch
) -> None:
    from arrowlog.catalog import StreamCatalog

    entered, release = threading.Event(), threading.Event()
    real_commit = StreamCatalog.commit

    def slow_commit(self, *args, **kwargs):
        entered.set()
        assert release.wait(30)
        return real_commit(self, *args, **kwargs)

    monkeypatch.setattr(StreamCatalog, "commit", slow_commit)
    with arrowlog.open(tmp_path, flush_interval=3600.0) as log:
        log.append("s", _records(5))
        flusher = threading.Thread(target=log.flush)
        flusher.start()
        assert entered.wait(10)  # the flush is stuck inside its Delta commit
        res = log.append("s", _records(5, 5))  # returns although the flush has not finished
        assert res.first_offset == 5
        assert _count(log, "s") == 10  # the flushing records stay visible from the buffer
        release.set()
        flusher.join()
        assert _count(log, "s") == 10
        assert log.describe("s").buffered_rows == 5


def test_pruning_is_exact_at_sub_millisecond_precision(log: arrowlog.Log) -> None:
    # Delta stores timestamp statistics truncated to milliseconds; a segment's true max can
    # lie up to 999 µs above the recorded one and must not be pruned away.
    last = datetime(2026, 11, 1, 0, 0, 1, 999_999, tzinfo=UTC)
    log.append(
        "s",
        [{"ts": datetime(2026, 11, 1, 0, 0, 0, 123_456, tzinfo=UTC), "n": 1}, {"ts": last, "n": 2}],
    )
    log.flush()
    got = log.sql("SELECT n FROM s WHERE ts > TIMESTAMP '2026-11-01T00:00:01.999500Z'").to_arrow()
    assert got.column("n").to_pylist() == [2]
    got = log.sql("SELECT n FROM s WHERE ts < TIMESTAMP '2026-11-01T00:00:00.123500Z'").to_arrow()
    assert got.column("n").to_pylist() == [1]


def test_positional_parameters_bind_with_question_marks_and_dollars(log: arrowlog.Log) -> None:
    log.append("s", _records(10))
    q = "SELECT count(*) AS c FROM s WHERE n >= ? AND level = ?"
    assert log.sql(q, params=[5, "INFO"]).to_arrow().column("c")[0].as_py() == 4
    assert (
        log.sql("SELECT count(*) AS c FROM s WHERE n >= $1", params=[5])
        .to_arrow()
        .column("c")[0]
        .as_py()
        == 5
    )
    assert log.sql(q, params=[5, "INFO"], engine="duckdb").to_arrow().column("c")[0].as_py() == 4


def test_backpressure_holds_appends_while_flushes_cannot_keep_up(tmp_path: Path) -> None:
    """Over max_buffer_bytes an append waits for a flush; past the timeout it is refused whole."""
    from arrowlog.config import Settings
    from arrowlog.errors import Unavailable
    from arrowlog.log import IOHooks, Log

    release = threading.Event()

    def stuck_fsync(fd: int) -> None:
        release.wait(30)  # a disk that stalls every segment write until released
        os.fsync(fd)

    settings = Settings.load(
        env={}, data_dir=tmp_path, max_buffer_bytes=1000, backpressure_timeout=0.5,
        flush_interval=3600.0,
    )  # fmt: skip
    rows = [{"ts": "2026-11-23T10:00:00Z", "msg": "x" * 100, "n": i} for i in range(50)]
    with Log(settings, io_hooks=IOHooks(segment_fsync=stuck_fsync)) as log:
        log.append("s", rows)  # the buffer was empty: accepted, and now over the limit
        started = time.monotonic()
        with pytest.raises(Unavailable, match="max_buffer_bytes=1000"):
            log.append("s", rows)
        assert time.monotonic() - started >= 0.5
        assert log.describe("s").rows == 50  # the refused batch left nothing behind
        assert log.metrics.backpressure_waits._value.get() >= 1
        # The disk recovers: the pending flush lands and appends are taken again.
        release.set()
        result = log.append("s", rows)
        assert (result.first_offset, result.last_offset) == (50, 99)
        assert log.sql("SELECT count(*) AS c FROM s").to_arrow()["c"][0].as_py() == 100


def test_a_large_flush_encodes_several_files_side_by_side(tmp_path: Path) -> None:
    from arrowlog.stream import WRITE_THREADS

    with arrowlog.open(tmp_path, row_group_rows=10_000) as log:
        log.append(
            "s",
            {
                "ts": [T0 + timedelta(milliseconds=i) for i in range(50_000)],
                "n": list(range(50_000)),
            },
        )
        log.flush()
        info = log.describe("s")
        assert info.segments == WRITE_THREADS
        got = log.sql("SELECT n, _offset FROM s ORDER BY _offset").to_arrow()
        assert got["n"].to_pylist() == list(range(50_000)) == got["_offset"].to_pylist()


def test_a_long_compaction_does_not_hold_up_flushes(tmp_path: Path) -> None:
    from arrowlog.config import Settings
    from arrowlog.log import IOHooks, Log

    in_compaction = threading.Event()
    release = threading.Event()

    def fsync(fd: int) -> None:
        if threading.current_thread().name == "compactor":
            in_compaction.set()
            release.wait(30)  # a compaction stuck writing its files
        os.fsync(fd)

    settings = Settings.load(env={}, data_dir=tmp_path, flush_interval=3600.0)
    with Log(settings, io_hooks=IOHooks(segment_fsync=fsync)) as log:
        for i in range(3):
            log.append("s", [{"ts": T0 + timedelta(seconds=i), "n": i}])
            log.flush()
        compactor = threading.Thread(target=log.compact, args=("s",), name="compactor")
        compactor.start()
        assert in_compaction.wait(10)
        started = time.monotonic()
        log.append("s", [{"ts": T0 + timedelta(seconds=9), "n": 9}])
        log.flush()  # not behind the compaction
        assert time.monotonic() - started < 5
        release.set()
        compactor.join(30)
        assert log.sql("SELECT count(*) AS c, sum(n) AS s FROM s").to_arrow().to_pylist() == [
            {"c": 4, "s": 12}
        ]
        assert log.describe("s").segments == 2  # the merged file + the later flush's


# 2026-12-04T08:00:00Z in nanoseconds.
DEC4_NS = 1_796_371_200 * 10**9
NS = pa.timestamp("ns", tz="UTC")


def test_nanosecond_times_are_stored_exactly_and_other_readers_read_them(
    tmp_path: Path,
) -> None:
    import duckdb

    nanos = [DEC4_NS + 999_999_999, DEC4_NS + 1, DEC4_NS + 86_400 * 10**9 + 123_456_789]
    with arrowlog.open(tmp_path, flush_interval=3600.0) as log:
        log.append("v", pa.table({"ts": pa.array(nanos, NS), "n": [0, 1, 2]}))
        assert log.schema("v").field("ts").type == NS
        log.flush()
        log.append("v", [{"ts": "2026-12-04T08:00:01Z", "n": 3}])  # µs into ns: exact
        log.flush()
    expected = [*nanos, DEC4_NS + 10**9]
    with arrowlog.open(tmp_path, flush_interval=3600.0) as log:
        assert log.schema("v").field("ts").type == NS  # the unit survives a restart
        for engine in ("datafusion", "duckdb"):
            got = log.sql("SELECT ts FROM v ORDER BY _offset", engine=engine).to_arrow()
            assert got.column("ts").cast(pa.int64()).to_pylist() == expected, engine
        # Delta keeps the maximum truncated to the millisecond (.999): pruning must still
        # keep a file whose true maximum is .999999999.
        late = "SELECT count(*) AS c FROM v WHERE ts > TIMESTAMP '2026-12-04T08:00:00.999999998Z'"
        assert log.sql(late).to_arrow().column("c")[0].as_py() == 3
        assert log.describe("v").segments == 3

    path = tmp_path / "streams" / "v"
    table = deltalake.DeltaTable(str(path))
    # Delta's own type is the common microsecond timestamp (no timestampNanos feature that
    # most readers refuse); the field metadata tells arrowlog the files hold nanoseconds.
    assert str(table.schema().fields[0].type) == 'PrimitiveType("timestamp")'
    assert "timestampNanos" not in (table.protocol().reader_features or [])
    actions = pa.table(table.get_add_actions(flatten=True))
    assert sorted(actions.column("min.ts").to_pylist())[0] == datetime(
        2026, 12, 4, 8, 0, 0, tzinfo=UTC
    )
    files = table.file_uris()
    for f in files:
        logical = pq.ParquetFile(f).schema.column(0).logical_type
        assert "timeUnit=nanoseconds" in str(logical) and "isAdjustedToUTC=true" in str(logical)
    by_polars = pl.scan_parquet(files).select(pl.col("ts").dt.epoch("ns")).collect()
    assert sorted(by_polars.to_series().to_list()) == sorted(expected)
    assert pl.scan_delta(str(path)).select(pl.len()).collect().item() == 4
    glob = str(path / "*" / "*.parquet")
    by_duckdb = duckdb.sql(f"SELECT epoch_ns(ts) FROM read_parquet('{glob}') ORDER BY 1")
    assert [r[0] for r in by_duckdb.fetchall()] == sorted(expected)


@pytest.mark.parametrize("max_native_files", [256, 0], ids=["native-scan", "dataset-scan"])
def test_rows_without_a_time_keep_it_null_and_land_in_their_ingestion_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_native_files: int
) -> None:
    import duckdb

    # With many files DataFusion scans one pyarrow dataset of all segments, as DuckDB
    # always does; its per-file guarantees must not let "ts IS NULL" skip a file.
    monkeypatch.setattr("arrowlog.sql.datafusion_engine.NATIVE_MAX_FILES", max_native_files)
    with arrowlog.open(tmp_path, flush_interval=3600.0) as log:
        now = datetime.now(UTC)  # n=3 shares a file (today's) with the rows lacking a time
        log.append("s", [{"ts": T0, "n": 0}, {"ts": None, "n": 1}, {"n": 2}, {"ts": now, "n": 3}])
        log.flush()
        log.append("s", [{"n": 4}, {"n": 5}])  # a segment whose rows all lack a time
        log.flush()
        log.append("s", [{"ts": T0 + timedelta(days=1), "n": 6}])  # one without nulls
        log.flush()
        log.append("s", [{"n": 7}])  # still buffered
        ingest_day = log.sql("SELECT max(_ingested_at) AS m FROM s").to_arrow()
        ingest_day = ingest_day.column("m")[0].as_py().date()
        assert log.describe("s").min_time == T0  # null times do not count
        for engine in ("datafusion", "duckdb"):
            nulls = log.sql("SELECT n FROM s WHERE ts IS NULL ORDER BY n", engine=engine)
            assert nulls.to_arrow().column("n").to_pylist() == [1, 2, 4, 5, 7], engine
            times = log.sql(f"SELECT count(*) AS c FROM s WHERE ts >= TIMESTAMP '{T0.isoformat()}'")
            assert times.to_arrow().column("c")[0].as_py() == 3
    # Closing flushed the last record too; every row is in a segment now.
    with arrowlog.open(tmp_path, flush_interval=3600.0) as log:
        assert log.describe("s").buffered_rows == 0
        count = "SELECT count(*) AS c FROM s WHERE ts IS NULL"
        ours = log.sql(count).to_arrow().column("c")[0].as_py()
        # What an engine that pushes the predicate into the dataset gets.
        pushed = build_dataset(log._snapshot("s")).count_rows(filter=ds.field("ts").is_null())
        assert pushed == ours
    path = tmp_path / "streams" / "s"
    glob = str(path / "*" / "*.parquet")
    rows = duckdb.sql(
        f"SELECT _offset, ts, day FROM read_parquet('{glob}', hive_partitioning = true)"
    ).fetchall()
    assert ours == sum(1 for _, ts, _ in rows if ts is None) == 5
    days = {offset: str(day) for offset, _, day in rows}
    assert days[0] == "2026-11-20" and days[6] == "2026-11-21"
    assert {days[n] for n in (1, 2, 3, 4, 5, 7)} == {ingest_day.isoformat()}
    actions = pa.table(deltalake.DeltaTable(str(path)).get_add_actions(flatten=True))
    assert sorted(actions.column("null_count.ts").to_pylist()) == [0, 0, 1, 2, 2]


def test_a_declared_time_column_reads_epoch_numbers_and_every_time_format(
    log: arrowlog.Log,
) -> None:
    info = log.create_stream("events", pa.schema([("at", pa.int64())]), time_column="at")
    assert info.schema.field("at").type == pa.timestamp("us", tz="UTC")
    log.append("events", [{"at": 1_796_371_200}, {"at": 1_796_371_200_000}])
    log.append("events", [{"at": "Fri, 04 Dec 2026 08:00:00 GMT"}])
    log.append("events", [{"at": 1_796_371_200.5}])
    log.append("later", [{"when": "04/Dec/2026:09:00:00 +0100"}], time_column="when")
    assert log.describe("later").time_column == "when"
    dec4 = datetime(2026, 12, 4, 8, tzinfo=UTC)
    got = log.sql("SELECT at FROM events ORDER BY _offset").to_arrow().column("at").to_pylist()
    assert got == [dec4, dec4, dec4, dec4.replace(microsecond=500000)]
    assert log.sql("SELECT when FROM later").to_arrow().column("when").to_pylist() == [dec4]
    with pytest.raises(
        InvalidInput, match=r"^column 'at' has a value that is not a timestamp: 'soon'$"
    ):
        log.append("events", [{"at": "soon"}])


def test_an_append_with_a_shard_the_new_stream_would_not_have_creates_nothing(
    tmp_path: Path,
) -> None:
    with arrowlog.open(tmp_path) as log:
        for shard in (1, 2147483648):
            with pytest.raises(InvalidInput, match="one shard"):
                log.append("fresh", [{"a": 1}], shard=shard)
        assert log.streams() == []
