"""Big queries on an existing distributed engine: Daft SQL on a Ray cluster.

Every stream is a Delta Lake table (``<storage>/streams/<stream>/``), so any engine that
reads Delta can query it where it lies. ``daft_sql`` hands the SQL to Daft with its Ray
runner: the scan, filter and aggregation run as Ray tasks next to the data, and the result
comes back as one Arrow table.

    from arrowlog.distributed import daft_sql
    daft_sql(
        "SELECT level, count(*) AS n FROM http_logs GROUP BY level",
        {"http_logs": "s3://bucket/prefix/streams/http_logs"},
        storage_options={"AWS_ENDPOINT_URL": "http://127.0.0.1:8333", ...},
        address="127.0.0.2:6379",
    )

What Daft sees: what is committed to the Delta log (flushed segments), read at the latest
version or at a pinned one (``DeltaSource.version``). Records still in a Log's buffer are
not in the table; an embedded caller can pass them as ``DeltaSource.buffer``, an Arrow
table unioned by column name with the Delta rows (pin ``version`` to the catalog version
the buffer was taken with, or rows flushed in between are seen twice or not at all).

Ray: ``address`` (``host:port`` of a ``ray start --head`` node, or ``"auto"``), else the
``ARROWLOG_RAY_ADDRESS`` environment variable, else a Ray started in this process on node
IP 127.0.0.2 (``start_local_ray``) and stopped by ``shutdown_ray`` (or at exit). On one
machine Ray must be given a loopback address other than 127.0.0.1: it replaces 127.0.0.1
with the host's outward IP, which a loopback-bound head then does not answer on. Ray 2.60
turns on token authentication for the clusters it starts (``~/.ray/auth_token``); when
connecting to an explicit address, that token is used if it exists (what Ray itself does
only for ``address="auto"``). A Daft process is tied to the first Ray runner it gets:
``shutdown_ray`` resets it so the next query can start again.

Dialect: Daft's SQL is not DataFusion's. With ``dialect="arrowlog"`` (the default) the few
spellings arrowlog's own queries use are rewritten: ``quantile_cont(x, p)`` and
``approx_percentile_cont(x, p)`` become Daft's exact ``percentile(x, p)`` (linear
interpolation, as ``quantile_cont``), and a ``TIMESTAMP '...'`` literal without a zone is
read as UTC (Daft refuses to compare a zoneless literal with a UTC column; DataFusion reads
it as UTC). Parameters (``?``, ``$1``, ``$name``) are bound as SQL literals.

Read-only, as every arrowlog query interface: one SELECT (or WITH) statement; Daft's table
functions and file/URL functions (``read_parquet``, ``url_download``, ``FROM 'path'``, ...)
are refused with ``ReadOnlyQuery`` (``arrowlog/sql/policy.py``). A Ray cluster runs any code its clients send, so this
guards the SQL surface, not the cluster: reach Ray only from trusted machines.

Results are plain Arrow: ``large_string``/``large_binary`` become ``string``/``binary`` and
Daft's unsigned counts ``int64``, as the DataFusion engine returns them.

Daft and Ray are an optional extra: ``pip install 'arrowlog[distributed]'``.
"""

from __future__ import annotations

import atexit
import datetime as dt
import decimal
import logging
import math
import numbers
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from arrowlog.errors import (
    ArrowlogError,
    InvalidInput,
    ReadOnlyQuery,
    StorageError,
    StreamNotFound,
    Unavailable,
)
from arrowlog.sql.policy import bind_literals, check_select_only, sql_string, tokens

__all__ = [
    "EXTRA_HINT",
    "LOCAL_NODE_IP",
    "RAY_ADDRESS_ENV",
    "DeltaSource",
    "bind_params",
    "connect_ray",
    "daft_sql",
    "s3_io_config",
    "shutdown_ray",
    "start_local_ray",
    "to_daft_dialect",
]

logger = logging.getLogger(__name__)

EXTRA_HINT = "pip install 'arrowlog[distributed]'"
RAY_ADDRESS_ENV = "ARROWLOG_RAY_ADDRESS"
LOCAL_NODE_IP = "127.0.0.2"
# Quiet and private by default (a user's own setting wins): no progress bars printed by
# the Ray actors, no usage telemetry from Daft or Ray.
_QUIET_ENV = {
    "DAFT_PROGRESS_BAR": "0",
    "DAFT_ANALYTICS_ENABLED": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
}

