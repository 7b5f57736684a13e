"""SQL on Daft and Ray (``engine="daft-ray"``) over the streams' Delta tables.

Each table is read at the Delta version its snapshot was taken with, and the snapshot's
buffer is unioned in, so Daft sees exactly what DataFusion would. The Daft and Ray side
(connecting, the dialect, the read-only check of the plan) is ``arrowlog/distributed.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from arrowlog.distributed import DeltaSource, daft_sql
from arrowlog.snapshot import TableSnapshot, buffer_table
from arrowlog.sql.policy import Params
from arrowlog.sql.result import QueryResult

__all__ = ["DaftEngine", "VersionedSnapshot"]


@dataclass(frozen=True)
class VersionedSnapshot:
    """A stream's snapshot and the Delta table (URI, version) its segments are."""

    uri: str
    version: int
    snapshot: TableSnapshot


class DaftEngine:
    """Runs SQL with Daft on a Ray cluster.

    Args:
        snapshots: every stream's versioned snapshot, taken when called (the ``Log``
            reads the version and the buffer with no commit in between).
        storage_options: deltalake-style ``AWS_*`` options for tables in an object store.
        address: the Ray cluster (None: ``ARROWLOG_RAY_ADDRESS`` or a local Ray).
    """

    def __init__(
        self,
        snapshots: Callable[[], Mapping[str, VersionedSnapshot]],
        *,
        storage_options: Mapping[str, str] | None = None,
        address: str | None = None,
    ) -> None:
        self._snapshots = snapshots
        self._storage_options = storage_options
        self._address = address

    def sql(self, query: str, params: Params = None) -> QueryResult:
        """Run ``query`` now; Daft returns it whole, so the result is one table."""
        sources = {name: _source(v) for name, v in self._snapshots().items()}
        table = daft_sql(
            query,
            sources,
            storage_options=self._storage_options,
            address=self._address,
            params=params,
        )
        return QueryResult(table.schema, lambda: iter(table.to_batches()), lambda: table)


def _source(versioned: VersionedSnapshot) -> DeltaSource:
    buffer = buffer_table(versioned.snapshot)
    return DeltaSource(
        versioned.uri, version=versioned.version, buffer=buffer if buffer.num_rows else None
    )
