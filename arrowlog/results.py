"""The values arrowlog's API returns: the same types from ``arrowlog.open()`` (embedded)
and ``arrowlog.connect()`` (over Flight)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any, get_args, get_type_hints

import pyarrow as pa

__all__ = ["AppendResult", "CompactionResult", "RetentionResult", "StreamInfo"]


@dataclass(frozen=True, slots=True)
class AppendResult:
    """An acknowledged append: its records are durable at offsets first..last."""

    stream: str
    accepted: int
    first_offset: int
    last_offset: int
    shard: int = 0  # offsets count per shard (cluster mode: several per stream)

    @property
    def partition(self) -> int:
        """The former name of ``shard``."""
        return self.shard

    def to_dict(self) -> dict[str, Any]:
        """As the servers answer it (JSON); ``partition`` repeats ``shard`` for older clients."""
        return {
            "stream": self.stream,
            "accepted": self.accepted,
            "first_offset": self.first_offset,
            "last_offset": self.last_offset,
            "shard": self.shard,
            "partition": self.shard,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AppendResult:
        """From ``to_dict()``'s JSON, or an older server's (``partition`` only)."""
        return cls(
            d["stream"],
            d["accepted"],
            d["first_offset"],
            d["last_offset"],
            d.get("shard", d.get("partition", 0)),
        )


@dataclass(frozen=True)
class StreamInfo:
    """What ``Log.streams()`` and ``Log.describe()`` report about one stream.

    The one declaration of a stream's description: HTTP's ``StreamDescription``
    (``arrowlog/http/models.py``) is its ``to_dict()``, checked field by field in
    ``tests/unit/test_results.py``; the Flight actions ``describe`` and ``list_streams``
    send ``to_dict(arrow_schema=True)``, which ``from_dict`` turns back into an equal
    StreamInfo (``arrowlog.connect()`` does).
    """

    name: str
    schema: pa.Schema
    time_column: str
    rows: int
    first_offset: int | None
    last_offset: int | None
    bytes: int
    segments: int
    buffered_rows: int
    min_time: datetime | None
    max_time: datetime | None
    shards: int = 1

    @property
    def partitions(self) -> int:
        """The former name of ``shards``."""
        return self.shards

    def to_dict(self, *, arrow_schema: bool = False) -> dict[str, Any]:
        """Plain JSON values: the schema as ``[{name, type, nullable}]``, times in ISO 8601.

        ``partitions`` repeats ``shards`` for clients that predate the name.

        Args:
            arrow_schema: also send the schema as base64 Arrow IPC under ``"arrow_schema"``:
                the column list names types for people and cannot be parsed back exactly
                (metadata, nested types), the IPC form can.

        Example: ``json.dumps(log.describe("http_logs").to_dict())``
        """
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, pa.Schema):
                value = [
                    {"name": c.name, "type": str(c.type), "nullable": c.nullable} for c in value
                ]
            elif isinstance(value, datetime):
                value = value.isoformat()
            out[f.name] = value
        out["partitions"] = self.shards
        if arrow_schema:
            out[_ARROW_SCHEMA] = base64.b64encode(self.schema.serialize().to_pybytes()).decode()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StreamInfo:
        """The StreamInfo that ``to_dict(arrow_schema=True)`` encoded, equal to the original.

        A field with a default (``shards``) may be missing, as from an older server, which
        sent ``partitions`` instead.

        Raises:
            KeyError: ``data`` has no ``"arrow_schema"``.
            TypeError: ``data`` lacks a field without a default.
        """
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        if "shards" not in values and "partitions" in data:
            values["shards"] = data["partitions"]
        ipc = base64.b64decode(data[_ARROW_SCHEMA])
        values["schema"] = pa.ipc.read_schema(pa.py_buffer(ipc))
        for name in _TIME_FIELDS:
            if values.get(name) is not None:
                values[name] = datetime.fromisoformat(values[name])
        return cls(**values)


_ARROW_SCHEMA = "arrow_schema"
_TIME_FIELDS = tuple(
    name
    for name, hint in get_type_hints(StreamInfo).items()
    if hint is datetime or datetime in get_args(hint)
)


@dataclass(frozen=True, slots=True)
class CompactionResult:
    """What one compaction run did to one stream."""

    stream: str
    partitions: int
    files_removed: int
    files_added: int
    rows: int
    seconds: float


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What one retention run dropped from one stream."""

    stream: str
    partitions: list[date]
    files_removed: int
    bytes_removed: int
