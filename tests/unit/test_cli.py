"""The ``arrowlog`` command, driven in-process through click's CliRunner."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

import arrowlog
from arrowlog import cli
from arrowlog.cli import main
from arrowlog.demo import DEMO_QUERIES, DEMO_QUERIES_DUCKDB

REPO = Path(__file__).resolve().parents[2]

RECORDS = [
    {"ts": f"2026-11-23T10:00:{i:02d}Z", "level": "ERROR" if i % 5 == 0 else "INFO", "n": i}
    for i in range(20)
]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No arrowlog.toml or ARROWLOG_* from the developer's machine leaks into the settings.
    monkeypatch.chdir(tmp_path)
    for var in [v for v in __import__("os").environ if v.startswith("ARROWLOG_")]:
        monkeypatch.delenv(var)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def run(data_dir: Path, *args: str, input: bytes | None = None) -> Result:
    return CliRunner().invoke(main, [*args, "--data-dir", str(data_dir)], input=input)


def ok(data_dir: Path, *args: str, input: bytes | None = None) -> Result:
    result = run(data_dir, *args, input=input)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def count(data_dir: Path, stream: str) -> int:
    out = ok(data_dir, "query", f"SELECT count(*) AS n FROM {stream}", "--format", "json").stdout
    return json.loads(out)["n"]


def ndjson(records: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


# -- ingest ---------------------------------------------------------------------------------


def test_ingest_ndjson_reports_offsets_and_is_queryable(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "a.ndjson").write_bytes(ndjson(RECORDS))
    result = ok(data_dir, "ingest", "a.ndjson", "--stream", "logs")
    assert result.stdout == "ingested 20 records into logs (offsets 0..19)\n"
    (tmp_path / "b.jsonl").write_bytes(ndjson(RECORDS[:5]))
    result = ok(data_dir, "ingest", "b.jsonl", "--stream", "logs")
    assert result.stdout == "ingested 5 records into logs (offsets 20..24)\n"
    assert count(data_dir, "logs") == 25


def test_ingest_json_array(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(RECORDS))
    result = ok(data_dir, "ingest", "a.json", "--stream", "logs", "--batch-rows", "7")
    assert result.stdout == "ingested 20 records into logs (offsets 0..19)\n"
    assert count(data_dir, "logs") == 20
    with arrowlog.open(data_dir) as log:
        assert log.describe("logs").schema.field("ts").type == pa.timestamp("us", tz="UTC")


def test_ingest_json_file_holding_ndjson_and_a_non_array(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "lines.json").write_bytes(ndjson(RECORDS))
    ok(data_dir, "ingest", "lines.json", "--stream", "logs")
    assert count(data_dir, "logs") == 20
    (tmp_path / "scalar.json").write_text("[1, 2]")
    result = run(data_dir, "ingest", "scalar.json", "--stream", "logs")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: cannot read scalar.json as json: "
        "each record of a JSON array must be a JSON object; record 1 is a number\n"
    )
    (tmp_path / "empty.json").write_text("[ ]")
    assert ok(data_dir, "ingest", "empty.json", "--stream", "logs").stdout == (
        "ingested 0 records into logs\n"
    )


def test_ingest_csv(tmp_path: Path, data_dir: Path) -> None:
    pacsv.write_csv(pa.Table.from_pylist(RECORDS), tmp_path / "a.csv")
    ok(data_dir, "ingest", "a.csv", "--stream", "logs")
    out = ok(
        data_dir, "query", "SELECT sum(n) AS s FROM logs WHERE level = 'ERROR'", "--format", "json"
    )
    assert json.loads(out.stdout) == {"s": 0 + 5 + 10 + 15}


def test_ingest_parquet_in_batches(tmp_path: Path, data_dir: Path) -> None:
    table = pa.Table.from_pylist(RECORDS * 10)
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=30)
    result = ok(data_dir, "ingest", "a.parquet", "--stream", "logs", "--batch-rows", "64")
    assert result.stdout == "ingested 200 records into logs (offsets 0..199)\n"
    with arrowlog.open(data_dir) as log:
        assert log.read("logs", 0, 1000).column("n").to_pylist() == table.column("n").to_pylist()


def test_ingest_gzipped_ndjson_and_csv(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "a.ndjson.gz").write_bytes(gzip.compress(ndjson(RECORDS)))
    buf = io.BytesIO()
    pacsv.write_csv(pa.Table.from_pylist(RECORDS), buf)
    (tmp_path / "b.csv.gz").write_bytes(gzip.compress(buf.getvalue()))
    result = ok(data_dir, "ingest", "a.ndjson.gz", "b.csv.gz", "--stream", "logs")
    assert result.stdout == "ingested 40 records into logs (offsets 0..39)\n"
    assert count(data_dir, "logs") == 40


def test_ingest_stdin_as_ndjson(data_dir: Path) -> None:
    result = ok(data_dir, "ingest", "-", "--stream", "logs", input=ndjson(RECORDS))
    assert result.stdout == "ingested 20 records into logs (offsets 0..19)\n"
    assert count(data_dir, "logs") == 20


def test_ingest_ndjson_chunks_evolve_the_schema(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tiny chunks: lines are cut at chunk boundaries, and a field first seen in a later
    # chunk (pyarrow's streaming reader would fail there) becomes a new nullable column.
    monkeypatch.setattr(cli, "_CHUNK_BYTES", 100)
    records = [{**r, "extra": "late"} if r["n"] >= 15 else r for r in RECORDS]
    (tmp_path / "a.ndjson").write_bytes(ndjson(records).rstrip(b"\n"))  # no final newline
    ok(data_dir, "ingest", "a.ndjson", "--stream", "logs", "--batch-rows", "3")
    with arrowlog.open(data_dir) as log:
        got = log.read("logs", 0, 100)
    assert got.column("n").to_pylist() == list(range(20))
    assert got.column("extra").to_pylist() == [None] * 15 + ["late"] * 5


def test_ingest_malformed_file_keeps_earlier_batches(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "_CHUNK_BYTES", 200)
    (tmp_path / "bad.ndjson").write_bytes(ndjson(RECORDS) + b'{"n": oops}\n')
    result = run(data_dir, "ingest", "bad.ndjson", "--stream", "logs", "--batch-rows", "1")
    assert result.exit_code == 1
    # The line counts from the file's start, not from the chunk's.
    assert "Error: cannot read bad.ndjson as ndjson: malformed NDJSON on line 21: " in result.stderr
    stored = count(data_dir, "logs")
    assert 0 < stored < 20
    assert (
        f"ingested {stored} records into logs (offsets 0..{stored - 1}) before the error"
        in result.stderr
    )


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("a.ndjson", '{"n": 1}\n{"n": 1e400}\n', "malformed NDJSON on line 2: field 'n' holds 1e400"),
        ("a.json", '[{"n": 1},\n {"n": 1e400}]', "malformed JSON in record 2: field 'n' holds 1e400"),
        ("a.ndjson", '{"n": 1}\n{"n": 1, "n": 2}\n', "malformed NDJSON on line 2: the key 'n' appears twice"),
        ("a.json", '[{"n": 1}, {"n": 1, "n": 2}]', "malformed JSON in record 2: the key 'n' appears twice"),
        ("a.ndjson", '{"n": 1}\n{"n": 9223372036854775808}\n', "malformed NDJSON on line 2: field 'n' holds 9223372036854775808, an integer outside the int64 range"),
        ("a.json", '[{"n": 1}, {"n": 9223372036854775808}]', "malformed JSON in record 2: field 'n' holds 9223372036854775808, an integer outside the int64 range"),
        ("a.ndjson", '{"n": 1}\n{"n": NaN}\n', "malformed NDJSON on line 2: field 'n' holds NaN, which is not JSON"),
        ("a.json", '[{"n": 1}, {"n": NaN}]', "malformed JSON in record 2: field 'n' holds NaN, which is not JSON"),
        ("a.ndjson", '{"n": 1}\nnull\n', "each NDJSON line must be a JSON object; line 2 is null"),
        ("a.json", '[{"n": 1}, null]', "each record of a JSON array must be a JSON object; record 2 is null"),
    ],
)  # fmt: skip
def test_ingest_applies_the_http_json_policy(
    tmp_path: Path, data_dir: Path, name: str, content: str, error: str
) -> None:
    (tmp_path / name).write_text(content)
    result = run(data_dir, "ingest", name, "--stream", "logs")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: cannot read {name} as {name[2:]}: {error}")
    assert not (data_dir / "streams" / "logs").exists()


def test_ingest_line_numbers_count_across_chunks(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "_CHUNK_BYTES", 100)
    (tmp_path / "a.ndjson").write_bytes(ndjson(RECORDS) + b'{"n": 1, "n": 2}\n')
    result = run(data_dir, "ingest", "a.ndjson", "--stream", "logs")
    assert "malformed NDJSON on line 21: the key 'n' appears twice in one object" in result.stderr


@pytest.mark.parametrize(
    "content",
    [
        b"null\n",
        b"  null",
        b"\xef\xbb\xbfnull\n" + ndjson(RECORDS),
        # Where pyarrow starts its second 1 MiB block: a crash anywhere in the file.
        b'{"n": 1}\n' * 116_504 + b'{"n":1}\n' * 5 + b"null\n" + ndjson(RECORDS),  # null at 1 MiB
    ],
    ids=["null", "indented null", "after a BOM", "at a block boundary"],
)  # fmt: skip
def test_ingest_of_a_null_record_is_refused_not_a_crash(
    tmp_path: Path, data_dir: Path, content: bytes
) -> None:
    # A real process: pyarrow crashed (SIGSEGV) on a block starting with null, which
    # would take pytest down with it in-process.
    (tmp_path / "a.ndjson").write_bytes(content)
    proc = subprocess.run(
        [sys.executable, "-m", "arrowlog", "ingest", "a.ndjson", "--stream", "logs",
         "--data-dir", str(data_dir)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    assert "each NDJSON line must be a JSON object; line " in proc.stderr
    assert " is null" in proc.stderr
    assert not (data_dir / "streams" / "logs").exists()


def test_ingest_rejected_batch_keeps_earlier_files(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "a.ndjson").write_bytes(ndjson(RECORDS))
    (tmp_path / "b.ndjson").write_bytes(ndjson([{"n": "not a number"}]))
    result = run(data_dir, "ingest", "a.ndjson", "b.ndjson", "--stream", "logs")
    assert result.exit_code == 1
    with arrowlog.open(data_dir) as log, pytest.raises(arrowlog.InvalidInput) as e:
        log.append("logs", [{"n": "not a number"}])
    assert result.stderr == (
        f"ingested 20 records into logs (offsets 0..19) before the error\nError: {e.value}\n"
    )
    assert count(data_dir, "logs") == 20


def test_ingest_unknown_extension_is_a_usage_error(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "a.txt").write_bytes(ndjson(RECORDS))
    result = run(data_dir, "ingest", "a.txt", "--stream", "logs")
    assert result.exit_code == 2
    assert "cannot tell the format of a.txt from its extension" in result.stderr
    ok(data_dir, "ingest", "a.txt", "--stream", "logs", "--format", "ndjson")
    assert count(data_dir, "logs") == 20


def test_ingest_bad_stream_name(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "a.ndjson").write_bytes(ndjson(RECORDS))
    result = run(data_dir, "ingest", "a.ndjson", "--stream", "../etc")
    assert result.exit_code == 1
    with pytest.raises(arrowlog.InvalidInput) as e:
        arrowlog.open(data_dir).append("../etc", RECORDS)
    assert result.stderr == f"Error: {e.value}\n"
    assert "invalid stream name '../etc'" in result.stderr


# -- query ----------------------------------------------------------------------------------


@pytest.fixture
def loaded(tmp_path: Path, data_dir: Path) -> Path:
    (tmp_path / "a.ndjson").write_bytes(ndjson(RECORDS))
    ok(data_dir, "ingest", "a.ndjson", "--stream", "logs")
    return data_dir


SQL = "SELECT n, level, ts FROM logs ORDER BY n"


def test_query_table(loaded: Path) -> None:
    lines = ok(loaded, "query", SQL).stdout.splitlines()
    assert lines[0].split() == ["n", "level", "ts"]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split() == ["0", "ERROR", "2026-11-23", "10:00:00+00:00"]
    assert lines[-1] == "(20 rows)"
    assert len(lines) == 2 + 20 + 1


def test_query_table_shows_max_rows_then_counts_the_rest(loaded: Path) -> None:
    lines = ok(loaded, "query", SQL, "--max-rows", "3").stdout.splitlines()
    assert len(lines) == 2 + 3 + 1
    assert lines[-1] == "(17 more rows)"


def test_query_table_cuts_wide_cells(loaded: Path) -> None:
    out = ok(loaded, "query", "SELECT repeat('x', 100) AS wide, NULL AS nothing").stdout
    row = out.splitlines()[2]
    assert row.startswith("x" * 39 + "…")
    assert row.endswith("null")


def test_query_csv(loaded: Path) -> None:
    out = ok(loaded, "query", SQL, "--format", "csv").stdout_bytes
    table = pacsv.read_csv(io.BytesIO(out))
    assert table.column_names == ["n", "level", "ts"]
    assert table.column("n").to_pylist() == list(range(20))


def test_query_json_lines(loaded: Path) -> None:
    rows = [
        json.loads(line)
        for line in ok(loaded, "query", SQL, "--format", "json").stdout.splitlines()
    ]
    assert len(rows) == 20
    assert rows[1] == {"n": 1, "level": "INFO", "ts": "2026-11-23T10:00:01+00:00"}


def test_query_arrow_to_stdout_and_to_a_file(loaded: Path, tmp_path: Path) -> None:
    out = ok(loaded, "query", SQL, "--format", "arrow").stdout_bytes
    table = pa.ipc.open_stream(out).read_all()
    assert table.column_names == ["n", "level", "ts"]
    assert table.column("n").to_pylist() == list(range(20))
    result = ok(loaded, "query", SQL, "--format", "arrow", "--output", str(tmp_path / "r.arrows"))
    assert result.stdout_bytes == b""
    assert pa.ipc.open_stream((tmp_path / "r.arrows").read_bytes()).read_all().equals(table)


def test_query_duckdb_engine(loaded: Path) -> None:
    out = ok(
        loaded, "query", "SELECT count(*) AS n FROM logs", "--engine", "duckdb", "--format", "json"
    )
    assert json.loads(out.stdout) == {"n": 20}


def test_query_unknown_stream(loaded: Path) -> None:
    result = run(loaded, "query", "SELECT * FROM nope")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: stream 'nope' not found")


def test_query_bad_sql_shows_the_engine_message(loaded: Path) -> None:
    result = run(loaded, "query", "SELEKT 1")
    assert result.exit_code == 1
    with arrowlog.open(loaded) as log, pytest.raises(arrowlog.InvalidInput) as e:
        log.sql("SELEKT 1")
    assert result.stderr == f"Error: {e.value}\n"
    assert "SELEKT" in result.stderr


def test_query_bad_sql_leaves_no_output_file(loaded: Path, tmp_path: Path) -> None:
    result = run(loaded, "query", "SELEKT 1", "--output", str(tmp_path / "out.csv"))
    assert result.exit_code == 1
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("engine", ["datafusion", "duckdb"])
@pytest.mark.parametrize(
    "sql", ["DROP TABLE logs", "INSERT INTO logs (n) VALUES (1)", "CREATE TABLE x (a INT)"]
)
def test_query_refuses_ddl_and_dml(loaded: Path, engine: str, sql: str) -> None:
    result = run(loaded, "query", sql, "--engine", engine)
    assert result.exit_code == 1
    assert "read-only" in result.stderr
    assert count(loaded, "logs") == 20


# -- streams, flush, demo -------------------------------------------------------------------


def test_streams_json_and_text(loaded: Path) -> None:
    infos = json.loads(ok(loaded, "streams", "--json").stdout)
    assert [(i["name"], i["rows"], i["first_offset"], i["last_offset"]) for i in infos] == [
        ("logs", 20, 0, 19)
    ]
    assert infos[0]["time_column"] == "ts"
    lines = ok(loaded, "streams").stdout.splitlines()
    assert lines[0].split()[:3] == ["stream", "rows", "offsets"]
    assert lines[2].split()[:3] == ["logs", "20", "0..19"]
    assert "2026-11-23 10:00:00+00:00 .. 2026-11-23 10:00:19+00:00" in lines[2]


def test_streams_empty(data_dir: Path) -> None:
    result = ok(data_dir, "streams", "--json")
    assert json.loads(result.stdout) == []


def test_flush(loaded: Path) -> None:
    assert ok(loaded, "flush", "logs").stdout.startswith("flushed ")
    result = run(loaded, "flush", "nope")
    assert result.exit_code == 1
    assert result.stderr == "Error: stream 'nope' not found\n"


def test_compact(data_dir: Path) -> None:
    for i in range(3):  # three flushes: three small segments of one day
        ok(
            data_dir,
            "ingest",
            "-",
            "--stream",
            "logs",
            input=f'{{"ts": "2026-11-23T10:0{i}:00Z", "n": {i}}}\n'.encode(),
        )
    result = ok(data_dir, "compact")
    assert result.stdout.startswith("compacted logs: 3 segments into 1 in 1 day partitions (3 rows")
    assert ok(data_dir, "compact", "logs").stdout == "logs: nothing to compact\n"
    assert run(data_dir, "compact", "nope").stderr == "Error: stream 'nope' not found\n"


def test_demo_then_every_demo_query_on_both_engines(data_dir: Path) -> None:
    result = ok(data_dir, "demo", "--rows", "20000", "--seed", "3")
    assert result.stdout.startswith("wrote 20000 records into http_logs (offsets 0..19999)")
    for name in DEMO_QUERIES:
        assert f"# {name}" in result.stdout
    for engine, queries in [
        ("datafusion", DEMO_QUERIES),
        ("duckdb", {**DEMO_QUERIES, **DEMO_QUERIES_DUCKDB}),
    ]:
        for name, sql in queries.items():
            out = ok(data_dir, "query", sql, "--engine", engine, "--format", "json").stdout
            rows = [json.loads(line) for line in out.splitlines()]
            assert rows, (engine, name)
            if name == "errors_last_hour":
                assert rows[0]["errors"] > 0
            if name == "per_service_latency":
                assert len(rows) == 8 and all(r["p99_ms"] >= r["avg_ms"] / 10 for r in rows)


def test_verbose_flag_and_python_dash_m(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "arrowlog", "-v", "streams", "--data-dir", str(tmp_path / "d")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "INFO arrowlog.log: opened" in proc.stderr
    assert "no streams in" in proc.stderr
