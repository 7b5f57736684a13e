"""The HTTP API's I/O-free parts: body decoding, Accept negotiation, the error mapping."""

from __future__ import annotations

import gzip
import io
import time

import pyarrow as pa
import pytest

from arrowlog import json_records
from arrowlog.errors import (
    ArrowlogError,
    BatchTooLarge,
    InvalidInput,
    NotAcceptable,
    ReadOnlyQuery,
    StorageError,
    StreamNotFound,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
)
from arrowlog.http.body import body_kind, decode_body, gzipped
from arrowlog.http.errors import status_for
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
    # Bodies over SINGLE_BLOCK_BYTES are parsed in blocks of that size, on all threads.
    monkeypatch.setattr(json_records, "SINGLE_BLOCK_BYTES", 1 << 20)


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
    table = decode_body(b' [{"n": 1}, {"n": 2}]', "json", limit=LIMIT)
    assert table.to_pylist() == [{"n": 1}, {"n": 2}]


def test_json_that_is_not_an_array_is_ndjson() -> None:
    # Fluent Bit's json_lines output says application/json (before 3.0.x).
    table = decode_body(ndjson(3), "json", limit=LIMIT)
    assert table.num_rows == 3  # type: ignore[union-attr]


def test_malformed_json_array_names_line_and_column() -> None:
    assert error_of(b'[{"n": 1},\n {"n": 2,}]', "json") == (
        "malformed JSON on line 2, column 10: Expecting property name enclosed in double quotes"
    )


# -- one JSON policy for both body kinds -------------------------------------------------
#
# The same records, sent as NDJSON or as a JSON array, are accepted or refused alike, and
# a refusal names the line (NDJSON) or the record (array) and the field.


def as_ndjson(*records: str) -> bytes:
    return "".join(r + "\n" for r in records).encode()


def as_array(*records: str) -> bytes:
    return ("[" + ",\n".join(records) + "]").encode()


def decoded(body: bytes, kind: str) -> list[dict]:
    table = decode_body(body, kind, limit=LIMIT)  # type: ignore[arg-type]
    assert isinstance(table, pa.Table)
    return table.to_pylist()


