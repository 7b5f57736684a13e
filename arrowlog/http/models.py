"""Request and response shapes of the HTTP API, with the examples ``/docs`` shows.

The shapes are the Python API's (``arrowlog/results.py``): ``AppendResult`` →
``AppendResponse``, ``StreamInfo.to_dict()`` → ``StreamDescription``. They exist for
validation and the OpenAPI document; routes build them straight from the Log's answers,
and ``tests/unit/test_results.py`` checks that their fields are the dataclasses' fields.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

__all__ = [
    "AppendResponse",
    "ColumnDescription",
    "ErrorResponse",
    "QueryRequest",
    "StreamDescription",
    "StreamList",
]


class AppendResponse(BaseModel):
    """An acknowledged append: the records are durable (WAL fsynced) at these offsets."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"stream": "http_logs", "accepted": 2, "first_offset": 1000, "last_offset": 1001}
            ]
        }
    )

    stream: str = Field(description="The stream appended to (created by its first write).")
    accepted: int = Field(description="How many records were appended.")
    first_offset: int = Field(description="Offset of the first record appended.")
    last_offset: int = Field(description="Offset of the last record appended.")
    shard: int = Field(default=0, description="The shard written (offsets count per shard).")
    partition: int = Field(default=0, description="The former name of `shard` (the same value).")


class ErrorResponse(BaseModel):
    """Every error answer: the arrowlog error class and its message, unchanged."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": "InvalidInput",
                    "message": "column 'status' has type string, but stream 'http_logs' has int64",
                }
            ]
        }
    )

    error: str = Field(description="The error class, e.g. InvalidInput, StreamNotFound.")
    message: str = Field(description="What went wrong, in a sentence.")


class QueryRequest(BaseModel):
    """A read-only SQL query; every stream is a table of the same name."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "sql": "SELECT level, count(*) AS n FROM http_logs GROUP BY level ORDER BY n DESC"
                },
                {"sql": "SELECT count(*) FROM http_logs", "engine": "duckdb"},
            ]
        },
    )

    sql: str = Field(description="The query (DataFusion dialect unless engine says otherwise).")
    engine: Literal["datafusion", "duckdb"] = Field(
        "datafusion", description="The SQL engine; both see the same data."
    )


class ColumnDescription(TypedDict):
    name: str
    type: str
    nullable: bool


class StreamDescription(TypedDict):
    """One stream: what ``Log.describe()`` reports (``StreamInfo.to_dict()``)."""

    name: str
    schema: list[ColumnDescription]
    time_column: str
    rows: int
    first_offset: int | None
    last_offset: int | None
    bytes: int
    segments: int
    buffered_rows: int
    min_time: str | None
    max_time: str | None
    shards: int
    partitions: int  # the former name of ``shards`` (the same value)


class StreamList(TypedDict):
    streams: list[StreamDescription]


STREAM_EXAMPLE: StreamDescription = {
    "name": "http_logs",
    "schema": [
        {"name": "ts", "type": "timestamp[us, tz=UTC]", "nullable": True},
        {"name": "level", "type": "string", "nullable": True},
        {"name": "status", "type": "int64", "nullable": True},
        {"name": "_offset", "type": "int64", "nullable": False},
        {"name": "_ingested_at", "type": "timestamp[us, tz=UTC]", "nullable": False},
    ],
    "time_column": "ts",
    "rows": 1002,
    "first_offset": 0,
    "last_offset": 1001,
    "bytes": 48213,
    "segments": 1,
    "buffered_rows": 2,
    "min_time": "2026-11-23T10:00:00+00:00",
    "max_time": "2026-11-23T10:05:00+00:00",
    "shards": 1,
    "partitions": 1,
}
