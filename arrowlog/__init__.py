"""arrowlog: an Arrow-native analytics log.

Records go in through ``Log.append`` (or the Flight and HTTP servers), become durable in a
write-ahead log, land as Parquet segments of one Delta Lake table per stream, and come back
out as Arrow through SQL (DataFusion) or replay by offset.

    import arrowlog
    with arrowlog.open("./data") as log:
        log.append("http_logs", [{"ts": "2026-11-23T10:00:00Z", "level": "INFO", "msg": "hi"}])
        log.sql("SELECT level, count(*) FROM http_logs GROUP BY level").to_pandas()
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arrowlog._version import __version__
from arrowlog.client import Client, connect
from arrowlog.config import Settings
from arrowlog.errors import (
    ArrowlogError,
    BatchTooLarge,
    InvalidInput,
    QueryLimitExceeded,
    ReadOnlyQuery,
    StorageError,
    StreamNotFound,
    Unauthenticated,
    Unavailable,
)
from arrowlog.log import Log
from arrowlog.results import AppendResult, CompactionResult, RetentionResult, StreamInfo
from arrowlog.sql.result import QueryResult

__all__ = [
    "AppendResult",
    "ArrowlogError",
    "BatchTooLarge",
    "Client",
    "CompactionResult",
    "InvalidInput",
    "Log",
    "QueryLimitExceeded",
    "QueryResult",
    "ReadOnlyQuery",
    "RetentionResult",
    "Settings",
    "StorageError",
    "StreamInfo",
    "StreamNotFound",
    "Unauthenticated",
    "Unavailable",
    "__version__",
    "connect",
    "open",
]


def open(
    path: str | Path | None = None, *, settings: Settings | None = None, **overrides: Any
) -> Log:
    """Open (creating if needed) an arrowlog data directory for this process.

    Args:
        path: the data directory; default from ``arrowlog.toml``/``ARROWLOG_DATA_DIR``, else ``./data``.
        settings: complete settings (then ``overrides`` must be empty).
        overrides: individual settings, e.g. ``flush_interval=1.0``.

    Raises:
        Unavailable: another process has the directory open.
        StorageError: the WAL or a catalog could not be read.

    Example: ``log = arrowlog.open("./data")``
    """
    if settings is None:
        settings = Settings.load(data_dir=path, **overrides)
    elif path is not None or overrides:
        raise TypeError("pass either settings or path/overrides, not both")
    return Log(settings)


for _obj in (
    Log,
    QueryResult,
    StreamInfo,
    AppendResult,
    CompactionResult,
    RetentionResult,
    Settings,
    Client,
    connect,
):
    _obj.__module__ = "arrowlog"
