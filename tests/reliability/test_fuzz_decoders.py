"""Fuzzing the request-body decoder, ``decode_body``, in a separate process.

pyarrow's JSON reader has crashed the whole process (SIGSEGV) on small inputs, so the
decoder runs in a worker subprocess fed one input at a time: a crash is reported as a
failed test naming the input (and the worker is restarted), not as a dead pytest.

Three kinds of input:

- byte-level mutations of valid NDJSON and JSON-array bodies (flipped, inserted, deleted
  and duplicated bytes, tokens such as ``null``, ``\\r`` or a BOM spliced in, lines
  swapped), seeded so a failure reproduces;
- Hypothesis-generated bodies: random bytes, and records rendered with tricky numbers
  and duplicate keys;
- a differential check of the one JSON policy: the same records sent as NDJSON and as a
  JSON array are accepted with equal values, or both refused.

Every input is decoded with pyarrow's default single block and with tiny blocks (so the
multi-block path, where any line can start a block, is exercised on small bodies), plain
and gzipped. Anything but a table or an ``InvalidInput``/``BatchTooLarge`` fails: a crash,
or any other exception escaping the decoder.

``ARROWLOG_FUZZ_CASES`` sets the number of mutated inputs (default 300, a few seconds)
and, divided by 10, the Hypothesis examples per test; the ``slow`` tests run 20x that
(about 40 s at the default; raise pytest's ``--timeout`` with the count).
``ARROWLOG_FUZZ_SEED`` seeds the slow mutation run. ``-s`` prints how many decodes ran.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability._mutations import mutate_text
from tests.reliability._worker_process import WorkerProcess

CASES = int(os.environ.get("ARROWLOG_FUZZ_CASES", "300"))
SLOW_CASES = 20 * CASES
KINDS = ("ndjson", "json")
TINY_BLOCK = 64  # bytes: a few records per pyarrow block

# The worker: frames of (kind, gzip, block size, length) + body on stdin, one line per
# frame on stdout: "ok <rows> <digest of the values>", "refused <class>" or "bug <what>".
WORKER = r"""
import hashlib, json, struct, sys
from arrowlog import json_records
from arrowlog.errors import BatchTooLarge, InvalidInput
from arrowlog.http.body import decode_body
from arrowlog.schema import normalize, to_table

default_block = json_records.SINGLE_BLOCK_BYTES
stdin, stdout = sys.stdin.buffer, sys.stdout
while True:
    header = stdin.read(10)
    if len(header) < 10:
        break
    kind, gz, block, size = struct.unpack(">BBII", header)
    body = stdin.read(size)
    json_records.SINGLE_BLOCK_BYTES = block or default_block
    try:
        # What Log.append does first with the decoded table.
        table = decode_body(body, ("ndjson", "json")[kind], gzipped=bool(gz), limit=1 << 20)
        table = normalize(to_table(table), max_string_bytes=1 << 20)
        rows = json.dumps(table.to_pylist(), sort_keys=True, default=repr)
        answer = f"ok {table.num_rows} {hashlib.sha256(rows.encode()).hexdigest()[:16]}"
    except (InvalidInput, BatchTooLarge) as e:
        answer = f"refused {type(e).__name__}"
    except BaseException as e:
        answer = f"bug {type(e).__name__}: {str(e)[:300]!r}"
    stdout.write(answer + "\n")
    stdout.flush()
"""


class Decoder:
    """``decode_body`` in a worker process that is restarted when it dies."""

    def __init__(self) -> None:
        self.worker = WorkerProcess(["-c", WORKER])
        self.cases = 0

    def decode(self, body: bytes, kind: str, *, gz: bool = False, block: int = 0) -> str:
        """The worker's answer, or ``crash <exit code>`` if decoding killed it."""
        self.cases += 1
        payload = gzip.compress(body) if gz else body
        frame = struct.pack(">BBII", KINDS.index(kind), gz, block, len(payload)) + payload
        return self.worker.request(frame)

    def close(self) -> None:
        self.worker.close()


