"""The HTTP API's I/O-free parts: body decoding, Accept negotiation, the error mapping."""

from __future__ import annotations

import gzip
import io

import pyarrow as pa
import pytest

from arrowlog.errors import (
    ArrowlogError,
    BatchTooLarge,
    InvalidInput,
    ReadOnlyQuery,
    StorageError,
    StreamNotFound,
    Unauthenticated,
    Unavailable,
)
from arrowlog.http import body
from arrowlog.http.body import body_kind, decode_body, gzipped
from arrowlog.http.errors import NotAcceptable, UnsupportedMediaType, status_for
from arrowlog.http.query import negotiate

LIMIT = 64 * 1024 * 1024


def ndjson(n: int, start: int = 0) -> bytes:
    return b"".join(
        b'{"n": %d, "msg": "record number %d"}\n' % (i, i) for i in range(start, start + n)
    )


def error_of(body: bytes, kind: str = "ndjson", **kwargs: object) -> str:
    with pytest.raises(InvalidInput) as e:
        decode_body(body, kind, limit=LIMIT, **kwargs)  # type: ignore[arg-type]
    return str(e.value)


# -- NDJSON ------------------------------------------------------------------------------


def test_ndjson_is_parsed_in_bulk() -> None:
    table = decode_body(ndjson(1000), "ndjson", limit=LIMIT)
    assert isinstance(table, pa.Table)
    assert table.num_rows == 1000
    assert table.column("n").to_pylist() == list(range(1000))


@pytest.mark.usefixtures("small_blocks")
def test_large_bodies_are_parsed_in_blocks() -> None:
    table = decode_body(ndjson(60_000), "ndjson", limit=LIMIT)  # ~2.4 MB, over 1 MB
    assert table.num_rows == 60_000  # type: ignore[union-attr]
    assert table.column("n").num_chunks > 1  # type: ignore[union-attr]
    assert table.column("n").to_pylist() == list(range(60_000))  # type: ignore[union-attr]


def test_malformed_ndjson_names_the_line() -> None:
    body = b'{"n": 1}\n{"n": 2}\n{"n": }\n{"n": 4}\n'
    assert error_of(body) == "malformed NDJSON on line 3: Invalid value."


def test_blank_lines_count_as_lines() -> None:
    # pyarrow skips blank lines when it counts rows; the line number must not.
    body = b'{"n": 1}\n\n   \n{"n": 2}\r\n\n{"n": "x",}\n'
    assert error_of(body).startswith("malformed NDJSON on line 6: ")


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Bodies over _SINGLE_BLOCK_BYTES are parsed in blocks of that size, on all threads.
    monkeypatch.setattr(body, "_SINGLE_BLOCK_BYTES", 1 << 20)


@pytest.mark.usefixtures("small_blocks")
def test_the_line_is_right_far_into_a_multi_block_body() -> None:
    # pyarrow reports rows relative to its block; the answer counts from the body's start.
    good = ndjson(60_000)  # ~2.4 MB: three blocks
    body = good + b'{"n": 60000, "msg": oops}\n' + ndjson(10, 60_001)
    assert error_of(body) == "malformed NDJSON on line 60001: Invalid value."


def test_a_type_change_inside_the_body_names_line_and_column() -> None:
    body = b'{"n": 1}\n{"n": 2}\n{"n": "three"}\n'
    message = error_of(body)
    assert message.startswith("malformed NDJSON on line 3: ")
    assert "/n" in message


@pytest.mark.usefixtures("small_blocks")
def test_a_line_longer_than_a_block_is_fine() -> None:
    long = b'{"msg": "' + b"x" * (3 << 20) + b'"}\n'
    table = decode_body(ndjson(5) + long + ndjson(5), "ndjson", limit=LIMIT)
    assert table.num_rows == 11  # type: ignore[union-attr]


@pytest.mark.parametrize("body", [b"", b"\n\n  \n"])
def test_an_empty_body_holds_no_records(body: bytes) -> None:
    assert error_of(body) == "the body holds no records"


# -- JSON --------------------------------------------------------------------------------


def test_json_array() -> None:
    records = decode_body(b' [{"n": 1}, {"n": 2}]', "json", limit=LIMIT)
    assert records == [{"n": 1}, {"n": 2}]


def test_json_that_is_not_an_array_is_ndjson() -> None:
    # Fluent Bit's json_lines output says application/json (before 3.0.x).
    table = decode_body(ndjson(3), "json", limit=LIMIT)
    assert table.num_rows == 3  # type: ignore[union-attr]


