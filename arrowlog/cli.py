"""The ``arrowlog`` command: a thin shell over the embedded API .

Each command parses its options, builds ``Settings`` once, opens the data directory with
``arrowlog.open(settings=...)`` (or, with ``--server URL``, connects to a running server
with ``arrowlog.connect``: the Client has the same verbs), calls one or two methods and
formats the answer. There is no ingest, query or offset logic here; what the CLI adds is
reading files (NDJSON, JSON arrays, CSV, Parquet, gzip) into Arrow batches and printing
results. ``serve`` hands off to ``arrowlog._serve``, which runs Flight and HTTP.

Two conventions hold for every command:

- every ``ArrowlogError`` becomes a ``click.ClickException`` with the same message (exit
  code 1), in exactly one place: ``_Group.invoke``;
- logging is configured only here (``-v`` INFO, ``-vv`` DEBUG, to stderr); results go to
  stdout, progress bars and messages to stderr, so output can be piped.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import click
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from tqdm import tqdm

import arrowlog
from arrowlog._formats import encode, ndjson_lines
from arrowlog.arrow_input import checked
from arrowlog.config import Settings, settings_help, settings_markdown
from arrowlog.demo import DEMO_QUERIES, DEMO_STREAM, generate_web_logs
from arrowlog.errors import ArrowlogError, InvalidInput
from arrowlog.json_records import parse_json_array, parse_ndjson
from arrowlog.log import Log
from arrowlog.results import AppendResult
from arrowlog.schema import validate_stream_name

if TYPE_CHECKING:
    from arrowlog.client import Client

__all__ = ["main"]

logger = logging.getLogger(__name__)

InputFormat = Literal["ndjson", "json", "csv", "parquet"]
OutputFormat = Literal["table", "csv", "json", "arrow"]

_EXTENSIONS: dict[str, InputFormat] = {
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_CHUNK_BYTES = 4 << 20  # bytes parsed at a time (NDJSON chunks, CSV blocks)
# A chunk is parsed in blocks of this size on all cores: one file, one reader, so the
# cores are otherwise idle (the server parses a body as one block, many bodies at once).
_NDJSON_BLOCK_BYTES = 1 << 20
_CELL_WIDTH = 40  # table format: wider cells are cut with an ellipsis
_REMOTE_BATCH_BYTES = 8 << 20  # ingest --server: bytes per append (one Flight DoPut)
_DEFAULT_DATA_DIR = Path(
    next(default for name, default, _ in settings_help() if name == "data_dir")
)
_DEFAULT_DATA_DIR_TEXT = str(
    _DEFAULT_DATA_DIR if _DEFAULT_DATA_DIR.is_absolute() else f"./{_DEFAULT_DATA_DIR}"
)


class _Group(click.Group):
    """The command group; the one place where arrowlog's errors meet click."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ArrowlogError as e:
            # The message users read is the exception's message, unchanged.
            raise click.ClickException(str(e)) from e


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="Log to stderr: -v for INFO, -vv for DEBUG.")
@click.version_option(arrowlog.__version__, prog_name="arrowlog")
def main(verbose: int) -> None:
    """arrowlog: an Arrow-native analytics log.

    Ingest NDJSON, JSON, CSV or Parquet into streams, query them with SQL, and look
    around with the generated demo data:

        arrowlog demo && arrowlog query "SELECT level, count(*) FROM http_logs GROUP BY level"
    """
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _data_dir_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=f"Data directory. Default: ARROWLOG_DATA_DIR, else arrowlog.toml, else {_DEFAULT_DATA_DIR_TEXT}.",
    )(command)


def _open(data_dir: Path | None) -> Log:
    # Precedence defaults < arrowlog.toml < ARROWLOG_* < flags: Settings.load does it all.
    return arrowlog.open(settings=Settings.load(data_dir=data_dir))


