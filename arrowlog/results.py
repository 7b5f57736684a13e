"""The values arrowlog's API returns: the same types from ``arrowlog.open()`` (embedded)
and ``arrowlog.connect()`` (over Flight)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

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
    """What ``Log.streams()`` and ``Log.describe()`` report about one stream."""

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "schema": [
                {"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in self.schema
            ],
            "time_column": self.time_column,
            "rows": self.rows,
            "first_offset": self.first_offset,
            "last_offset": self.last_offset,
            "bytes": self.bytes,
            "segments": self.segments,
            "buffered_rows": self.buffered_rows,
            "min_time": self.min_time.isoformat() if self.min_time else None,
            "max_time": self.max_time.isoformat() if self.max_time else None,
            "shards": self.shards,
            "partitions": self.shards,  # the former name, for existing clients
        }


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
