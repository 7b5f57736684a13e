"""SQL over streams: one snapshot per stream a query reads, one plan over the data.

Every stream is a table of the same name. A query sees every record acknowledged before
it was planned (read-your-writes): its live segments plus its durable buffer.

Modules, in the order a query meets them:

- ``engine.py``: the one dispatch by engine name, in this process or a worker;
- ``policy.py``: what SQL is accepted (read-only, operator limit), the tokenizer, the
  parameter binders;
- ``limits.py``: ``query_timeout`` and ``query_memory_limit``;
- ``catalog.py``: the streams as DataFusion's ``arrowlog.public`` schema;
- ``datafusion_engine.py`` (schema-only planning, then one plan over the data),
  ``filters.py`` (pushed filters as pyarrow expressions, for pruning),
  ``duckdb_engine.py``, ``daft_engine.py``;
- ``workers.py``, ``worker_main.py``, ``framing.py``: the query worker processes;
- ``result.py``: ``QueryResult``.
"""

from __future__ import annotations

from arrowlog.sql.result import QueryResult

__all__ = ["QueryResult"]
