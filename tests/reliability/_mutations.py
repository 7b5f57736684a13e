"""Byte mutations of text bodies (NDJSON, JSON arrays, CSV) shared by the fuzz harnesses."""

from __future__ import annotations

import random
from collections.abc import Sequence


def mutate_text(
    body: bytes, rng: random.Random, tokens: Sequence[bytes], *, line_ops: bool = False
) -> bytes:
    """One to four edits of ``body``: a random byte, a token inserted, a cut, a repeat;
    with ``line_ops`` also a truncation, a line replaced by a token, lines shuffled."""
    data = bytearray(body)
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(data))
        op = rng.randrange(8 if line_ops else 5)
        if op == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif op in (1, 2):
            data[at:at] = rng.choice(tokens)
        elif op == 3:
            del data[at : at + rng.randint(1, 16)]
        elif op == 4:
            end = min(len(data), at + rng.randint(1, 64))
            data[end:end] = data[at:end]
        elif op == 5:
            del data[at:]
        elif op == 6:
            lines = bytes(data).split(b"\n")
            lines[rng.randrange(len(lines))] = rng.choice(tokens)
            data = bytearray(b"\n".join(lines))
        else:
            lines = bytes(data).split(b"\n")
            rng.shuffle(lines)
            data = bytearray(b"\n".join(lines))
    return bytes(data)