@pytest.fixture(scope="module")
def decoder() -> Iterator[Decoder]:
    d = Decoder()
    yield d
    print(f"\nfuzz: {d.cases} decodes")
    d.close()


@dataclass
class Failure:
    body: bytes
    kind: str
    gz: bool
    block: int
    answer: str


def check_all_ways(decoder: Decoder, body: bytes) -> list[Failure]:
    """Decode ``body`` as each kind, plain and gzipped, in one and in tiny blocks."""
    failures = []
    for kind in KINDS:
        for gz, block in [(False, 0), (False, TINY_BLOCK), (True, 0)]:
            answer = decoder.decode(body, kind, gz=gz, block=block)
            if not answer.startswith(("ok ", "refused ")):
                failures.append(Failure(body, kind, gz, block, answer))
    return failures


def report(failures: list[Failure]) -> str:
    return "\n".join(
        f"{f.answer}: decode_body({f.body[:300]!r}, {f.kind!r}, gzipped={f.gz}) "
        f"with SINGLE_BLOCK_BYTES={f.block or 'default'}"
        for f in failures[:20]
    )


# -- byte-level mutations of valid bodies ------------------------------------------------------

RECORD_LINES = [
    b'{"ts": "2026-11-23T10:00:00Z", "level": "INFO", "status": 200, "msg": "GET /"}',
    b'{"n": 1, "x": 1.5, "tags": ["a", "b"], "user": {"id": 7, "name": "bob"}}',
    b'{"n": 9223372036854775807, "x": -1e308, "ok": true, "none": null}',
    b'{"deep": [[1, 2], [3]], "s": "tab\\t quote\\" brace { bracket ["}',
    b"{}",
]
TOKENS = [
    b"null", b"\n", b"\r", b"\r\n", b" ", b"\t", b"[", b"]", b"{", b"}", b",", b":", b'"',
    b"\\", b"NaN", b"-Infinity", b"Inf", b"-NaN", b"1e400", b"-1e400", b"1e-400", b"0",
    b"-", b"9223372036854775808", b"18446744073709551615", b"9007199254740993",
    b"1" + b"0" * 400, b'"n": 1', b'"n":', b"true", b"\xef\xbb\xbf", b"\x00", b"\xff",
    b"\xc3", b"\\ud800", b"[]", b"{}", b"[null]", b"1", b'"x"', b"\n\n", b"null\n",
]  # fmt: skip


def corpus(rng: random.Random) -> bytes:
    lines = [rng.choice(RECORD_LINES) for _ in range(rng.randint(1, 8))]
    shape = rng.randrange(4)
    if shape == 0:
        return b"\n".join(lines) + b"\n"
    if shape == 1:
        return b"\r\n".join(lines)
    if shape == 2:
        return b"[" + b",\n".join(lines) + b"]"
    return b"\xef\xbb\xbf" + b"\n\n  ".join(lines)


def mutate(body: bytes, rng: random.Random) -> bytes:
    return mutate_text(body, rng, TOKENS, line_ops=True)


def run_mutations(decoder: Decoder, cases: int, seed: int) -> None:
    rng = random.Random(seed)
    failures: list[Failure] = []
    for _ in range(cases):
        failures += check_all_ways(decoder, mutate(corpus(rng), rng))
    assert not failures, f"{len(failures)} inputs broke the decoder:\n{report(failures)}"


def test_mutated_bodies(decoder: Decoder) -> None:
    run_mutations(decoder, CASES, seed=20261205)


@pytest.mark.slow
def test_many_mutated_bodies(decoder: Decoder) -> None:
    run_mutations(decoder, SLOW_CASES, seed=int(os.environ.get("ARROWLOG_FUZZ_SEED", "1")))


