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
    partition: int = 0  # offsets count per partition (cluster mode: several per stream)


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
    partitions: int = 1

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
            "partitions": self.partitions,
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