_lock = threading.RLock()
_started_here = False  # this process started the Ray it is connected to


@dataclass(frozen=True)
class DeltaSource:
    """One table for ``daft_sql``: a Delta table URI, optionally pinned and with extra rows.

    ``version`` pins the Delta version read (None: the latest). ``buffer`` is an Arrow table
    unioned by column name with the table's rows (a Log's unflushed records); columns
    missing on either side are NULL there.
    """

    uri: str
    version: int | None = None
    buffer: pa.Table | None = None


# -- imports -----------------------------------------------------------------------------------


def _modules() -> tuple[Any, Any]:
    """``(daft, ray)``, or Unavailable naming the extra to install."""
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    try:
        import daft
        import ray
    except ImportError as e:
        raise Unavailable(
            f"the daft-ray engine needs Daft and Ray, which are not installed ({e}): {EXTRA_HINT}"
        ) from e
    return daft, ray


# -- Ray ---------------------------------------------------------------------------------------


def start_local_ray(
    *,
    num_cpus: int | None = None,
    object_store_memory: int | None = 1 << 30,
    node_ip: str = LOCAL_NODE_IP,
) -> str:
    """Start a Ray head in this process on ``node_ip`` and return its address (host:port).

    The object store defaults to 1 GiB (Ray's default is 30% of RAM); ``num_cpus`` to
    every CPU. ``shutdown_ray`` (or the end of the process) stops it.
    """
    global _started_here
    _, ray = _modules()
    with _lock:
        if ray.is_initialized():
            return _current_address(ray)
        try:
            ctx = ray.init(
                address="local",  # a new cluster, never one found in /tmp/ray
                num_cpus=num_cpus,
                object_store_memory=object_store_memory,
                include_dashboard=False,
                log_to_driver=False,
                _node_ip_address=node_ip,
                runtime_env={"env_vars": _worker_env()},
            )
        except Exception as e:  # Ray raises RuntimeError, ConnectionError, ValueError...
            raise Unavailable(f"could not start a local Ray on {node_ip}: {e}") from e
        _started_here = True
        atexit.register(shutdown_ray)
        address = ctx.address_info.get("gcs_address") or _current_address(ray)
        logger.info("started a local Ray at %s", address)
        return address


def connect_ray(address: str | None = None) -> str:
    """Connect this process to Ray and make it Daft's runner; return the cluster address.

    ``address``, else ``$ARROWLOG_RAY_ADDRESS``, else ``$RAY_ADDRESS``, else a local Ray
    (``start_local_ray``). Already connected: the current connection is kept, and an
    explicit different address is an error (a process talks to one Ray cluster).
    """
    daft, ray = _modules()
    wanted = address or os.environ.get(RAY_ADDRESS_ENV) or os.environ.get("RAY_ADDRESS")
    with _lock:
        if ray.is_initialized():
            current = _current_address(ray)
            if wanted and wanted != "auto" and not _same_address(wanted, current):
                raise InvalidInput(
                    f"this process is already connected to the Ray cluster at {current}; "
                    f"it cannot also use {wanted} (call shutdown_ray() first)"
                )
        elif wanted:
            _use_token_if_available(wanted)
            try:
                ray.init(
                    address=wanted,
                    log_to_driver=False,
                    runtime_env={"env_vars": _worker_env()},
                )
            except Exception as e:
                raise Unavailable(
                    f"could not connect to the Ray cluster at {wanted}: {e} "
                    f"(start one with `ray start --head --node-ip-address={LOCAL_NODE_IP}`)"
                ) from e
            logger.info("connected to Ray at %s", wanted)
        else:
            start_local_ray()
        try:
            daft.set_runner_ray(noop_if_initialized=True)
        except Exception as e:  # Daft's runner is fixed for the process once used
            raise Unavailable(
                f"Daft in this process already runs on another runner ({e}); "
                "use the daft-ray engine from a fresh process"
            ) from e
        return _current_address(ray)


def shutdown_ray() -> None:
    """Disconnect from Ray; a Ray this process started (``start_local_ray``) stops with it.

    Also forgets Daft's Ray-side scheduler, so a later ``daft_sql`` can connect again.
    A cluster started with ``ray start`` keeps running (stop it with ``ray stop``).
    """
    global _started_here
    try:
        import ray
    except ImportError:
        return
    with _lock:
        if not ray.is_initialized():
            return
        ray.shutdown()
        if _started_here:
            logger.info("stopped the local Ray")
        _started_here = False
        _forget_daft_scheduler()