def _server_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option(
        "--token",
        default=None,
        help="The server's bearer token, with --server. Default: ARROWLOG_TOKEN.",
    )(command)
    return click.option(
        "--server",
        metavar="URL",
        default=None,
        help="Work against a running `arrowlog serve` (grpc://HOST:PORT, grpc+tls://...) "
        "instead of opening a data directory.",
    )(command)


@contextlib.contextmanager
def _target(data_dir: Path | None, server: str | None, token: str | None) -> Iterator[Any]:
    """The local Log, or a Client of ``server``: the same verbs, the same result types."""
    if server is None:
        with _open(data_dir) as log:
            yield log
        return
    if data_dir is not None:
        raise click.UsageError("--data-dir and --server exclude each other: pass one")
    with arrowlog.connect(server, token=Settings.load(token=token).token) as client:
        yield client


def _progress(**kwargs: Any) -> tqdm:
    # disable=None: a bar only on a terminal, so piped or logged stderr stays clean.
    return tqdm(file=sys.stderr, disable=None, dynamic_ncols=True, **kwargs)


# -- ingest ---------------------------------------------------------------------------------


@main.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, allow_dash=True)
)
@click.option(
    "--stream", "-s", required=True, help="The stream to append to; created on first write."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "ndjson", "json", "csv", "parquet"]),
    default="auto",
    show_default=True,
    help="Input format; auto goes by extension (.ndjson .jsonl .json .csv .parquet, "
    "optionally .gz). '-' (stdin) is NDJSON unless given.",
)
@click.option(
    "--batch-rows",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Records per append; each append is durable on its own.",
)
@_data_dir_option
@_server_options
def ingest(
    files: tuple[str, ...],
    stream: str,
    fmt: str,
    batch_rows: int,
    data_dir: Path | None,
    server: str | None,
    token: str | None,
) -> None:
    """Append records from files, or stdin, to a stream.

    FILE... are read in order; '-' is stdin. A .json file holding a top-level array is
    read whole; any other JSON is read as NDJSON, one object per line. Each batch is
    acknowledged only once it is durable, so if a file turns out to be malformed half-way,
    the batches before the error stay in the stream (a line before the error says which
    offsets).
    """
    validate_stream_name(stream)
    inputs = [_Input.resolve(f, fmt) for f in files]
    sizes = [i.size for i in inputs]
    total = sum(sizes) if all(size is not None for size in sizes) else None  # type: ignore[arg-type]
    results: list[AppendResult] = []
    records = 0
    with (
        _target(data_dir, server, token) as log,
        _progress(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=stream) as bar,
    ):
        # Half the limit: a chunk is only measured once parsed, so leave it room to land.
        # A server's limit is unknown here: stay well under the default.
        max_bytes = log.settings.max_batch_bytes // 2 if server is None else _REMOTE_BATCH_BYTES
        try:
            for source in inputs:
                base = bar.n  # bytes of the files before this one
                for result, position in _append_all(log, stream, source, batch_rows, max_bytes):
                    results.append(result)
                    records += result.accepted
                    bar.update(base + position - bar.n)
                    bar.set_postfix(records=f"{records:,}", refresh=False)
                if source.size is not None:  # the file's end, even if its tail held no records
                    bar.update(base + source.size - bar.n)
        except (ArrowlogError, click.ClickException):
            if results:  # acknowledged appends stay: say which, then the error
                click.echo(f"{_summary('ingested', stream, results)} before the error", err=True)
            raise
    click.echo(_summary("ingested", stream, results))


def _append_all(
    log: Log | Client, stream: str, source: _Input, batch_rows: int, max_bytes: int
) -> Iterator[tuple[AppendResult, int]]:
    """Append ``source`` batch by batch: (result, bytes of ``source`` read so far) pairs."""
    with contextlib.closing(source.read(batch_rows, max_bytes)) as payloads:
        while True:
            # Only reading is guarded here; Log.append's own errors go to _Group.
            try:
                item = next(payloads, None)
            except (pa.ArrowException, OSError, InvalidInput, UnicodeDecodeError) as e:
                raise click.ClickException(
                    f"cannot read {source.label} as {source.fmt}: {e}"
                ) from e
            if item is None:
                break
            payload, position = item
            yield log.append(stream, payload), position
    logger.info("read %s as %s", source.label, source.fmt)


