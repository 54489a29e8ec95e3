"""The analysis notebooks run top to bottom on the smoke study, in the venv's kernel."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from smoke_study import SmokeStudy

NOTEBOOKS = Path(__file__).resolve().parents[2] / "analysis" / "notebooks"
KERNEL = "python3"
CELL_TIMEOUT_S = 300


def _outputs_of_type(notebook: nbformat.NotebookNode, mime: str) -> int:
    return sum(
        mime in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


@pytest.mark.parametrize(
    ("name", "figures"), [("phase_boundary.ipynb", 2), ("paper_figures.ipynb", 6)]
)
def test_notebook_runs_on_the_smoke_study(
    name: str, figures: int, smoke_study: SmokeStudy, tmp_path: Path
) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells), "saved without outputs"
    parameters = notebook.cells[0]
    assert "parameters" in parameters.metadata.get("tags", [])
    assert "study_name" in parameters.source and "tracking_uri" in parameters.source
    parameters.source = (
        f"study_name = {smoke_study.name!r}\ntracking_uri = {smoke_study.tracking_uri!r}\n"
    )
    notebook.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))
    client = NotebookClient(
        notebook,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    assert notebook.cells[-1].outputs[0]["text"].strip() == sys.executable, "the venv's kernel"
    assert _outputs_of_type(notebook, "image/png") == figures
    if name == "phase_boundary.ipynb":  # the report's boundary table, not a shorter one
        [table] = [cell for cell in notebook.cells if "boundary_table(boundaries)" in cell.source]
        shown = "".join(output.get("data", {}).get("text/html", "") for output in table.outputs)
        assert all(column in shown for column in ("pooled over", "expected error", "band area"))
