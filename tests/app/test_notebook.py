"""The example notebook executes headlessly without a cell error and shows the views."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "assets" / "example.ipynb"


def test_example_notebook_runs_and_displays_the_views():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # Raises CellExecutionError (naming the cell) if any cell fails.
    NotebookClient(notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "max |dE/E0|" in text and "d x_final / d vx0" in text and "figure_eight" in text
    # The embedded view and the dashboard render as Panel/Bokeh displays, not as reprs.
    rich = [o for o in outputs if o.output_type in ("display_data", "execute_result")]
    mime_types = {mime for o in rich for mime in o.get("data", {})}
    assert "application/vnd.holoviews_exec.v0+json" in mime_types
