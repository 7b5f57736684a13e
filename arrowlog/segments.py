"""How a batch of buffered records becomes Parquet segment files.

The Parquet files themselves are written by deltalake's writer inside the catalog commit
(so file creation and the Delta ``add`` actions come from one place); this module decides
what goes into them: rows sorted by the time column (row-group min/max then prune time
ranges finely), a ``day`` partition value per row (retention drops whole days as a
metadata-only change), zstd, dictionary encoding and statistics on.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import ColumnProperties, WriterProperties

from arrowlog.config import Settings
from arrowlog.schema import PARTITION

__all__ = ["prepare_segment", "writer_properties"]


def prepare_segment(table: pa.Table, time_column: str) -> pa.Table:
    """Sort by the time column (ties keep offset order) and add the ``day`` partition column."""
    table = table.sort_by([(time_column, "ascending"), ("_offset", "ascending")])
    day = pc.cast(table.column(time_column), pa.date32())
    return table.append_column(pa.field(PARTITION, pa.date32()), day)


def writer_properties(settings: Settings) -> WriterProperties:
    """Parquet writer settings for segments: zstd, dictionaries, page-level statistics."""
    return WriterProperties(
        compression="ZSTD",
        compression_level=3,
        max_row_group_size=settings.row_group_rows,
        default_column_properties=ColumnProperties(
            dictionary_enabled=True, statistics_enabled="PAGE"
        ),
    )
