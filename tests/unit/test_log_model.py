"""Property test: random appends (late data included), schema evolution, flushes,
compactions and reopens against an in-memory model."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime, timedelta

import pyarrow as pa
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import arrowlog

BASE = datetime(2026, 11, 1, tzinfo=UTC)
EXTRA = ["host", "status", "region"]


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="arrowlog-model-")
        self.log = arrowlog.open(
            self.dir, flush_interval=3600.0, flush_rows=10**9, vacuum_grace_hours=0
        )
        self.rows: list[dict] = []  # the model: records in offset order
        self.columns: list[str] = []

    @rule(
        n=st.integers(1, 40),
        hours=st.integers(-72, 72),
        extra=st.sampled_from([None, *EXTRA]),
        as_arrow=st.booleans(),
    )
    def append(self, n: int, hours: int, extra: str | None, as_arrow: bool) -> None:
        start = len(self.rows)
        records = []
        for i in range(n):
            r = {
                "ts": BASE + timedelta(hours=hours, seconds=i),
                "x": start + i,
                "msg": f"m{start + i}",
            }
            if extra == "host":
                r["host"] = f"h{i % 3}"
            elif extra == "status":
                r["status"] = 200 + i
            elif extra == "region":
                r["region"] = None if i % 2 else "eu"
            records.append(r)
        data = pa.Table.from_pylist(records) if as_arrow else records
        res = self.log.append("s", data)
        assert (res.first_offset, res.last_offset, res.accepted) == (start, start + n - 1, n)
        if extra and extra not in self.columns and any(r.get(extra) is not None for r in records):
            self.columns.append(extra)
        self.rows += records

    @precondition(lambda self: self.rows)
    @rule()
    def flush(self) -> None:
        self.log.flush()

    @precondition(lambda self: self.rows)
    @rule()
    def compact(self) -> None:
        self.log.compact()

    @rule()
    def reopen(self) -> None:
        self.log.close()
        self.log = arrowlog.open(
            self.dir, flush_interval=3600.0, flush_rows=10**9, vacuum_grace_hours=0
        )

    @precondition(lambda self: self.rows)
    @rule(frm=st.integers(0, 200), limit=st.integers(0, 60))
    def read_matches_model(self, frm: int, limit: int) -> None:
        got = self.log.read("s", from_offset=frm, limit=limit)
        want = self.rows[frm : frm + limit]
        assert got.column("_offset").to_pylist() == list(range(frm, frm + len(want)))
        assert got.column("x").to_pylist() == [r["x"] for r in want]
        for c in self.columns:
            assert got.column(c).to_pylist() == [r.get(c) for r in want]
        # read() and SQL agree on the same offsets.
        sql = self.log.sql(
            f"SELECT * FROM s WHERE _offset >= {frm} AND _offset < {frm + limit} ORDER BY _offset"
        ).to_arrow()
        assert sql.select(got.column_names).equals(got)

    @invariant()
    def sql_aggregates_match_model(self) -> None:
        if not self.rows:
            return
        t = self.log.sql("SELECT count(*) AS n, sum(x) AS sx, max(_offset) AS mo FROM s").to_arrow()
        assert t.to_pylist() == [
            {"n": len(self.rows), "sx": sum(r["x"] for r in self.rows), "mo": len(self.rows) - 1}
        ]
        if "status" in self.columns:
            got = self.log.sql("SELECT sum(status) AS s FROM s").to_arrow().column("s")[0].as_py()
            assert got == sum(r.get("status") or 0 for r in self.rows)

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


LogMachine.TestCase.settings = settings(max_examples=15, stateful_step_count=12, deadline=None)
test_log_matches_model = LogMachine.TestCase