def test_malformed_json_array_names_line_and_column() -> None:
    assert error_of(b'[{"n": 1},\n {"n": 2,}]', "json") == (
        "malformed JSON on line 2, column 10: Expecting property name enclosed in double quotes"
    )


# -- Arrow IPC, gzip ---------------------------------------------------------------------


def test_arrow_ipc_stream() -> None:
    table = pa.table({"n": [1, 2, 3]})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    assert decode_body(sink.getvalue(), "arrow", limit=LIMIT).equals(table)  # type: ignore[union-attr]
    assert error_of(b"not arrow at all", "arrow").startswith(
        "the body is not a valid Arrow IPC stream: "
    )


def test_gzip_including_several_members() -> None:
    body = gzip.compress(ndjson(10)) + gzip.compress(ndjson(5, 10))
    table = decode_body(body, "ndjson", gzipped=True, limit=LIMIT)
    assert table.column("n").to_pylist() == list(range(15))  # type: ignore[union-attr]


def test_gzip_errors() -> None:
    assert error_of(b"plain text", gzipped=True).startswith("the body is not valid gzip: ")
    assert error_of(gzip.compress(ndjson(100))[:-30], gzipped=True) == "the gzip body is truncated"


def test_gzip_output_is_limited() -> None:
    bomb = gzip.compress(b" " * (10 << 20))  # 10 KB that inflate to 10 MB
    with pytest.raises(BatchTooLarge) as e:
        decode_body(bomb, "ndjson", gzipped=True, limit=1 << 20)
    assert str(e.value) == (
        "request body, un-gzipped, is over the limit of 1048576 bytes (max_body_bytes)"
    )


# -- headers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("application/x-ndjson", "ndjson"),
        ("application/x-ndjson; charset=utf-8", "ndjson"),
        ("Application/JSONL", "ndjson"),
        ("application/json", "json"),
        ("application/vnd.apache.arrow.stream", "arrow"),
    ],
)
def test_content_types(content_type: str, kind: str) -> None:
    assert body_kind(content_type) == kind


def test_unsupported_content_type_and_encoding() -> None:
    with pytest.raises(UnsupportedMediaType) as e:
        body_kind("text/plain")
    assert str(e.value) == (
        "unsupported Content-Type 'text/plain': send application/x-ndjson, application/json "
        "or application/vnd.apache.arrow.stream"
    )
    with pytest.raises(UnsupportedMediaType, match=r"^missing Content-Type: "):
        body_kind(None)
    assert gzipped("gzip") and gzipped("x-gzip") and not gzipped(None) and not gzipped("identity")
    with pytest.raises(UnsupportedMediaType) as e:
        gzipped("br")
    assert str(e.value) == "unsupported Content-Encoding 'br': send gzip or identity"


@pytest.mark.parametrize(
    ("accept", "fmt"),
    [
        (None, "json"),
        ("*/*", "json"),
        ("application/json", "json"),
        ("text/csv", "csv"),
        ("application/x-ndjson", "ndjson"),
        ("application/vnd.apache.arrow.stream", "arrow"),
        ("text/html, text/csv;q=0.5, application/json;q=0.9", "json"),
        ("application/json;q=0, text/*", "csv"),
    ],
)
def test_negotiate(accept: str | None, fmt: str) -> None:
    assert negotiate(accept) == fmt


def test_negotiate_refuses() -> None:
    with pytest.raises(NotAcceptable) as e:
        negotiate("image/png, application/json;q=0")
    assert str(e.value).startswith("cannot answer in any type of Accept: ")


# -- the one mapping ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidInput("x"), 400),
        (BatchTooLarge("x"), 413),
        (ReadOnlyQuery("x"), 403),
        (UnsupportedMediaType("x"), 415),
        (NotAcceptable("x"), 406),
        (StreamNotFound("x"), 404),
        (Unauthenticated("x"), 401),
        (Unavailable("x"), 503),
        (StorageError("x"), 500),
        (ArrowlogError("x"), 500),
    ],
)
def test_most_specific_class_wins(error: ArrowlogError, status: int) -> None:
    assert status_for(error) == status


def test_a_subclass_nobody_listed_gets_its_parents_status() -> None:
    class NewKindOfBadInput(BatchTooLarge):
        pass

    assert status_for(NewKindOfBadInput("x")) == 413
