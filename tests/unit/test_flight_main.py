"""``python -m flight_server`` is ``arrowlog serve`` under another name: the same command."""

from __future__ import annotations

import subprocess
import sys


def _help(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", *args, "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_python_m_flight_server_is_arrowlog_serve() -> None:
    alias = _help("flight_server")
    assert alias.startswith("Usage: arrowlog serve [OPTIONS]")
    assert alias == _help("arrowlog", "serve")