def _summary(verb: str, stream: str, results: list[AppendResult]) -> str:
    count = sum(r.accepted for r in results)
    noun = "record" if count == 1 else "records"
    if not results:
        return f"{verb} 0 records into {stream}"
    return f"{verb} {count} {noun} into {stream} (offsets {results[0].first_offset}..{results[-1].last_offset})"


@dataclass(frozen=True)
class _Input:
    """One input file (or stdin) and how to read it."""

    label: str
    path: Path | None  # None: stdin
    fmt: InputFormat
    compression: str | None
    size: int | None  # bytes on disk, for the progress bar's total

    @classmethod
    def resolve(cls, name: str, fmt: str) -> _Input:
        if name == "-":
            chosen: InputFormat = "ndjson" if fmt == "auto" else fmt  # type: ignore[assignment]
            if chosen == "parquet":
                raise click.UsageError("Parquet cannot be read from stdin: pass the file name")
            return cls("<stdin>", None, chosen, None, None)
        path = Path(name)
        suffixes = [s.lower() for s in path.suffixes]
        compression = "gzip" if suffixes[-1:] == [".gz"] else None
        ext = (suffixes[-2:-1] if compression else suffixes[-1:]) or [""]
        if fmt == "auto":
            if ext[0] not in _EXTENSIONS:
                raise click.UsageError(
                    f"cannot tell the format of {name} from its extension: "
                    "pass --format ndjson, json, csv or parquet"
                )
            fmt = _EXTENSIONS[ext[0]]
        if fmt == "parquet" and compression:
            raise click.UsageError(f"{name}: Parquet files are compressed inside; gunzip it first")
        return cls(name, path, fmt, compression, path.stat().st_size)  # type: ignore[arg-type]

    def read(self, batch_rows: int, max_bytes: int) -> Iterator[tuple[Any, int]]:
        """(payload for ``Log.append``, input bytes consumed so far) pairs."""
        if self.fmt == "parquet":
            assert self.path is not None
            yield from _read_parquet(self.path, batch_rows, self.size or 0)
            return
        with self._open() as (stream, position):
            if self.fmt == "csv":
                reader = pacsv.open_csv(
                    stream, read_options=pacsv.ReadOptions(block_size=_CHUNK_BYTES)
                )
                tables = ((pa.Table.from_batches([b]), position()) for b in reader)
                yield from _rebatch(tables, batch_rows, max_bytes)
                return
            head = stream.read(_CHUNK_BYTES)
            if self.fmt == "json" and head.lstrip()[:1] == b"[":
                yield from _read_json_array(head + stream.read(), batch_rows, position())
                return
            yield from _rebatch(_read_ndjson(stream, head, position), batch_rows, max_bytes)

    @contextlib.contextmanager
    def _open(self) -> Iterator[tuple[pa.NativeFile, Callable[[], int]]]:
        if self.path is None:
            counter = _CountingReader(click.open_file("-", "rb"))
            raw: pa.NativeFile = pa.PythonFile(counter, mode="r")
            position: Callable[[], int] = lambda: counter.count  # noqa: E731
        else:
            raw = pa.OSFile(str(self.path))
            position = raw.tell  # the compressed position, to match the on-disk size
        try:
            yield (
                (pa.CompressedInputStream(raw, self.compression) if self.compression else raw),
                position,
            )
        finally:
            raw.close()


