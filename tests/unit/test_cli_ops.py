"""The CLI's operational commands in-process: settings, local tail, option checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import arrowlog
from arrowlog.cli import main
from arrowlog.config import settings_markdown


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.startswith("ARROWLOG_")]:
        monkeypatch.delenv(var)


def test_settings_markdown_is_the_readme_table() -> None:
    result = CliRunner().invoke(main, ["settings", "--markdown"])
    assert result.exit_code == 0, result.output
    assert result.stdout == settings_markdown()


def test_settings_shows_values_but_not_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARROWLOG_TOKEN", "hush-hush")
    monkeypatch.setenv("ARROWLOG_HTTP_PORT", "9999")
    result = CliRunner().invoke(main, ["settings"])
    assert result.exit_code == 0, result.output
    assert "http_port = 9999   (changed)" in result.stdout
    assert "token = <set>" in result.stdout
    assert "hush-hush" not in result.stdout


def test_local_tail_prints_ndjson_from_an_offset(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with arrowlog.open(data) as log:
        log.append("events", [{"n": i} for i in range(10)])
    result = CliRunner().invoke(
        main, ["tail", "events", "--from-offset", "7", "--limit", "2", "--data-dir", str(data)]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["n"], r["_offset"]) for r in rows] == [(7, 7), (8, 8)]


def test_tail_of_a_missing_stream_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["tail", "nope", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 1
    assert result.stderr == "Error: stream 'nope' not found\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["query", "SELECT 1", "--server", "grpc://127.0.0.1:1", "--data-dir", "d"],
            "--data-dir and --server exclude each other: pass one",
        ),
        (
            ["query", "SELECT 1", "--server", "grpc://127.0.0.1:1", "--engine", "duckdb"],
            "--engine duckdb needs a local --data-dir: servers run DataFusion",
        ),
    ],
)
def test_remote_option_misuse(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_serve_refuses_half_a_tls_pair(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not really a certificate")
    result = CliRunner().invoke(
        main, ["serve", "--data-dir", str(tmp_path / "d"), "--tls-cert", str(cert)]
    )
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: settings tls_cert and tls_key go together: set both or neither\n"
    )
