"""The one exception hierarchy of arrowlog.

Every error a user can see is one of these. Lower layers (pyarrow, DataFusion, deltalake,
the file system) are translated into them at the module that calls the lower layer,
chained with ``raise ... from``. The HTTP and Flight front ends each map these classes to
status codes in exactly one place; the message users read is the exception's message,
unchanged.

    ArrowlogError
    ├── InvalidInput          bad type, schema conflict, bad stream name, bad JSON, bad SQL
    │   ├── BatchTooLarge     a batch or request body over the configured limit
    │   ├── ReadOnlyQuery     DDL/DML/COPY or anything that would write or read files
    │   └── QueryLimitExceeded  a query ran past query_timeout or query_memory_limit
    ├── StreamNotFound        the named stream does not exist
    ├── Unauthenticated       missing or wrong token
    ├── Unavailable           shutting down, closed, or overloaded
    └── StorageError          the WAL, a segment or the catalog could not be written or read
"""

from __future__ import annotations

__all__ = [
    "ArrowlogError",
    "BatchTooLarge",
    "InvalidInput",
    "QueryLimitExceeded",
    "ReadOnlyQuery",
    "StorageError",
    "StreamNotFound",
    "Unauthenticated",
    "Unavailable",
]


class ArrowlogError(Exception):
    """Base class: catch this to handle every arrowlog error."""


class InvalidInput(ArrowlogError):
    """The request itself is wrong; retrying it unchanged will fail again.

    Raised for a value whose type conflicts with the stream's schema (the message names the
    column and both types), an invalid stream name, an empty or malformed batch, and SQL the
    engine cannot parse or plan (the message is the engine's).
    """


class BatchTooLarge(InvalidInput):
    """A batch or request body is larger than the configured limit."""


class ReadOnlyQuery(InvalidInput):
    """The SQL would change data or touch files: arrowlog's query interfaces are read-only."""


class QueryLimitExceeded(InvalidInput):
    """A query ran longer than ``query_timeout`` or needed more than ``query_memory_limit``.

    The message names the limit and its setting; narrow the query (a time range, a LIMIT,
    fewer columns) or raise the setting.
    """


class StreamNotFound(ArrowlogError):
    """The named stream does not exist (it is created by its first write)."""


class Unauthenticated(ArrowlogError):
    """A server with a token configured got a request with a missing or wrong token."""


class Unavailable(ArrowlogError):
    """The log is closed, shutting down, or overloaded; a later retry may succeed."""


class StorageError(ArrowlogError):
    """Durable storage failed (fsync, disk full, unreadable segment, catalog commit).

    Nothing that was acknowledged before the failure is lost; the failed write itself was not
    acknowledged.
    """
