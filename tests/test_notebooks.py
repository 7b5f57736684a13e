"""Every notebook runs top to bottom, shows the right numbers, and is stored without outputs."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import nbclient
import nbformat
import pandas as pd
import pyarrow as pa
import pytest

import arrowlog
import arrowlog.testing
from arrowlog.demo import generate_web_logs

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _execute(name: str, tmp_path: Path) -> dict:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    # Each notebook's last cell prints a JSON summary of what it computed.
    last = "".join(
        o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream"
    )
    return json.loads(last.strip().splitlines()[-1])


def _reference(rows: int, seed: int, tmp_path: Path) -> arrowlog.Log:
    log = arrowlog.open(tmp_path / "reference")
    for batch in generate_web_logs(rows, seed=seed):
        log.append("http_logs", batch)
    return log


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name} has stored outputs"
            )


def test_embedded_analytics_notebook(tmp_path: Path) -> None:
    summary = _execute("03_embedded_analytics.ipynb", tmp_path)
    with _reference(200_000, 7, tmp_path) as ref:
        errors = (
            ref.sql("SELECT count(*) AS c FROM http_logs WHERE level = 'ERROR'")
            .to_arrow()
            .column("c")[0]
            .as_py()
        )
    assert summary == {
        "rows": 200_001,
        "errors": errors,
        "replayed": 200_000,
        "first_new_offset": 200_000,
    }


# -- 01 and 02: notebooks that start their own server ----------------------------------------

DEMO_START = datetime(2026, 11, 22, 12, tzinfo=UTC)  # the fixed day 01 and 02 load


def _kernel_env(**extra: str) -> dict[str, str]:
    """This environment without ``ARROWLOG_*`` (a developer's ARROWLOG_FLIGHT_URL would
    point the notebooks at their server), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARROWLOG_")}
    return {**env, **extra}


def _execute_with_server(name: str, tmp_path: Path) -> dict:
    """Run a notebook that starts its own server, from a folder of its own (nothing beside it).

    The kernel's TMPDIR is ``tmp_path``, so the server's data directory (and its command
    line) lands under it; afterwards no process may still mention it.
    """
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    workdir = tmp_path / "opened-here"
    workdir.mkdir()
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    try:
        client.execute(env=_kernel_env(TMPDIR=str(tmp_path)))
    finally:
        leftovers = _processes_mentioning(str(tmp_path))
        assert not leftovers, f"{name} left processes behind: {leftovers}"
    last = "".join(
        o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream"
    )
    return json.loads(last.strip().splitlines()[-1])


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain ``text`` (Linux /proc; [] elsewhere)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended while we looked
            continue
        if text in args:
            found.append(f"{cmdline.parent.name}: {args.strip()}")
    return found


def _demo_frame(rows: int, seed: int) -> pd.DataFrame:
    """The demo records the notebooks load, straight from the generator (no arrowlog)."""
    return pa.concat_tables(generate_web_logs(rows, seed=seed, start=DEMO_START)).to_pandas()


def _reference_at(rows: int, seed: int, tmp_path: Path) -> arrowlog.Log:
    """An embedded log holding the same records as the notebooks' servers."""
    log = arrowlog.open(tmp_path / "reference_at")
    for batch in generate_web_logs(rows, seed=seed, start=DEMO_START):
        log.append("http_logs", batch)
    return log


def _rows(log: arrowlog.Log, sql: str) -> list[dict]:
    return log.sql(sql).to_arrow().to_pylist()


def test_quickstart_notebook(tmp_path: Path) -> None:
    summary = _execute_with_server("01_quickstart.ipynb", tmp_path)
    with _reference_at(200_000, 7, tmp_path) as ref:
        levels = _rows(ref, "SELECT level, count(*) AS n FROM http_logs GROUP BY level")
        errors = _rows(
            ref,
            "SELECT service, count(*) AS n FROM http_logs WHERE level = 'ERROR' GROUP BY service",
        )
        top = _rows(
            ref,
            "SELECT host, count(*) AS n FROM http_logs WHERE level = 'ERROR' GROUP BY host ORDER BY n DESC, host LIMIT 1",
        )
    assert summary == {
        "rows": 200_000,
        "levels": {r["level"]: r["n"] for r in levels},
        "adbc_matches_client": True,
        "errors_by_service": {r["service"]: r["n"] for r in errors},
        "top_error_host": [top[0]["host"], top[0]["n"]],
        "server_exit_code": 0,
    }
    assert list(summary["levels"].values()) == sorted(summary["levels"].values(), reverse=True)


