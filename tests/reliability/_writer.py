"""Child process for the crash tests: appends forever and prints each acknowledged range.

Usage: python _writer.py DATA_DIR START_K THREADS
Each line on stdout is ``first_offset last_offset k0``: the records at those offsets carry
``k`` = k0, k0+1, ... . A line is printed only after ``append`` returned (= acknowledged).
Another thread calls ``flush()`` and ``compact()`` in a loop so kills also land mid-flush
and mid-compaction.
"""

from __future__ import annotations

import random
import sys
import threading
from datetime import UTC, datetime, timedelta

import pyarrow as pa

import arrowlog


def main() -> None:
    data_dir, k_start, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    log = arrowlog.open(data_dir, flush_rows=3000, flush_interval=0.2, vacuum_grace_hours=0)
    out_lock = threading.Lock()
    counter = [k_start]
    base = datetime(2026, 11, 20, tzinfo=UTC)

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        while True:
            n = rng.randint(1, 400)
            with out_lock:
                k0 = counter[0]
                counter[0] += n
            ks = pa.array(range(k0, k0 + n), pa.int64())
            # Spread over three days so flushes write several partitions per commit.
            ts = [base + timedelta(hours=(k * 7) % 72) for k in range(k0, k0 + n)]
            table = pa.table(
                {
                    "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
                    "k": ks,
                    "msg": [f"m{k}" for k in range(k0, k0 + n)],
                }
            )
            res = log.append("crash", table)
            with out_lock:
                sys.stdout.write(f"{res.first_offset} {res.last_offset} {k0}\n")
                sys.stdout.flush()

    def flusher() -> None:
        # Flushes and compactions back to back, so kills land in the middle of both.
        while True:
            log.flush()
            log.compact()

    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for i in range(threads):
        threading.Thread(target=writer, args=(i,), daemon=True).start()
    threading.Thread(target=flusher, daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
