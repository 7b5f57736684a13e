"""One declaration per answer: results.py's dataclasses, and the HTTP models that mirror them."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import pyarrow as pa
import pytest
from pydantic import TypeAdapter

import arrowlog
from arrowlog.http.models import STREAM_EXAMPLE, AppendResponse, StreamDescription
from arrowlog.results import AppendResult, StreamInfo


def _names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


# Keys the JSON answers repeat under a field's former name, for older clients.
FORMER_NAMES = {StreamInfo: ["partitions"], AppendResult: ["partition"]}


def _keys(cls: type) -> list[str]:
    return _names(cls) + FORMER_NAMES[cls]


@pytest.fixture
def info(tmp_path: Path) -> StreamInfo:
    schema = pa.schema(
        [
            pa.field("ts", pa.timestamp("us", tz="UTC")),
            pa.field("tags", pa.map_(pa.string(), pa.list_(pa.int32()))),
            pa.field("price", pa.decimal128(12, 3)),
        ]
    )
    with arrowlog.open(tmp_path / "d") as log:
        log.create_stream("s", schema)
        log.append(
            "s",
            pa.table(
                {
                    "ts": pa.array([0, 3_600_000_001], pa.timestamp("us", tz="UTC")),
                    "tags": pa.array([[("a", [1])], []], schema.field("tags").type),
                    "price": pa.array([1, 2], pa.decimal128(12, 3)),
                }
            ),
        )
        log.flush()
        log.append("s", {"ts": ["2026-11-23T10:00:00.123456Z"]})
        return log.describe("s")


def test_http_stream_description_has_the_fields_of_stream_info() -> None:
    assert list(typing.get_type_hints(StreamDescription)) == _keys(StreamInfo)
    assert list(STREAM_EXAMPLE) == _keys(StreamInfo)


def test_stream_info_to_dict_is_a_valid_stream_description(info: StreamInfo) -> None:
    as_dict = info.to_dict()
    assert list(as_dict) == _keys(StreamInfo)
    # Strict: no coercion, no field dropped (FastAPI answers with what validation returns).
    validated = TypeAdapter(StreamDescription).validate_python(as_dict, strict=True)
    assert validated == as_dict
    assert json.loads(json.dumps(as_dict)) == as_dict


def test_http_append_response_has_the_fields_of_append_result() -> None:
    assert list(AppendResponse.model_fields) == _keys(AppendResult)
    result = AppendResult("s", 2, 10, 11, shard=1)
    assert list(result.to_dict()) == _keys(AppendResult)
    assert AppendResponse(**result.to_dict()).model_dump() == result.to_dict()


def test_stream_info_round_trips_through_its_flight_encoding(info: StreamInfo) -> None:
    encoded = json.loads(json.dumps(info.to_dict(arrow_schema=True)))
    decoded = StreamInfo.from_dict(encoded)
    assert decoded == info
    assert decoded.schema.equals(info.schema, check_metadata=True)
    assert (decoded.min_time, decoded.max_time) == (info.min_time, info.max_time)
    assert decoded.max_time is not None and decoded.max_time.microsecond == 123456
    assert {k: v for k, v in encoded.items() if k != "arrow_schema"} == info.to_dict()


def test_stream_info_flight_encoding_keeps_metadata() -> None:
    schema = pa.schema(
        [pa.field("price", pa.decimal128(12, 3), metadata={"unit": "EUR"})], metadata={"k": "v"}
    )
    info = StreamInfo("s", schema, "_ingested_at", 0, None, None, 0, 0, 0, None, None)
    decoded = StreamInfo.from_dict(json.loads(json.dumps(info.to_dict(arrow_schema=True))))
    assert decoded.schema.equals(schema, check_metadata=True)
    assert decoded == info


def test_stream_info_from_dict_of_an_empty_stream(tmp_path: Path) -> None:
    with arrowlog.open(tmp_path / "d") as log:
        log.create_stream("empty", pa.schema([pa.field("n", pa.int64())]))
        info = log.describe("empty")
    assert (info.min_time, info.first_offset) == (None, None)
    assert StreamInfo.from_dict(info.to_dict(arrow_schema=True)) == info