class _CountingReader(io.RawIOBase):
    """Counts the bytes read from a pipe, which cannot ``tell()``."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


def _read_ndjson(
    stream: pa.NativeFile, head: bytes, position: Callable[[], int]
) -> Iterator[tuple[pa.Table, int]]:
    """Parse NDJSON a few MB at a time, cutting at the last newline of each chunk.

    Each chunk gets its own type inference: pyarrow's streaming reader fixes the schema
    from its first block and fails on a field that appears later, while here such a field
    simply evolves the stream's schema. Chunks are decoded under the HTTP API's JSON
    policy (``parse_ndjson``), with line numbers counted from the file's start.
    """
    rest = b""
    block = head
    line = 1
    while block:
        data = rest + block
        cut = data.rfind(b"\n") + 1
        rest = data[cut:]
        if data[:cut].strip():
            yield _parse_ndjson(memoryview(data)[:cut], line), position()
        line += data.count(b"\n", 0, cut)
        block = stream.read(_CHUNK_BYTES)
    if rest.strip():
        yield _parse_ndjson(rest, line), position()


def _parse_ndjson(data: bytes | memoryview, first_line: int) -> pa.Table:
    return parse_ndjson(data, first_line=first_line, single_block_bytes=_NDJSON_BLOCK_BYTES)


def _read_json_array(data: bytes, batch_rows: int, position: int) -> Iterator[tuple[pa.Table, int]]:
    """A whole JSON array (the caller saw the "["), under the HTTP API's JSON policy."""
    table = parse_json_array(data, empty_ok=True)
    for start in range(0, table.num_rows, batch_rows):
        yield table.slice(start, batch_rows), position


def _read_parquet(path: Path, batch_rows: int, size: int) -> Iterator[tuple[pa.Table, int]]:
    pf = pq.ParquetFile(path)
    total = max(pf.metadata.num_rows, 1)
    done = 0
    for batch in pf.iter_batches(batch_size=batch_rows):
        done += batch.num_rows
        # A corrupt file can decode to arrays that break whatever reads them next.
        yield checked(pa.Table.from_batches([batch]), str(path)), size * done // total


def _rebatch(
    tables: Iterable[tuple[pa.Table, int]], batch_rows: int, max_bytes: int
) -> Iterator[tuple[pa.Table, int]]:
    """Regroup parsed chunks into appends of ``batch_rows`` rows (or ``max_bytes``).

    Chunks are only merged while their schemas are equal: a chunk whose inferred types
    differ is appended on its own, and ``Log.append`` evolves or rejects it.
    """
    pending: list[pa.Table] = []
    rows = size = position = 0
    for table, position in tables:
        if pending and not table.schema.equals(pending[0].schema):
            yield pa.concat_tables(pending), position
            pending, rows, size = [], 0, 0
        start = 0
        while start < table.num_rows:
            piece = table.slice(start, batch_rows - rows)
            start += piece.num_rows
            pending.append(piece)
            rows += piece.num_rows
            size += piece.nbytes
            if rows >= batch_rows or size >= max_bytes:
                yield pa.concat_tables(pending), position
                pending, rows, size = [], 0, 0
    if pending:
        yield pa.concat_tables(pending), position


# -- query ----------------------------------------------------------------------------------


@main.command()
@click.argument("sql")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "arrow"]),
    default="table",
    show_default=True,
    help="table: aligned text; csv; json: one object per line; arrow: an Arrow IPC stream.",
)
@click.option(
    "--engine",
    type=click.Choice(["datafusion", "duckdb", "daft-ray"]),
    default="datafusion",
    show_default=True,
    help="The SQL engine (DuckDB spells a few functions differently); daft-ray runs Daft on "
    "the Ray cluster of ray_address (needs the distributed extra).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the result to this file instead of stdout.",
)
@click.option(
    "--max-rows",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="table format: rows to show; the rest are counted.",
)
@_data_dir_option
@_server_options
def query(
    sql: str,
    fmt: OutputFormat,
    engine: str,
    output: Path | None,
    max_rows: int,
    data_dir: Path | None,
    server: str | None,
    token: str | None,
) -> None:
    """Run a read-only SQL query; every stream is a table of the same name.

    Results stream batch by batch from the engine to the output.
    """
    if fmt == "arrow" and output is None and _isatty(sys.stdout):
        raise click.UsageError(
            "refusing to write binary Arrow to a terminal: use --output FILE or a pipe"
        )
    if server is not None and engine != "datafusion":
        raise click.UsageError(
            f"--engine {engine} needs a local --data-dir: servers run DataFusion"
        )
    with _target(data_dir, server, token) as log:
        # Planned before the output is opened: a bad query leaves no empty file behind.
        result = log.sql(sql) if server else log.sql(sql, engine=engine)
        with _sink(output) as sink:
            _write(result, fmt, sink, max_rows)


