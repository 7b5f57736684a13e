"""Settings: declared once, built once at the edge, passed down as an argument.

Every setting is one ``field`` with a default and a help string; the CLI's ``--help``,
the README's settings table and ``tests/unit/test_config.py`` all read the same list, so
they cannot drift. Precedence: defaults < ``arrowlog.toml`` < ``ARROWLOG_*`` env vars <
explicit keyword arguments (CLI flags). Nothing below this module reads ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arrowlog.errors import InvalidInput

__all__ = ["ENV_PREFIX", "Settings", "settings_help", "settings_markdown"]

ENV_PREFIX = "ARROWLOG_"


def _setting(
    default: Any,
    help: str,
    *,
    zero_ok: bool = False,
    maximum: int | None = None,
    kind: type | None = None,
    secret: bool = False,
) -> Any:
    """One setting: its default, help, and how values from TOML, env vars and flags convert.

    ``kind`` is the type values convert to; it is needed only when the default is None
    (an optional setting), otherwise it is the default's type. A ``secret`` is left out of
    ``repr(settings)``, so logging the settings never logs it.
    """
    if kind is None:
        if default is None:
            raise TypeError("an optional setting (default None) needs its kind")
        kind = type(default)
    return field(
        default=default,
        repr=not secret,
        metadata={"help": help, "zero_ok": zero_ok, "maximum": maximum, "kind": kind},
    )


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every knob of arrowlog, with its default. Build with ``Settings.load()``."""

    data_dir: Path = _setting(
        Path("./data"), "Directory holding the WAL and the streams' Delta tables."
    )
    storage: str | None = _setting(
        None,
        "Where the streams' Delta tables live: unset keeps them in data_dir/streams; "
        "s3://bucket/prefix puts them on S3 (the WAL stays in data_dir).",
        kind=str,
    )
    s3_endpoint: str | None = _setting(
        None,
        "S3 endpoint URL for an S3-compatible store (e.g. http://127.0.0.1:8333); "
        "falls back to AWS_ENDPOINT_URL.",
        kind=str,
    )
    s3_region: str = _setting(
        "us-east-1", "S3 region; falls back to AWS_REGION / AWS_DEFAULT_REGION."
    )
    s3_access_key_id: str | None = _setting(
        None, "S3 access key; falls back to AWS_ACCESS_KEY_ID.", kind=str
    )
    s3_secret_access_key: str | None = _setting(
        None, "S3 secret key; falls back to AWS_SECRET_ACCESS_KEY.", kind=str, secret=True
    )
    s3_allow_http: bool = _setting(
        False,
        "Allow plain-HTTP S3 endpoints (implied by an http:// s3_endpoint); "
        "falls back to AWS_ALLOW_HTTP.",
    )
    node_id: str | None = _setting(
        None,
        "Run as one node of a cluster sharing `storage` (S3): shards are leased to "
        "nodes, writes are acknowledged once committed to the shared tables. Unset: one node.",
        kind=str,
    )
    shards: int = _setting(
        1,
        "Shards of a new stream (each has one writer node and its own offsets). Also "
        "accepted as `partitions` (ARROWLOG_PARTITIONS, --partitions), its former name.",
        maximum=1024,
    )
    lease_seconds: float = _setting(
        10.0,
        "Cluster: a shard lease expires this long after its holder's last renewal; "
        "another node then takes the shard over.",
    )
    refresh_interval: float = _setting(
        1.0,
        "Cluster: seconds between re-reads of the shared tables, so a node sees other "
        "nodes' commits (the freshness bound across nodes).",
    )
    advertise_host: str | None = _setting(
        None,
        "Cluster: the host other nodes and clients use to reach this node (default: host).",
        kind=str,
    )
    ray_address: str | None = _setting(
        None,
        "Ray cluster (host:port of `ray start --head`) for `--engine daft-ray`; unset: "
        "ARROWLOG_RAY_ADDRESS's value or a Ray started in-process.",
        kind=str,
    )
    flush_rows: int = _setting(
        1_000_000, "Flush a stream's buffer to Parquet once it holds this many rows."
    )
    flush_bytes: int = _setting(
        64 * 1024 * 1024, "Flush a stream's buffer once it holds this many bytes."
    )
    flush_interval: float = _setting(
        10.0, "Flush a stream's buffer once its oldest record is this many seconds old."
    )
    max_buffer_bytes: int = _setting(
        512 * 1024 * 1024,
        "Backpressure: while the streams' buffers hold more than this, appends wait for "
        "flushes to catch up (at most backpressure_timeout, then they are refused, 503).",
    )
    backpressure_timeout: float = _setting(
        30.0,
        "Seconds an append waits for buffer room before it is refused as Unavailable "
        "(nothing of it written), so clients retry instead of the server running out of memory.",
    )
    wal_segment_bytes: int = _setting(
        64 * 1024 * 1024, "Start a new WAL file once the current one is this large."
    )
    wal_fsync: bool = _setting(
        True, "fsync the WAL before acknowledging a write. Turn off only for throwaway data."
    )
    row_group_rows: int = _setting(
        128 * 1024, "Rows per Parquet row group: smaller prunes finer, larger scans faster."
    )
    zstd_level: int = _setting(
        1,
        "zstd compression level of segment files. 1 writes ~10% faster than 3 and, with "
        "dictionaries on low-cardinality columns, only ~1% larger; raise it for cold data.",
    )
    max_batch_bytes: int = _setting(
        64 * 1024 * 1024, "Largest batch one append may carry; larger ones are rejected whole."
    )
    max_string_bytes: int = _setting(
        1024 * 1024, "Largest single string or binary value accepted in a record."
    )
    compact_target_bytes: int = _setting(
        128 * 1024 * 1024,
        "Compaction rewrites a day's small segments into files of about this size.",
    )
    compact_interval: float = _setting(
        60.0, "Seconds between background compaction and retention runs."
    )
    vacuum_grace_hours: int = _setting(
        1,
        "Files removed by compaction or retention are deleted this many hours later; "
        "keep it longer than any query runs.",
        zero_ok=True,
    )
    retention_days: float = _setting(
        0.0,
        "Drop day partitions whose records are all older than this (0 keeps data forever).",
        zero_ok=True,
    )
    retention_bytes: int = _setting(
        0,
        "Drop a stream's oldest day partitions while it is larger than this (0: no limit).",
        zero_ok=True,
    )
    query_timeout: float | None = _setting(
        None,
        "Seconds of engine time a SQL query may use (planning and producing results, not a "
        "slow client's reading) before it stops with an error; 0: no limit. Unset: 300 under "
        "`arrowlog serve`, no limit in an embedded `arrowlog.open()`.",
        kind=float,
        zero_ok=True,
    )
    query_memory_limit: int = _setting(
        0,
        "Bytes of memory one SQL query's operators (sorts, joins, aggregations) may hold; "
        "sorts spill to disk first, a query needing more fails with an error (0: no limit).",
        zero_ok=True,
    )
    # query workers (arrowlog/sql/workers.py)
    query_workers: int | None = _setting(
        None,
        "Worker processes that run SQL queries, one query each at a time, so a query that "
        "runs out of memory, crashes or will not stop takes only its worker (replaced at "
        "once) and a cancelled or timed-out query stops using CPU within a second. Unset: "
        "2 under `arrowlog serve`, 0 (queries in the calling process) in an embedded "
        "`arrowlog.open()`.",
        kind=int,
        zero_ok=True,
        maximum=64,
    )
    query_queue: int = _setting(
        16,
        "Queries that may wait for a busy query worker; more are refused at once as "
        "Unavailable (503), so clients retry instead of piling up. A query waits at most "
        "query_timeout.",
        zero_ok=True,
    )
    query_worker_memory: int = _setting(
        0,
        "Bytes a query worker may allocate beyond its idle size (RLIMIT_AS); a query needing "
        "more fails with a memory error and its worker is replaced. 0: 4 x "
        "query_memory_limit (at least 1 GiB), or a quarter of the machine's memory when "
        "query_memory_limit is 0.",
        zero_ok=True,
    )
    host: str = _setting(
        "127.0.0.1",
        "Address `arrowlog serve` listens on, for Flight and HTTP (0.0.0.0: every interface).",
    )
    flight_port: int = _setting(
        8815,
        "Port of the Flight / Flight SQL server (0 picks a free port).",
        zero_ok=True,
        maximum=65535,
    )
    http_port: int = _setting(
        8080, "Port of the HTTP API (0 picks a free port).", zero_ok=True, maximum=65535
    )
    token: str | None = _setting(
        None,
        "Bearer token both servers require (`Authorization: Bearer <token>`); unset: no "
        "authentication. Prefer ARROWLOG_TOKEN to the flag, which shows in process lists.",
        kind=str,
        secret=True,
    )
    tls_cert: Path | None = _setting(
        None,
        "PEM certificate (chain): serve Flight as grpc+tls:// and HTTP as https://. Needs tls_key.",
        kind=Path,
    )
    tls_key: Path | None = _setting(None, "PEM private key of tls_cert.", kind=Path)
    max_body_bytes: int = _setting(
        64 * 1024 * 1024,
        "Largest HTTP request body, before and after gzip decoding; larger ones get 413.",
    )
    # HTTP limits: what one client, or many, may hold of the HTTP server (docs/reliability.md).
    http_header_timeout: float = _setting(
        10.0,
        "Seconds a client has to send a request's headers in full, from the connection's "
        "start or the previous answer; slower ones get 408 and are disconnected.",
    )
    http_body_timeout: float = _setting(
        10.0,
        "Seconds of silence allowed while a request body arrives, and the grace period of "
        "http_min_body_rate; past either the request gets 408 and is disconnected.",
    )
    http_min_body_rate: int = _setting(
        1024,
        "Bytes per second a request body must average once http_body_timeout has passed "
        "(the time allowed grows by 1 s per this many bytes received).",
    )
    http_max_header_bytes: int = _setting(
        64 * 1024,
        "Largest request line and headers, together; larger ones get 431 and are disconnected.",
    )
    max_inflight_body_bytes: int = _setting(
        256 * 1024 * 1024,
        "Request body bytes all HTTP requests together may hold in memory at once; a "
        "request that would pass it gets 503 with Retry-After. Keep it above max_body_bytes.",
    )
    allowed_hosts: str | None = _setting(
        None,
        "Comma-separated Host names the HTTP API answers (besides IP addresses, localhost "
        "names, host and advertise_host); others get 400 (DNS rebinding). `*` allows any.",
        kind=str,
    )
    allowed_origins: str | None = _setting(
        None,
        "Comma-separated origins (https://dash.example.com) whose browser pages may call the "
        "HTTP API; requests with any other foreign Origin get 403 (CSRF). `*` allows any.",
        kind=str,
    )
    shutdown_timeout: float = _setting(
        30.0,
        "On SIGTERM/SIGINT, seconds `arrowlog serve` waits for in-flight requests to finish.",
    )
    # tails: live follows of a stream (HTTP Server-Sent Events and Flight), see docs/reliability.md
    max_tails: int = _setting(
        256,
        "Tails (HTTP and Flight together) open at once; more are refused (HTTP 503, "
        "Flight UNAVAILABLE) until one ends.",
    )
    max_tails_per_client: int = _setting(
        16,
        "Tails one client address may hold open (HTTP and Flight together); more are "
        "refused (HTTP 429, Flight UNAVAILABLE).",
    )
    tail_buffer_bytes: int = _setting(
        256 * 1024,
        "Bytes of events an HTTP tail encodes ahead of its client (and about the most one "
        "Flight tail message holds): the memory a slow reader can cost.",
    )
    tail_heartbeat: float = _setting(
        5.0,
        "Seconds between `: keepalive` comments on an idle HTTP tail (the `heartbeat` "
        "parameter overrides it), so a client that is gone is noticed.",
    )
    tail_send_timeout: float = _setting(
        15.0,
        "Seconds an HTTP tail's client may take nothing while events wait for it; then it "
        "is cut off (an `error` event, the connection closed) and its slot freed.",
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata["kind"] is Path and value is not None:
                object.__setattr__(self, f.name, Path(value))
            if f.default is None and value == "":
                object.__setattr__(self, f.name, None)  # an empty env var means "unset"
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if numeric and (value < 0 or (value == 0 and not f.metadata["zero_ok"])):
                wanted = "zero or more" if f.metadata["zero_ok"] else "positive"
                raise InvalidInput(f"setting {f.name} must be {wanted}, got {value!r}")
            maximum = f.metadata["maximum"]
            if numeric and maximum is not None and value > maximum:
                raise InvalidInput(f"setting {f.name} must be at most {maximum}, got {value!r}")
        if not self.host:
            raise InvalidInput("setting host must not be empty")
        if self.node_id is not None and not (self.storage or "").startswith("s3://"):
            raise InvalidInput(
                "setting node_id (cluster mode) needs shared storage: set storage to s3://..."
            )
        if self.shards > 1 and self.node_id is None:
            raise InvalidInput(
                "setting shards > 1 needs cluster mode: set node_id (and an s3:// storage)"
            )
        if self.node_id is not None and self.vacuum_grace_hours < 1:
            # Vacuum deletes files no commit lists: another node's segment between its
            # upload and its commit looks exactly like that.
            raise InvalidInput("in cluster mode (node_id) vacuum_grace_hours must be at least 1")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InvalidInput("settings tls_cert and tls_key go together: set both or neither")

    @property
    def partitions(self) -> int:
        """The former name of ``shards``."""
        return self.shards

    @classmethod
    def load(
        cls,
        *,
        toml_path: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Build settings from defaults, an ``arrowlog.toml``, ``ARROWLOG_*`` vars and overrides.

        Args:
            toml_path: a TOML file; when None, ``./arrowlog.toml`` is read if it exists.
            env: the environment to read (``os.environ`` when None).
            overrides: explicit values (CLI flags); None values are ignored.

        Raises:
            InvalidInput: an unknown setting or a value of the wrong type.

        Example: ``Settings.load(data_dir="/var/lib/arrowlog")``
        """
        names = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        path = Path(toml_path) if toml_path is not None else Path("arrowlog.toml")
        if toml_path is not None or path.exists():
            try:
                doc = tomllib.loads(path.read_text())
            except (OSError, tomllib.TOMLDecodeError) as e:
                raise InvalidInput(f"cannot read settings file {path}: {e}") from e
            for key, value in doc.items():
                key = key.replace("-", "_")
                key = _ALIASES.get(key, key)
                if key not in names:
                    raise InvalidInput(f"unknown setting {key!r} in {path}")
                values[key] = _convert(names[key], value, str(path))
        env = os.environ if env is None else env
        # The standard AWS variables, beneath arrowlog's own (boto, the AWS CLI and
        # delta-rs all read these, so a deployment usually has them already).
        for key, variables in _AWS_FALLBACKS.items():
            raw = next((env[v] for v in variables if env.get(v)), None)
            if raw is not None and key not in values:
                values[key] = _convert(names[key], raw, variables[0])
        for var, raw in env.items():
            if var.startswith(ENV_PREFIX):
                key = var[len(ENV_PREFIX) :].lower()
                if key in _ALIASES and f"{ENV_PREFIX}{_ALIASES[key].upper()}" in env:
                    continue  # the current name wins over the former one
                key = _ALIASES.get(key, key)
                if key in names:
                    values[key] = _convert(names[key], raw, var)
        for key, value in overrides.items():
            if key in _ALIASES and overrides.get(_ALIASES[key]) is not None:
                continue
            key = _ALIASES.get(key, key)
            if key not in names:
                raise InvalidInput(f"unknown setting {key!r}")
            if value is not None:
                values[key] = _convert(names[key], value, key)
        return cls(**values)


# Former names of settings, still accepted in arrowlog.toml, ARROWLOG_* and overrides.
_ALIASES = {"partitions": "shards"}

_AWS_FALLBACKS = {
    "s3_endpoint": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "s3_region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "s3_access_key_id": ("AWS_ACCESS_KEY_ID",),
    "s3_secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
    "s3_allow_http": ("AWS_ALLOW_HTTP",),
}


def _convert(f: dataclasses.Field, value: Any, source: str) -> Any:
    kind = f.metadata["kind"]
    if f.default is None and value == "":
        return None  # ARROWLOG_TOKEN= unsets an optional setting
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if issubclass(kind, Path):
            return Path(value)
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)  # int(2.5) would silently truncate
        return kind(value)
    except (TypeError, ValueError) as e:
        raise InvalidInput(
            f"setting {f.name} from {source} must be {kind.__name__}, got {value!r}"
        ) from e


def settings_help() -> list[tuple[str, Any, str]]:
    """(name, default, help) for every setting, in declaration order."""
    return [(f.name, f.default, f.metadata["help"]) for f in dataclasses.fields(Settings)]


def settings_markdown() -> str:
    """The README's settings table: one row per setting, with its env var and default.

    ``arrowlog settings --markdown`` prints it; ``tests/unit/test_config.py`` fails when the
    README's copy (between the ``settings-table`` markers) differs.
    """
    rows = [
        "| Setting | Environment variable | Default | Description |",
        "|---|---|---|---|",
    ]
    for name, default, help in settings_help():
        text = help.replace("|", "\\|")  # a pipe would end the table cell
        rows.append(
            f"| `{name}` | `{ENV_PREFIX}{name.upper()}` | {_default_text(default)} | {text} |"
        )
    return "\n".join(rows) + "\n"


def _default_text(default: Any) -> str:
    if default is None:
        return "unset"
    if isinstance(default, Path) and not default.is_absolute():
        return f"`./{default}`"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    return f"`{default}`"