TOO_BIG = "which is too large for a double"
NOT_JSON = "which is not JSON (JSON has no NaN or Infinity)"
INT64 = "an integer outside the int64 range (send it as a string to keep it exact)"
REFUSED = {
    "overflow": ('{"a": 1}', '{"a": 1e400}', f"field 'a' holds 1e400, {TOO_BIG}"),
    "nested negative overflow": (
        '{"a": {"b": [1.5]}}', '{"a": {"b": [1.5, -1E+400]}}', f"field 'a.b[1]' holds -1E+400, {TOO_BIG}"
    ),
    "digits past a double": ('{"a": 1.5}', '{"a": 1' + "0" * 400 + '.0}', f"field 'a' holds 1000000000000000000000000000000…(403 characters), {TOO_BIG}"),
    "NaN": ('{"a": 1.5}', '{"a": NaN}', f"field 'a' holds NaN, {NOT_JSON}"),
    "Infinity": ('{"a": [1.5]}', '{"a": [Infinity]}', f"field 'a[0]' holds Infinity, {NOT_JSON}"),
    "-Infinity": ('{"a": 1.5}', '{"b": "x", "a": -Infinity}', f"field 'a' holds -Infinity, {NOT_JSON}"),
    "duplicate key": ('{"a": 1}', '{"a": 1, "b": 2, "a": 3}', "the key 'a' appears twice in one object"),
    "nested duplicate key": ('{"u": {"id": 1}}', '{"u": {"id": 1, "id": 1}}', "the key 'u.id' appears twice in one object"),
    "duplicate key of other types": ('{"a": "x"}', '{"a": "x", "a": 1}', "the key 'a' appears twice in one object"),
    "beyond int64": ('{"a": 1}', '{"a": 9223372036854775808}', f"field 'a' holds 9223372036854775808, {INT64}"),
    "below int64": ('{"a": 1}', '{"a": -9223372036854775809}', f"field 'a' holds -9223372036854775809, {INT64}"),
    "nested beyond int64": (
        '{"u": {"ids": [1]}}', '{"u": {"ids": [1, 18446744073709551615]}}', f"field 'u.ids[1]' holds 18446744073709551615, {INT64}"
    ),
    "digits past a double, no fraction": (
        '{"a": 1}', '{"a": 1' + "0" * 400 + "}", f"field 'a' holds 1000000000000000000000000000000…(401 characters), {INT64}"
    ),
    "an integer a list of doubles cannot hold": (
        '{"l": [0.5]}', '{"l": [9007199254740993, 0.5]}',
        "field 'l[0]' holds 9007199254740993, which a double cannot hold exactly "
        "(other values of 'l[]' have a fraction or exponent, which makes it a double)",
    ),
    "an integer a double column cannot hold": (
        '{"a": 0.5}', '{"a": 9007199254740993}',
        "field 'a' holds 9007199254740993, which a double cannot hold exactly "
        "(other values of 'a' have a fraction or exponent, which makes it a double)",
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", ["ndjson", "json"])
@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_numbers_and_keys_that_would_change_silently_are_refused(kind: str, case: str) -> None:
    good, bad, reason = REFUSED[case]
    if kind == "ndjson":
        assert error_of(as_ndjson(good, bad, good)) == f"malformed NDJSON on line 2: {reason}"
    else:
        assert (
            error_of(as_array(good, bad, good), "json") == f"malformed JSON in record 2: {reason}"
        )


@pytest.mark.parametrize(
    "records",
    [
        ['{"a": 1e308}', '{"a": -1.7976931348623157e308}'],
        ['{"a": 9223372036854775807}', '{"a": -9223372036854775808}'],
        ['{"ts_ns": 1764945000123456789}'],
        ['{"a": 0.5}', '{"a": 9007199254740992}', '{"a": 1e17}'],
        ['{"a": "1e400", "b": "NaN", "c": "9223372036854775808", "d": "{\\"a\\": 1, \\"a\\": 2}"}'],
        ['{"a": 1e-400}'],  # below the smallest double: rounds to 0.0, as any decimal rounds
        # Long integers in an int64 field beside large doubles written as doubles.
        ['{"ts": 1764945000123456789, "big": 1.5e16}', '{"ts": 1, "big": 12345678901234567.5}'],
        ['{"a": {"b": 1}, "c": [{"b": 1}, {"b": 2}]}'],
        # pyarrow 26 reads a list whose first item is null one value short (invalid offsets).
        ['{"a": [null, 1], "b": [null, {"c": [null, "x"]}]}', '{"a": [null, null, 3]}'],
    ],
)
def test_both_body_kinds_accept_the_same_records_alike(records: list[str]) -> None:
    from_ndjson = decoded(as_ndjson(*records), "ndjson")
    assert from_ndjson == decoded(as_array(*records), "json")
    assert len(from_ndjson) == len(records)


NOT_OBJECTS = {
    "null": ("null", "null"),
    "a number": ("-1.5", "a number"),
    "a string": ('"x"', "a string"),
    "an array": ('[{"a": 1}]', "an array"),
    "an empty array": ("[]", "an array"),
    "a boolean": ("true", "a boolean"),
    "indented null": (" \t null ", "null"),
}


@pytest.mark.parametrize("case", list(NOT_OBJECTS), ids=list(NOT_OBJECTS))
def test_every_record_must_be_an_object(case: str) -> None:
    text, what = NOT_OBJECTS[case]
    assert error_of(as_ndjson('{"a": 1}', text)) == (
        f"each NDJSON line must be a JSON object; line 2 is {what}"
    )
    assert error_of(as_array('{"a": 1}', text), "json") == (
        f"each record of a JSON array must be a JSON object; record 2 is {what}"
    )


def test_a_boolean_among_doubles_is_refused_by_both_kinds() -> None:
    # pyarrow's pa.array stores [0.5, true] as [0.5, 1.0]; its NDJSON reader refuses.
    assert error_of(as_array('{"a": {"b": [0.5]}}', '{"a": {"b": [1.0, true]}}'), "json") == (
        "malformed JSON in record 2: field 'a.b[1]' holds a boolean, "
        "where other values of 'a.b[]' are numbers"
    )
    assert error_of(as_ndjson('{"a": 0.5}', '{"a": true}')).startswith(
        "malformed NDJSON on line 2: "
    )
    assert decoded(as_array('{"a": 1.0, "ok": true}'), "json") == [{"a": 1.0, "ok": True}]


def test_a_line_that_starts_like_no_json_value_is_quoted() -> None:
    assert error_of(b'{"a": 1}\nnul\n') == (
        "each NDJSON line must be a JSON object; line 2 is not one (it starts with 'nul')"
    )


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (b'{"a": 1}\n{"a": 2} null\n', 2),
        (b'{"a": 1} {"a": 2}\n', 1),
        (b'{"a": {"b": 0}}\n{"a":\n{"b": 1}} null\n{"a": {"b": 3}}\n', 2),
    ],
)
def test_one_object_per_line(body: bytes, line: int) -> None:
    message = error_of(body)
    assert message.startswith(f"each NDJSON line must be one JSON object; line {line} ")