def _forget_daft_scheduler() -> None:
    # Daft's Ray runner keeps a handle on a scheduler actor of the cluster it first used;
    # after a shutdown that actor is gone, and the next query would fail on it.
    try:
        from daft.runners import _get_runner

        runner = _get_runner()
    except Exception:
        return
    if runner is not None and hasattr(runner, "flotilla_plan_runner"):
        runner.flotilla_plan_runner = None


def _worker_env() -> dict[str, str]:
    return {key: os.environ.get(key, value) for key, value in _QUIET_ENV.items()}


def _current_address(ray: Any) -> str:
    try:
        return ray.get_runtime_context().gcs_address
    except Exception:
        return "unknown"


def _same_address(a: str, b: str) -> bool:
    return a.removeprefix("ray://") == b.removeprefix("ray://")


def _use_token_if_available(address: str) -> None:
    """Send the cluster token when one is on this machine and no auth mode was chosen.

    Ray 2.60's ``ray start`` and ``ray.init()`` enable token authentication once a token
    exists (``~/.ray/auth_token``), but a client given an explicit address does not send it.
    """
    if "RAY_AUTH_MODE" in os.environ or address.startswith("ray://"):
        return
    token_path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or Path(token_path).exists():
        os.environ["RAY_AUTH_MODE"] = "token"
        try:  # refresh Ray's cached config, as Ray's own auto-enable does
            from ray._raylet import Config

            Config.initialize("")
        except Exception:
            pass


# -- storage -----------------------------------------------------------------------------------


def s3_io_config(storage_options: Mapping[str, str] | None) -> Any:
    """A Daft ``IOConfig`` from deltalake-style ``storage_options`` (``AWS_*`` keys).

    Path-style addressing (``force_virtual_addressing=False``), as S3-compatible servers
    such as SeaweedFS and MinIO need; plain HTTP when ``AWS_ALLOW_HTTP`` is true or the
    endpoint is ``http://``. None when there are no options (local tables).
    """
    if not storage_options:
        return None
    daft, _ = _modules()
    opts = {k.upper(): str(v) for k, v in storage_options.items() if v is not None}
    endpoint = (
        opts.get("AWS_ENDPOINT_URL_S3") or opts.get("AWS_ENDPOINT_URL") or opts.get("ENDPOINT")
    )
    allow_http = opts.get("AWS_ALLOW_HTTP", "").lower() in ("1", "true", "yes")
    use_ssl = not (allow_http or (endpoint or "").startswith("http://"))
    s3 = daft.io.S3Config(
        region_name=opts.get("AWS_REGION") or opts.get("AWS_DEFAULT_REGION") or "us-east-1",
        endpoint_url=endpoint,
        key_id=opts.get("AWS_ACCESS_KEY_ID"),
        access_key=opts.get("AWS_SECRET_ACCESS_KEY"),
        session_token=opts.get("AWS_SESSION_TOKEN"),
        use_ssl=use_ssl,
        force_virtual_addressing=False,
        num_tries=5,  # Daft's default (25, with backoff) hides a wrong endpoint for minutes
    )
    return daft.io.IOConfig(s3=s3)


# -- the query ---------------------------------------------------------------------------------