def test_incident_investigation_notebook(tmp_path: Path) -> None:
    summary = _execute_with_server("02_incident_investigation.ipynb", tmp_path)
    df = _demo_frame(200_000, 7)
    df["error"] = df["level"] == "ERROR"
    df["bucket"] = df["ts"].dt.floor("5min")

    # The spike: the 5-minute bucket with the most errors (the earliest on a tie).
    per_bucket = df.groupby("bucket")["error"].sum()
    spike_start = per_bucket[per_bucket == per_bucket.max()].index.min()
    in_spike = df[df["bucket"] == spike_start].groupby("service")["error"].sum()
    spike_service = in_spike[in_spike == in_spike.max()].index.min()
    # The incident: the run of buckets around the spike where that service's error rate > 20%.
    rate = df[df["service"] == spike_service].groupby("bucket")["error"].mean()
    hot = rate > 0.20
    runs = (hot != hot.shift()).cumsum()
    run = rate.index[hot & (runs == runs[spike_start])]
    incident = (run.min(), run.max() + pd.Timedelta(minutes=5))

    def window(start: pd.Timestamp, end: pd.Timestamp) -> str:
        return f"ts >= '{start.isoformat()}' AND ts < '{end.isoformat()}'"

    errors = "SELECT count(*) AS n FROM http_logs WHERE level = 'ERROR'"
    with _reference_at(200_000, 7, tmp_path) as ref:
        spike_errors = _rows(
            ref, f"{errors} AND {window(spike_start, spike_start + pd.Timedelta(minutes=5))}"
        )[0]["n"]
        incident_errors = _rows(
            ref, f"{errors} AND service = '{spike_service}' AND {window(*incident)}"
        )[0]["n"]
        top_host = _rows(
            ref,
            "SELECT host, count(*) AS n FROM http_logs WHERE level = 'ERROR' "
            "GROUP BY host ORDER BY n DESC, host LIMIT 1",
        )[0]
        top_endpoint = _rows(
            ref,
            "SELECT service, endpoint, count(*) AS n FROM http_logs WHERE level = 'ERROR' "
            "GROUP BY service, endpoint ORDER BY n DESC, service, endpoint LIMIT 1",
        )[0]

    # Exact p99 with linear interpolation, as percentile_cont. DataFusion 55 rounds the
    # interpolation fraction to 6 digits (p99 of [0, 1, 2, 10] is 9.759992, not 9.76): hence
    # rel=1e-6, far tighter than any other percentile or an approximate one would land.
    p99 = df.groupby("service")["latency_ms"].quantile(0.99)
    assert summary.pop("p99_ms") == pytest.approx(p99.to_dict(), rel=1e-6)
    assert pd.Timestamp(summary.pop("spike_start")) == spike_start
    assert [pd.Timestamp(t) for t in summary.pop("incident")] == list(incident)
    assert summary == {
        "rows": 200_000,
        "spike_errors": spike_errors,
        "spike_service": spike_service,
        "spike_service_errors": int(in_spike[spike_service]),
        "incident_errors": incident_errors,
        "top_host": [top_host["host"], top_host["n"]],
        "top_endpoint": [top_endpoint["service"], top_endpoint["endpoint"], top_endpoint["n"]],
        "tailed_offsets": [200_000, 200_001, 200_002, 200_003, 200_004],
        "acked_offsets": [200_000, 200_001, 200_002, 200_003, 200_004],
        "server_exit_code": 0,
    }
    assert int(per_bucket.max()) == spike_errors  # pandas and SQL agree on the spike's size


# -- a server of yours: ARROWLOG_FLIGHT_URL --------------------------------------------------

CHECK_CELL = """
answer = arrowlog.connect(FLIGHT_URL, os.environ.get("ARROWLOG_TOKEN")).sql(
    "SELECT count(*) AS n FROM http_logs"
)
print(json.dumps({"started": server is not None, "rows": answer.to_arrow().column("n")[0].as_py()}))
"""


@pytest.mark.parametrize(
    ("name", "setup"),
    [
        ("01_quickstart.ipynb", [1, 3]),  # imports and the server; the load
        ("02_incident_investigation.ipynb", [1]),  # imports, the server and the load
    ],
)
def test_notebooks_use_the_server_in_arrowlog_flight_url(
    name: str, setup: list[int], tmp_path: Path
) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    with arrowlog.testing.serve(tmp_path / "data", token="notebook-token") as server:
        check = CHECK_CELL.replace("FLIGHT_URL", repr(server.flight_url))
        nb.cells = [nb.cells[i] for i in setup] + [nbformat.v4.new_code_cell(check)]
        env = _kernel_env(ARROWLOG_FLIGHT_URL=server.flight_url, ARROWLOG_TOKEN="notebook-token")
        nbclient.NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute(env=env)
        out = "".join(o.get("text", "") for o in nb.cells[-1].outputs if "text" in o)
        assert json.loads(out.strip().splitlines()[-1]) == {"started": False, "rows": 200_000}