def _write(result: arrowlog.QueryResult, fmt: OutputFormat, sink: IO[bytes], max_rows: int) -> None:
    if fmt == "table":
        _write_table(result, sink, max_rows)
        return
    # --format json is one object per line: the HTTP API's application/x-ndjson.
    for chunk in encode("ndjson" if fmt == "json" else fmt, result.schema, result):
        sink.write(chunk)


def _sink(output: Path | None) -> IO[bytes]:
    # atomic: a file appears only once the whole result is written, never half of one.
    return click.open_file("-" if output is None else str(output), "wb", atomic=output is not None)


def _isatty(stream: IO[Any]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _write_table(result: arrowlog.QueryResult, sink: IO[bytes], max_rows: int) -> None:
    """An aligned text table of the first ``max_rows`` rows; the rest are only counted."""
    shown: list[pa.RecordBatch] = []
    kept = total = 0
    for batch in result:
        total += batch.num_rows
        if kept < max_rows:
            piece = batch.slice(0, max_rows - kept)
            shown.append(piece)
            kept += piece.num_rows
    table = pa.Table.from_batches(shown, schema=result.schema)
    lines = _render(table)
    if total > kept:
        lines.append(f"({total - kept} more rows)")
    else:
        lines.append(f"({total} row{'' if total == 1 else 's'})")
    sink.write(("\n".join(lines) + "\n").encode())


def _render(table: pa.Table, cell_width: int | None = _CELL_WIDTH) -> list[str]:
    """Header, dashes, then one line per row; numbers right-aligned, wide cells cut."""
    columns: list[list[str]] = []
    right: list[bool] = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        cells = [_cut(c, cell_width) for c in [name, *map(_cell, column.to_pylist())]]
        columns.append(cells)
        t = column.type
        right.append(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))
    widths = [max(len(c) for c in cells) for cells in columns]
    rows = []
    for i in range(table.num_rows + 1):
        cells = [
            col[i].rjust(w) if r and i else col[i].ljust(w)
            for col, w, r in zip(columns, widths, right, strict=True)
        ]
        rows.append("  ".join(cells).rstrip())
    rows.insert(1, "  ".join("-" * w for w in widths))
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        if math.isfinite(value) and value != 0 and 1e-4 <= abs(value) < 1e15:
            return f"{value:.4f}".rstrip("0").rstrip(".")
        return repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, str):
        return value.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return str(value)


def _cut(text: str, width: int | None) -> str:
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


# -- streams, flush -------------------------------------------------------------------------


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the streams as a JSON array.")
@_data_dir_option
@_server_options
def streams(as_json: bool, data_dir: Path | None, server: str | None, token: str | None) -> None:
    """List the streams: rows, offsets, segments, bytes and time range."""
    with _target(data_dir, server, token) as log:
        infos = [i.to_dict() for i in log.streams()]
        if as_json:
            click.echo(json.dumps(infos, indent=2))
            return
        if not infos:
            click.echo(f"no streams in {server or log.path}", err=True)
            return
        table = pa.table(
            {
                "stream": [i["name"] for i in infos],
                "rows": [i["rows"] for i in infos],
                "offsets": [_offsets(i) for i in infos],
                "segments": [i["segments"] for i in infos],
                "bytes": [i["bytes"] for i in infos],
                "buffered": [i["buffered_rows"] for i in infos],
                "time range": [_time_range(i) for i in infos],
            }
        )
        click.echo("\n".join(_render(table, cell_width=None)))


def _offsets(info: dict[str, Any]) -> str:
    return "-" if info["first_offset"] is None else f"{info['first_offset']}..{info['last_offset']}"