def daft_sql(
    query: str,
    tables: Mapping[str, str | DeltaSource],
    *,
    storage_options: Mapping[str, str] | None = None,
    address: str | None = None,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
    dialect: str = "arrowlog",
) -> pa.Table:
    """Run one read-only SQL query with Daft on Ray over Delta tables; return Arrow.

    Args:
        query: one SELECT; each key of ``tables`` is a table of that name.
        tables: table name → Delta table URI (local path or ``s3://``) or ``DeltaSource``.
            Only the tables the query names are opened.
        storage_options: deltalake-style ``AWS_*`` options for ``s3://`` tables.
        address: the Ray cluster (see ``connect_ray``); None: the environment or a local Ray.
        params: values for ``?``/``$1`` (a sequence) or ``$name`` (a mapping) placeholders.
        dialect: ``"arrowlog"`` rewrites DataFusion spellings (see the module doc); ``"daft"``
            passes the SQL unchanged.

    Raises:
        ReadOnlyQuery: not a single SELECT, or it would read or write files or URLs.
        StreamNotFound: the query names a table that is not in ``tables``.
        InvalidInput: Daft cannot parse, plan or run the query (Daft's message).
        StorageError: a table could not be read.
        Unavailable: Daft/Ray are not installed, or Ray could not be reached.

    Example: ``daft_sql("SELECT count(*) AS n FROM t", {"t": "/data/streams/t"})``
    """
    if dialect not in ("arrowlog", "daft"):
        raise InvalidInput(f"unknown dialect {dialect!r}: use 'arrowlog' or 'daft'")
    if params is not None:
        query = bind_params(query, params)
    if dialect == "arrowlog":
        query = to_daft_dialect(query)
    check_select_only(query)
    daft, _ = _modules()
    wanted = _referenced(query, tables)
    connect_ray(address)
    io_config = s3_io_config(storage_options)
    frames = {name: _frame(daft, name, tables[name], io_config) for name in wanted}
    try:
        df = daft.sql(query, register_globals=False, **frames)
        _check_plan(df)
        table = df.to_arrow()
    except ArrowlogError:
        raise
    except BaseException as e:  # Daft's Rust panics are BaseExceptions (pyo3 PanicException)
        if isinstance(e, KeyboardInterrupt | SystemExit | GeneratorExit):
            raise
        raise _translate(e) from e
    return _plain(table)


def _frame(daft: Any, name: str, source: str | DeltaSource, io_config: Any) -> Any:
    source = DeltaSource(source) if isinstance(source, str) else source
    try:
        df = daft.read_deltalake(source.uri, version=source.version, io_config=io_config)
    except Exception as e:
        raise StorageError(
            f"could not open the Delta table of {name!r} at {source.uri}: {e}"
        ) from e
    # As the other engines show a stream: the ``day`` partition column is storage layout.
    partitions = [c for c in df.column_names if c == "day"]
    if partitions:
        df = df.exclude(*partitions)
    if source.buffer is not None and source.buffer.num_rows:
        df = _union_buffer(daft, df, source.buffer)
    return df


def _union_buffer(daft: Any, df: Any, buffer: pa.Table) -> Any:
    table_schema = df.schema().to_pyarrow_schema()
    names = list(table_schema.names) + [
        n for n in buffer.column_names if n not in table_schema.names
    ]
    columns = []
    for field in table_schema:
        if field.name in buffer.column_names:
            columns.append(buffer.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(buffer.num_rows, field.type))
    extra = [buffer.schema.field(n) for n in names[len(table_schema) :]]
    columns += [buffer.column(f.name) for f in extra]
    buf_df = daft.from_arrow(pa.Table.from_arrays(columns, names=names))
    for f in extra:  # a column added since the last flush: NULL in the flushed rows
        dtype = buf_df.schema()[f.name].dtype
        df = df.with_column(f.name, daft.lit(None).cast(dtype))
    return df.concat(buf_df.select(*[daft.col(n) for n in df.column_names]))


# -- SQL text (the tokenizer, binder and read-only check are arrowlog/sql/policy.py's) ---------


def bind_params(query: str, params: Sequence[Any] | Mapping[str, Any]) -> str:
    """Replace ``?`` / ``$1`` (sequence) or ``$name`` (mapping) placeholders with SQL literals.

    Daft's SQL has no bound parameters; values are rendered as literals (strings quoted
    and escaped, datetimes as UTC ``TIMESTAMP`` literals), never spliced as SQL text.
    """
    return bind_literals(query, params, _literal)


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise InvalidInput(f"parameter value {value!r} has no SQL literal")
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise InvalidInput(f"parameter value {value!r} has no SQL literal")
        return repr(float(value))
    if isinstance(value, str):
        return sql_string(value)
    if isinstance(value, dt.datetime):
        return _timestamp_literal(value)
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    raise InvalidInput(f"parameters of type {type(value).__name__} are not supported by daft-ray")


_RENAMES = {"quantile_cont": "percentile", "approx_percentile_cont": "percentile"}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _timestamp_literal(value: dt.datetime) -> str:
    """A UTC timestamp[us] Daft accepts (its TIMESTAMP literal needs a zone and no fraction)."""
    value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
    micros = (value - _EPOCH) // dt.timedelta(microseconds=1)
    return f"replace_time_zone(timestamp_micros({micros}), 'UTC')"


