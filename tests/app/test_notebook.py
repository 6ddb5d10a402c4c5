"""The example notebook executes headlessly without a cell error, shows the views, and its
Panel output works offline (issue 28 item 8: a classroom LAN without internet)."""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "assets" / "example.ipynb"
#: What Panel's notebook loader fetches (``js_urls = [...]``, ``css_urls``, ``js_modules``) and
#: what an HTML output fetches itself (``<script src=...>``, ``<link href=...>``, CSS ``@import``).
LOADER_LISTS = re.compile(r"\b(js_urls|css_urls|js_modules)\s*=\s*(\[[^\]]*\])")
FETCHING_TAGS = re.compile(r"<(?:script|link|img)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(https?://[^\"'\s>]+)", re.I)
CSS_IMPORTS = re.compile(r"@import\s+(?:url\()?\s*[\"']?(https?://[^\"')\s]+)", re.I)


@pytest.fixture(scope="module")
def executed():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # Raises CellExecutionError (naming the cell) if any cell fails.
    NotebookClient(notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]


def test_example_notebook_runs_and_displays_the_views(executed):
    outputs = executed
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "max |dE/E0|" in text and "d x_final / d vx0" in text and "figure_eight" in text
    # The embedded view and the dashboard render as Panel/Bokeh displays, not as reprs.
    rich = [o for o in outputs if o.output_type in ("display_data", "execute_result")]
    mime_types = {mime for o in rich for mime in o.get("data", {})}
    assert "application/vnd.holoviews_exec.v0+json" in mime_types


def test_example_notebook_output_loads_nothing_from_the_network(executed):
    """``pn.extension(inline=True)``: BokehJS and Panel's JavaScript travel inside the output, so
    the saved notebook renders with no internet (plain ``pn.extension()`` lists cdn.bokeh.org and
    cdn.holoviz.org in ``js_urls``)."""
    fetched, loader_lists = [], 0
    for output in executed:
        for mime, data in output.get("data", {}).items():
            if not isinstance(data, str):
                continue
            for match in LOADER_LISTS.finditer(data):
                loader_lists += 1
                fetched += [f"{match.group(1)}: {url}" for url in re.findall(r"[\"'](https?://[^\"']+)", match.group(2))]
            if mime == "text/html":
                fetched += [f"{mime}: {url}" for url in FETCHING_TAGS.findall(data) + CSS_IMPORTS.findall(data)]
    assert loader_lists > 0, "no Panel loader in the outputs: did pn.extension() run?"
    assert fetched == []
