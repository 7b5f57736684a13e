"""Daft on Ray reading a stream's Delta table on S3 (the session's SeaweedFS).

The Log writes its segments and Delta commits to ``s3://``; Daft's Ray workers read them
with an IOConfig built from the same deltalake ``storage_options`` (path-style addressing,
plain HTTP), and answer as DataFusion does.
"""

from __future__ import annotations

import pytest

pytest.importorskip("daft", reason="pip install 'arrowlog[distributed]'")
pytest.importorskip("ray", reason="pip install 'arrowlog[distributed]'")

import arrowlog
from arrowlog.config import Settings
from arrowlog.demo import DEMO_QUERIES, DEMO_STREAM, generate_web_logs
from arrowlog.distributed import daft_sql
from tests.distributed.conftest import START
from tests.distributed.test_daft_ray import assert_same

pytestmark = pytest.mark.distributed


def test_daft_reads_delta_on_s3(ray_cluster, s3_server, s3_url, tmp_path) -> None:
    settings = Settings.load(env=s3_server.env(), data_dir=tmp_path / "local", storage=s3_url)
    with arrowlog.open(settings=settings) as log:
        for table in generate_web_logs(30_000, seed=11, start=START):
            log.append(DEMO_STREAM, table)
        log.flush()
        uri = log.storage.table_uri(DEMO_STREAM)
        assert uri.startswith("s3://")
        for name in ("per_service_latency", "top_error_hosts", "histogram_1m"):
            query = DEMO_QUERIES[name]
            got = daft_sql(
                query,
                {DEMO_STREAM: uri},
                storage_options=log.storage.delta_options,
                address=ray_cluster.address,
            )
            assert_same(got, log.sql(query).to_arrow())
