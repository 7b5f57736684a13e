"""Every notebook runs top to bottom, shows the right numbers, and is stored without outputs."""

from __future__ import annotations

import json
from pathlib import Path

import nbclient
import nbformat
import pytest

import arrowlog
from arrowlog.demo import generate_web_logs

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _execute(name: str, tmp_path: Path) -> dict:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    # Each notebook's last cell prints a JSON summary of what it computed.
    last = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
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
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has stored outputs"


def test_embedded_analytics_notebook(tmp_path: Path) -> None:
    summary = _execute("03_embedded_analytics.ipynb", tmp_path)
    with _reference(200_000, 7, tmp_path) as ref:
        errors = ref.sql("SELECT count(*) AS c FROM http_logs WHERE level = 'ERROR'").to_arrow().column("c")[0].as_py()
    assert summary == {"rows": 200_001, "errors": errors, "replayed": 200_000, "first_new_offset": 200_000}