def to_daft_dialect(query: str) -> str:
    """Rewrite the DataFusion spellings arrowlog queries use into Daft's (see module doc)."""
    toks = list(tokens(query))
    out: list[str] = []
    skip_to = -1
    for i, (kind, text) in enumerate(toks):
        if i <= skip_to:
            continue
        if kind == "word" and text.lower() in _RENAMES and _next_significant(toks, i) == "(":
            out.append(_RENAMES[text.lower()])
        elif kind == "word" and text.lower() == "timestamp":
            j = next(
                (k for k in range(i + 1, len(toks)) if toks[k][0] not in ("ws", "comment")),
                None,
            )
            stamp = _parse_timestamp(toks[j][1]) if j is not None and toks[j][0] == "str" else None
            if stamp is None:
                out.append(text)
            else:
                out.append(_timestamp_literal(stamp))
                skip_to = j  # type: ignore[assignment]
        else:
            out.append(text)
    return "".join(out)


def _parse_timestamp(literal: str) -> dt.datetime | None:
    body = literal[1:-1].strip()
    if body.upper().endswith(" UTC"):
        body = body[:-4]
    try:
        return dt.datetime.fromisoformat(body)
    except ValueError:
        return None  # left to Daft, whose message names the literal


def _next_significant(toks: list[tuple[str, str]], i: int) -> str | None:
    for kind, text in toks[i + 1 :]:
        if kind not in ("ws", "comment"):
            return text
    return None


_SOURCE_NODE = re.compile(
    r"^[| ]*\* (?P<node>(?:\w*ScanOperator|\w*Source\b|DataSource:)[^\n]*)", re.M
)


def _check_plan(df: Any) -> None:
    """Backstop for the lexical check: the plan must scan only Delta tables and memory."""
    try:
        plan = df._builder.pretty_print()
    except Exception:
        return  # a Daft without this private helper: the lexical check stands alone
    for m in _SOURCE_NODE.finditer(plan):
        node = m.group("node").strip()
        if not node.startswith("DataSource: DeltaLakeDataSource") and node != "Source:":
            raise ReadOnlyQuery(
                f"the query reads something other than the stream tables ({node}); "
                "arrowlog is read-only through SQL"
            )


def _referenced(query: str, tables: Mapping[str, Any]) -> list[str]:
    """The names of ``tables`` that appear as identifiers in the query (case-insensitively).

    A column that shares a stream's name registers that table too, which costs only the
    Delta log read. A name that is not a table is left to Daft ("Table not found").
    """
    by_lower = {name.lower(): name for name in tables}
    found: dict[str, None] = {}
    for kind, text in tokens(query):
        if kind == "word":
            ident = text
        elif kind == "qid":
            ident = text[1:-1].replace('""', '"')
        else:
            continue
        name = by_lower.get(ident.lower())
        if name is not None:
            found[name] = None
    return list(found)


# -- results and errors ------------------------------------------------------------------------


def _plain_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_uint64(t) or pa.types.is_uint32(t):
        return pa.int64()
    if pa.types.is_large_list(t) or pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_plain_type(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct(
            [t.field(i).with_type(_plain_type(t.field(i).type)) for i in range(t.num_fields)]
        )
    return t


def _plain(table: pa.Table) -> pa.Table:
    schema = pa.schema([f.with_type(_plain_type(f.type)) for f in table.schema])
    if schema.equals(table.schema):
        return table
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return table  # an unsigned value past int64, say: keep Daft's types


_TABLE_NOT_FOUND = re.compile(r"Table not found: (\S+)")


def _translate(e: BaseException) -> ArrowlogError:
    cause = getattr(e, "cause", None)  # a RayTaskError wraps the task's own exception
    if isinstance(cause, BaseException) and type(e).__name__.startswith("RayTaskError"):
        e = cause
    message = str(e).strip() or type(e).__name__
    module = type(e).__module__ or ""
    if m := _TABLE_NOT_FOUND.search(message):
        return StreamNotFound(f"stream {m.group(1)!r} not found ({message})")
    if isinstance(e, OSError) or "IOError" in message or "ObjectStore" in message:
        return StorageError(f"Daft could not read the tables: {message}")
    if module.startswith("ray"):
        return Unavailable(f"the Ray cluster failed the query: {message}")
    if type(e).__name__ == "PanicException":
        return InvalidInput(f"Daft cannot run this query: {message.splitlines()[0]}")
    return InvalidInput(message)