def test_known_crashers_are_refused(decoder: Decoder) -> None:
    # Each of these killed the process in pyarrow 26 before the decoder guarded it.
    line = b'{"n": 1}\n'
    crashers = [
        b"null", b"null\n", b" \t null", b"\n\nnull\n", b"\xef\xbb\xbfnull", b"null null",
        b'null {"n": 1}', line * 8 + b"null\n" + line * 8, line[:-1] + b"\rnull\n" + line * 8,
        line * 7 + b"\tnull\n" + line,
        # A field's type changing between pyarrow blocks (with tiny blocks below).
        b'{"x": ["a"]}\n' * 8 + b'{"x": 1}\n', b'{"x": 1}\n' * 8 + b'{"x": [1]}\n',
        b'{"x": 1}\n' * 8 + b'{"x": {"a": 1}}\n', b'{"x": 1}\n' * 8 + b'{"x": true}\n',
        b'{"x": "a"}\n' * 8 + b'{"x": [1]}\n',
    ]  # fmt: skip
    failures = [f for body in crashers for f in check_all_ways(decoder, body)]
    assert not failures, report(failures)
    for body in crashers:
        assert decoder.decode(body, "ndjson", block=TINY_BLOCK) == "refused InvalidInput"


# -- Hypothesis: random bytes, and rendered records --------------------------------------------

FEW = settings(
    max_examples=max(10, CASES // 10),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
MANY = settings(FEW, max_examples=max(10, SLOW_CASES // 10))

NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from([2**53, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1]).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1e400", "-1e400", "1e-400", "NaN", "Infinity", "-Infinity", "1E+308", "0.1"]),
)
KEYS = st.sampled_from(["a", "b", "c"])


def values(depth: int = 2) -> st.SearchStrategy[str]:
    """JSON texts of values, rendered here so numbers keep their exact literal."""
    leaves = st.one_of(
        NUMBERS,
        st.text(alphabet="xyz ", max_size=5).map(json.dumps),
        st.sampled_from(["true", "false", "null"]),
    )
    if depth == 0:
        return leaves
    inner = values(depth - 1)
    return st.one_of(
        leaves,
        st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
        objects(inner),
    )


def objects(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pairs = st.lists(st.tuples(KEYS, inner), max_size=4)  # keys may repeat: duplicates
    return pairs.map(lambda ps: "{" + ", ".join(f'"{k}": {v}' for k, v in ps) + "}")


RECORDS = st.lists(objects(values()), min_size=1, max_size=6)


@FEW
@given(body=st.binary(max_size=512))
def test_random_bytes(decoder: Decoder, body: bytes) -> None:
    assert not (failures := check_all_ways(decoder, body)), report(failures)


@FEW
@given(records=RECORDS)
def test_both_kinds_agree_on_rendered_records(decoder: Decoder, records: list[str]) -> None:
    check_agreement(decoder, records)


@pytest.mark.slow
@MANY
@given(records=RECORDS)
def test_both_kinds_agree_on_many_rendered_records(decoder: Decoder, records: list[str]) -> None:
    check_agreement(decoder, records)


def check_agreement(decoder: Decoder, records: list[str]) -> None:
    """Same records as NDJSON and as an array: equal values, or both refused."""
    ndjson = "\n".join(records).encode()
    array = ("[" + ", ".join(records) + "]").encode()
    answers = {
        "ndjson": decoder.decode(ndjson, "ndjson"),
        "ndjson, tiny blocks": decoder.decode(ndjson, "ndjson", block=TINY_BLOCK),
        "json array": decoder.decode(array, "json"),
    }
    assert all(a.startswith(("ok ", "refused ")) for a in answers.values()), (answers, records)
    verdicts = {a if a.startswith("ok ") else "refused" for a in answers.values()}
    assert len(verdicts) == 1, (answers, records)


def test_lists_starting_with_null_are_read_right(decoder: Decoder) -> None:
    # pyarrow 26 builds such lists one value short (offsets past the values): an invalid
    # table, which failed later with a misleading error or worse.
    body = b'{"a": [null, 1], "b": [null, {"c": [null, "x"]}]}\n'
    expected = decoder.decode(b'[{"a": [null, 1], "b": [null, {"c": [null, "x"]}]}]', "json")
    assert expected.startswith("ok 1 ")
    for block in (0, TINY_BLOCK):
        assert decoder.decode(body, "ndjson", block=block) == expected
