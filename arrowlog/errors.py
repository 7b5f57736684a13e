"""The one exception hierarchy of arrowlog.

Every error a user can see is one of these. Lower layers (pyarrow, DataFusion, deltalake,
the file system) are translated into them at the module that calls the lower layer,
chained with ``raise ... from``. The HTTP and Flight front ends each map these classes to
status codes in exactly one place (``arrowlog/http/errors.py``, ``flight_server/errors.py``);
the message users read is the exception's message, unchanged.

    ArrowlogError
    ├── InvalidInput          bad type, schema conflict, bad stream name, bad JSON, bad SQL
    │   ├── BatchTooLarge     a batch or request body over the configured limit
    │   ├── ReadOnlyQuery     DDL/DML/COPY or anything that would write or read files
    │   ├── QueryLimitExceeded  a query ran past query_timeout or query_memory_limit
    │   ├── ProtocolError     Flight: bytes that should be a Flight SQL message are not
    │   ├── UnsupportedMediaType  HTTP: a Content-Type or Content-Encoding arrowlog cannot read
    │   ├── NotAcceptable     HTTP: no answer format the Accept header allows
    │   ├── HostNotAllowed    HTTP: a Host header not on the allow-list
    │   ├── OriginNotAllowed  HTTP: a browser page of another origin
    │   └── RequestTimeout    HTTP: a request sent too slowly
    ├── StreamNotFound        the named stream does not exist
    ├── Unauthenticated       missing or wrong token
    ├── Unavailable           shutting down, closed, or overloaded
    │   ├── TooManyTails      over max_tails or max_tails_per_client
    │   ├── BodiesInFlight    HTTP: request bodies in memory at max_inflight_body_bytes
    │   ├── LeaseLost         cluster: another node took over a shard this one wrote
    │   └── NotShardOwner     cluster: another node (or none right now) writes the shard
    └── StorageError          the WAL, a segment or the catalog could not be written or read
"""

from __future__ import annotations

__all__ = [
    "ArrowlogError",
    "BatchTooLarge",
    "BodiesInFlight",
    "HostNotAllowed",
    "InvalidInput",
    "LeaseLost",
    "NotAcceptable",
    "NotShardOwner",
    "OriginNotAllowed",
    "ProtocolError",
    "QueryLimitExceeded",
    "ReadOnlyQuery",
    "RequestTimeout",
    "StorageError",
    "StreamNotFound",
    "TooManyTails",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedMediaType",
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


class ProtocolError(InvalidInput, ValueError):
    """Bytes that should hold a Flight SQL message, handle or ticket do not.

    Raised by the decoders of ``flight_server/sql_protocol.py``: not an Any, an unknown
    type_url, an undecodable body or not the expected message; a truncated, foreign or
    corrupt handle. The message names what was received. As an ``InvalidInput`` it maps to
    INVALID_ARGUMENT.
    """


class UnsupportedMediaType(InvalidInput):
    """The request body's Content-Type or Content-Encoding is not one arrowlog reads."""


class NotAcceptable(InvalidInput):
    """The Accept header allows none of the formats a query can be answered in."""


class HostNotAllowed(InvalidInput):
    """The Host header names a host this server does not answer for (DNS rebinding)."""


class OriginNotAllowed(InvalidInput):
    """A browser page of another origin sent the request (CSRF, rebinding)."""


class RequestTimeout(InvalidInput):
    """The client sent its request too slowly; the connection is closed after the answer."""


class StreamNotFound(ArrowlogError):
    """The named stream does not exist (it is created by its first write)."""


class Unauthenticated(ArrowlogError):
    """A server with a token configured got a request with a missing or wrong token."""


class Unavailable(ArrowlogError):
    """The log is closed, shutting down, or overloaded; a later retry may succeed."""


class TooManyTails(Unavailable):
    """A tail over ``max_tails`` or ``max_tails_per_client``; retry once another one ends.

    ``per_client`` tells which: HTTP answers 429 for the per-client limit, 503 otherwise.
    """

    def __init__(self, message: str, *, per_client: bool) -> None:
        super().__init__(message)
        self.per_client = per_client


class BodiesInFlight(Unavailable):
    """Request bodies in memory are at max_inflight_body_bytes; retry in a moment."""


class LeaseLost(Unavailable):
    """This node no longer holds the lease: it expired and another node took it, or it was
    re-acquired by a newer process with the same node id.

    The holder must stop writing the shard at once; a retry on the new holder (or here,
    after a fresh ``Leases.acquire``) may succeed, hence :class:`Unavailable`.
    """


class NotShardOwner(Unavailable):
    """This node does not write the shard: send the records to ``owner`` instead.

    ``owner`` holds the current writer's advertised URLs (``flight``, ``http``), or is
    empty when no node holds the shard right now (retry shortly).
    """

    def __init__(self, message: str, *, stream: str, shard: int, owner: dict[str, str]) -> None:
        super().__init__(message)
        self.stream = stream
        self.shard = shard
        self.owner = owner

    @property
    def partition(self) -> int:
        """The former name of ``shard``."""
        return self.shard


NotPartitionOwner = NotShardOwner  # the former name


class StorageError(ArrowlogError):
    """Durable storage failed (fsync, disk full, unreadable segment, catalog commit).

    Nothing that was acknowledged before the failure is lost; the failed write itself was not
    acknowledged.
    """