def _time_range(info: dict[str, Any]) -> str:
    if info["min_time"] is None or info["max_time"] is None:
        return "-"
    return f"{info['min_time'].replace('T', ' ')} .. {info['max_time'].replace('T', ' ')}"


# -- tail -----------------------------------------------------------------------------------


@main.command()
@click.argument("stream")
@click.option(
    "--from-offset",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="The first offset to print.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Exit after printing this many records (default: follow until Ctrl-C).",
)
@_data_dir_option
@_server_options
def tail(
    stream: str,
    from_offset: int,
    limit: int | None,
    data_dir: Path | None,
    server: str | None,
    token: str | None,
) -> None:
    """Print a stream's records from an offset on, then new ones as they are acknowledged.

    One JSON object per line (system columns included), flushed as records arrive, until
    Ctrl-C (or SIGTERM, or --limit). A local --data-dir must not be open in another
    process: to follow a running server, use --server.
    """
    validate_stream_name(stream)
    stop = threading.Event()
    out = _sink(None)
    failures: list[BaseException] = []

    def follow(source: Log | Client) -> None:
        printed = 0
        try:
            for table in source.tail(stream, from_offset, stop=stop):
                if limit is not None:
                    table = table.slice(0, limit - printed)
                for batch in table.to_batches():
                    out.write(ndjson_lines(batch))
                out.flush()
                printed += table.num_rows
                if limit is not None and printed >= limit:
                    break
        except BaseException as e:  # handed to the main thread, which reports it
            failures.append(e)
        finally:
            stop.set()

    with _until_signalled(stop), _target(data_dir, server, token) as source:
        # The tail runs in a thread: a remote tail blocks in a Flight read, where the main
        # thread could not run the signal handler that stops it.
        follower = threading.Thread(target=follow, args=(source,), name="arrowlog-tail")
        follower.start()
        stop.wait()
        follower.join()
    if failures:
        raise failures[0]


