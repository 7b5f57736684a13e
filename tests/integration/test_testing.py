"""``arrowlog.testing.serve``: a background server that answers, stops cleanly, leaves nothing."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pyarrow.flight as flight
import pytest

from arrowlog.testing import serve


def test_serve_answers_with_its_settings_and_cleans_up_after_itself() -> None:
    with serve(token="a-token-of-ours", max_body_bytes=100) as server:
        assert server.flight_url.startswith("grpc://127.0.0.1:")
        assert server.http_url.startswith("http://127.0.0.1:")
        assert server.token == "a-token-of-ours" and server.running
        with server.connect() as client:
            assert client.append("s", [{"n": 1}, {"n": 2}]).accepted == 2
        headers = {
            "Authorization": "Bearer a-token-of-ours",
            "Content-Type": "application/x-ndjson",
        }
        r = httpx.post(
            f"{server.http_url}/v1/streams/s/records", content=b" " * 101, headers=headers
        )
        assert r.status_code == 413  # max_body_bytes reached the server
        base = server.data_dir.parent
        assert base.is_dir()
    assert not server.running
    assert not base.exists()  # the temporary directory went with the server
    assert "flight listening on grpc://127.0.0.1:" in server.output()  # the output stays


def test_a_given_data_dir_is_kept_and_reused_after_a_kill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = serve(data, log_dir=tmp_path / "logs-1")
    with first.connect() as client:
        client.append("s", [{"n": 1}])
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    with serve(data, log_dir=tmp_path / "logs-2") as again, again.connect() as client:
        assert client.sql("SELECT count(*) AS c FROM s").to_arrow().to_pylist() == [{"c": 1}]
    assert (tmp_path / "logs-1" / "stderr.log").exists() and data.is_dir()


def test_a_failed_start_raises_with_the_server_output(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="exited with code 1") as info:
        serve(tmp_path / "data", log_dir=tmp_path / "logs", flush_rows="many")
    assert "flush_rows" in str(info.value)  # the server's own message, from its stderr


def test_unknown_settings_are_refused_before_anything_starts() -> None:
    with pytest.raises(TypeError, match="flush_rowz"):
        serve(flush_rowz=1)


def test_tls_settings_reach_both_listeners(tmp_path: Path) -> None:
    from tests.conftest import self_signed_cert

    cert, key = self_signed_cert(tmp_path / "tls")
    with serve(tls_cert=cert, tls_key=key) as server:
        assert server.http_url.startswith("https://")
        assert server.tls_cert == cert
        with server.connect() as client:
            assert client.sql("SELECT 7 AS x").to_arrow().to_pylist() == [{"x": 7}]
        untrusted = flight.FlightClient(server.flight_url)
        with pytest.raises(flight.FlightUnavailableError):
            list(untrusted.list_actions())
        untrusted.close()
