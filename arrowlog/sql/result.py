"""What a query returns: a stream of RecordBatches, also convertible whole.

Every engine (``arrowlog/sql/engine.py``) and the query workers hand back a ``QueryResult``;
``arrowlog.QueryResult`` is this class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    import pandas
    import polars

__all__ = ["QueryResult"]


class QueryResult:
    """The answer to a query: a stream of RecordBatches, also convertible whole.

    Not constructed by users: ``Log.sql`` and ``Client.sql`` return it. Iterating streams
    batch by batch; ``to_arrow``/``to_pandas``/``to_polars`` collect.
    Example: ``for batch in log.sql("SELECT * FROM logs"): ...``
    """

    def __init__(
        self,
        schema: pa.Schema,
        batches: Callable[[], Iterator[pa.RecordBatch]],
        collect: Callable[[], pa.Table] | None = None,
        source: QueryResult | None = None,
    ) -> None:
        self.schema = schema
        self._batches = batches
        self._collect = collect
        self._source = source  # the result this one wraps: stop_when and close go to it

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return self._batches()

    def to_reader(self) -> pa.RecordBatchReader:
        """A RecordBatchReader that pulls batches as it is read (nothing materialised)."""
        return pa.RecordBatchReader.from_batches(self.schema, self._batches())

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self.to_reader().__arrow_c_stream__(requested_schema)

    def stop_when(self, condition: Callable[[], bool]) -> QueryResult:
        """Stop the query, wherever it is, once ``condition()`` is true (e.g. the client left).

        Checked while waiting for the next batch of a query running in a worker process
        (``query_workers``), where the iteration then raises ``Unavailable``; a query running
        in this process cannot be stopped from outside and ignores it.
        """
        if self._source is not None:
            self._source.stop_when(condition)
        return self

    def close(self) -> None:
        """Stop the query and free what it holds; safe from another thread, and twice."""
        if self._source is not None:
            self._source.close()

    def to_arrow(self) -> pa.Table:
        if self._collect is not None:
            return self._collect()
        return pa.Table.from_batches(list(self._batches()), schema=self.schema)

    def to_pandas(self) -> pandas.DataFrame:
        return self.to_arrow().to_pandas()

    def to_polars(self) -> polars.DataFrame:
        import polars

        return polars.from_arrow(self.to_arrow())

    def __repr__(self) -> str:
        return f"<QueryResult {self.schema.names}>"