def test_the_line_with_two_values_is_found_quickly_in_a_large_body() -> None:
    # 1.2 M tiny lines: a Python loop over them to find the bad one took tens of seconds.
    body = b"{}\n" * 1_200_000 + b'{"a": 1} {"a": 2}\n' + b"{}\n" * 10
    started = time.monotonic()
    assert error_of(body) == (
        "each NDJSON line must be one JSON object; line 1200001 holds more than one JSON value"
    )
    assert time.monotonic() - started < 10


def test_a_pretty_printed_object_is_not_ndjson() -> None:
    assert error_of(b'{\n  "a": 1\n}\n') == (
        "each NDJSON line must be a JSON object; line 2 is not one (it starts with '\"a\": 1')"
    )


@pytest.mark.parametrize(
    ("first", "later"),
    [('{"x": "a"}', '{"x": 1}'), ('{"x": {"a": 1}}', '{"x": 1}'), ('{"x": 1}', '{"x": "a"}')],
)
def test_a_type_change_far_into_a_large_body_is_refused(first: str, later: str) -> None:
    # pyarrow's multi-block reader stored 1 as "1" after strings, and dropped it after
    # objects; bodies over SINGLE_BLOCK_BYTES are cut into pieces of that size.
    body = as_ndjson(*[first] * 20, later)
    with pytest.raises(InvalidInput) as e:
        json_records.parse_ndjson(body, single_block_bytes=64)
    assert str(e.value).startswith("malformed NDJSON on line 21: ")


def test_pieces_of_a_large_body_join_when_types_only_widen_by_nulls() -> None:
    body = as_ndjson('{"x": null, "l": []}', *['{"x": 1}'] * 20, '{"y": {"a": 1}, "l": [2]}')
    table = json_records.parse_ndjson(body, single_block_bytes=64)
    assert table.to_pylist() == decoded(body, "ndjson")
    assert table.column("x").num_chunks > 1


def test_bodies_must_be_utf8() -> None:
    # pyarrow kept invalid bytes, in a column name too (which then failed far from here).
    assert error_of(b'{"a": 1}\n{"\xdd": 7}\n') == (
        "malformed NDJSON on line 2: the text is not UTF-8 (invalid continuation byte)"
    )
    assert error_of(b'[{"a": 1}, {"\xdd": 7}]', "json").startswith("the body is not UTF-8: ")
    # json.loads would have guessed UTF-16 from the zero bytes.
    utf16 = '[{"a": 1}]'.encode("utf-16-le")
    assert error_of(utf16, "json").startswith("malformed JSON on line 1, column 2: ")


def test_blank_lines_crlf_a_bom_and_indentation_are_fine() -> None:
    body = b'\xef\xbb\xbf{"a": 1}\r\n\r\n  {"a": 2}  \r\n\t{"a": 3}\n\n'
    assert decoded(body, "ndjson") == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert error_of(b'{"a": 1}\r\n\r\n{"a": 1e400}\r\n').startswith("malformed NDJSON on line 3: ")


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