@contextlib.contextmanager
def _until_signalled(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT/SIGTERM (instead of raising), so a tail ends cleanly."""
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@main.command()
@click.argument("stream", required=False)
@_data_dir_option
def flush(stream: str | None, data_dir: Path | None) -> None:
    """Write buffered records to Parquet segments now (all streams, or STREAM)."""
    with _open(data_dir) as log:
        names = [stream] if stream is not None else [i.name for i in log.streams()]
        if not names:
            click.echo(f"no streams in {log.path}", err=True)
        buffered = {name: log.describe(name).buffered_rows for name in names}
        log.flush(stream)
        for name in names:
            click.echo(f"flushed {buffered[name]} buffered rows of {name}")


@main.command()
@click.argument("stream", required=False)
@_data_dir_option
@_server_options
def compact(
    stream: str | None, data_dir: Path | None, server: str | None, token: str | None
) -> None:
    """Merge small segments now (all streams, or STREAM): one Delta commit per day partition."""
    with _target(data_dir, server, token) as log:
        results = log.compact(stream)
        for r in results:
            if r.partitions:
                click.echo(
                    f"compacted {r.stream}: {r.files_removed} segments into {r.files_added} "
                    f"in {r.partitions} day partitions ({r.rows} rows, {r.seconds:.2f} s)"
                )
            else:
                click.echo(f"{r.stream}: nothing to compact")


# -- serve, settings -------------------------------------------------------------------------


@main.command()
@_data_dir_option
@click.option(
    "--storage",
    metavar="URL",
    default=None,
    help="Keep the streams' tables on S3 (s3://bucket/prefix); endpoint, region and "
    "credentials come from ARROWLOG_S3_* or the AWS_* variables. The WAL stays in --data-dir.",
)
@click.option(
    "--node-id",
    default=None,
    help="Join a cluster of nodes sharing --storage under this (unique) name.",
)
@click.option(
    "--shards",
    "--partitions",
    "shards",
    type=click.IntRange(1, 1024),
    default=None,
    help="Shards of streams this node creates (--partitions: its former name). Default: 1.",
)
@click.option("--host", default=None, help="Interface to listen on. Default: 127.0.0.1.")
@click.option(
    "--flight-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Flight / Flight SQL port; 0 picks a free one. Default: 8815.",
)
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="HTTP API port; 0 picks a free one. Default: 8080.",
)
@click.option(
    "--token",
    default=None,
    help="Require this bearer token on both servers. Prefer ARROWLOG_TOKEN: flags show in "
    "process lists.",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM certificate: serve grpc+tls:// and https://. Needs --tls-key.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM private key of --tls-cert.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Settings file (TOML). Default: ./arrowlog.toml if it exists.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    data_dir: Path | None,
    storage: str | None,
    node_id: str | None,
    shards: int | None,
    host: str | None,
    flight_port: int | None,
    http_port: int | None,
    token: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    config_file: Path | None,
) -> None:
    """Serve a data directory over Arrow Flight (SQL) and HTTP, in one process.

    Both servers share one open log and one token. Prints "flight listening on URL" and
    "http listening on URL" once both accept connections. On SIGTERM or SIGINT it stops
    accepting, lets in-flight requests finish, flushes every buffer and exits 0.
    """
    from arrowlog._serve import run  # uvicorn and Flight load only for this command

    settings = Settings.load(
        toml_path=config_file,
        data_dir=data_dir,
        storage=storage,
        node_id=node_id,
        shards=shards,
        host=host,
        flight_port=flight_port,
        http_port=http_port,
        token=token,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )

    def ready(server: Any) -> None:
        click.echo(f"flight listening on {server.flight_url}")
        click.echo(f"http listening on {server.http_url}")

    verbose = ctx.find_root().params.get("verbose", 0)
    run(settings, ready=ready, access_log=verbose >= 1)


@main.command("settings")
@click.option(
    "--markdown", is_flag=True, help="Print the README's settings table (defaults), nothing else."
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Settings file (TOML). Default: ./arrowlog.toml if it exists.",
)
def settings_command(markdown: bool, config_file: Path | None) -> None:
    """Show every setting: its value here (defaults < arrowlog.toml < ARROWLOG_*) and help."""
    if markdown:
        click.echo(settings_markdown(), nl=False)
        return
    current = Settings.load(toml_path=config_file)
    for name, default, help in settings_help():
        value = getattr(current, name)
        shown = "<set>" if name == "token" and value else value
        origin = "" if value == default else "   (changed)"
        click.echo(f"{name} = {shown}{origin}\n    {help}")


# -- demo -----------------------------------------------------------------------------------


@main.command()
@click.option(
    "--rows",
    type=click.IntRange(min=1),
    default=1_000_000,
    show_default=True,
    help="Records to write.",
)
@click.option(
    "--stream", default=DEMO_STREAM, show_default=True, help="The stream to write them to."
)
@click.option(
    "--seed",
    type=int,
    default=42,
    show_default=True,
    help="Same seed, same records (but new times).",
)
@_data_dir_option
def demo(rows: int, stream: str, seed: int, data_dir: Path | None) -> None:
    """Write generated web-service logs (the last 24 hours) and show queries to try."""
    validate_stream_name(stream)
    results: list[AppendResult] = []
    with (
        _open(data_dir) as log,
        _progress(total=rows, unit=" rows", unit_scale=True, desc=stream) as bar,
    ):
        for table in generate_web_logs(rows, seed=seed):
            results.append(log.append(stream, table))
            bar.update(table.num_rows)
    click.echo(_summary("wrote", stream, results))
    click.echo("\nTry:")
    data = "" if data_dir is None else f" --data-dir {shlex.quote(str(data_dir))}"
    for name, sql in DEMO_QUERIES.items():
        if stream != DEMO_STREAM:
            sql = sql.replace(DEMO_STREAM, stream)
        click.echo(f'  # {name}\n  arrowlog query{data} "{sql}"')
    click.echo("\nAdd --engine duckdb to run one on DuckDB: the same SQL works on both engines.")
