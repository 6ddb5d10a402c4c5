"""The documentation site builds in strict mode, with its tutorials executed.

``mkdocs build --strict`` fails on any warning: a broken link, a docstring that does not
parse, and any tutorial cell that raises (mkdocs-jupyter executes every notebook in
docs/tutorials/ with ``allow_errors: false``; the tutorials assert their own physics:
convergence orders, gradients against finite differences, bit-identical ensembles). This test
then checks that what a reader sees on the built pages came from running the code, not from a
stale copy.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # ~2-4 min: six tutorials executed

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS = REPO_ROOT / "benchmarks" / "results"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "JAX_PLATFORMS": "cpu"}
    # Run from a temporary directory: nothing (caches, kernels' files) is written into the checkout.
    completed = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO_ROOT / "mkdocs.yml"), "-d", str(out)],
        cwd=out.parent, env=env, capture_output=True, text=True, timeout=1200,
    )
    assert completed.returncode == 0, f"mkdocs build --strict failed:\n{completed.stdout[-4000:]}\n{completed.stderr[-6000:]}"
    return out


def _text(site: Path, page: str) -> str:
    html = (site / page / "index.html").read_text(encoding="utf-8")
    return re.sub(r"<[^>]+>", " ", html)


def test_tutorials_are_executed_and_show_their_measured_results(site):
    simulate = _text(site, "tutorials/simulate")
    orders = [float(x) for x in re.findall(r"measured order\s+(-?[0-9.]+)", simulate)]
    assert len(orders) == 3, orders  # euler, leapfrog, yoshida4, each printed by the executed cell
    assert abs(orders[1] - 2) < 0.3 and abs(orders[2] - 4) < 0.5, orders
    assert "bit-identical on 1 and 2 devices: True" in _text(site, "tutorials/ensembles")
    gradients = _text(site, "tutorials/gradients")
    relative = float(re.search(r"autodiff vs finite differences:\s+([0-9.e+-]+) relative", gradients).group(1))
    assert relative < 1e-6
    for page in ("forces", "inference", "emulator"):
        assert "Traceback" not in _text(site, f"tutorials/{page}"), page


def test_api_reference_renders_the_public_functions(site):
    simulation = _text(site, "reference/simulation")
    for name in ("solve", "simulate", "Solution", "Trajectory"):
        assert re.search(rf"\b{name}\b", simulation), name
    assert "run_ensemble" in _text(site, "reference/ensembles")
    assert "make_problem" in _text(site, "reference/inference")


def test_benchmarks_page_holds_every_results_table(site):
    page = _text(site, "benchmarks")
    for path in sorted(RESULTS.glob("*.md")):
        title = next(line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#"))
        words = title.lstrip("#").strip()
        assert words.split()[0] in page and f"benchmarks/results/{path.name}" in page, path.name


def test_lessons_page_lists_every_lesson(site):
    page = _text(site, "lessons")
    for path in sorted(REPO_ROOT.glob("**/lessons/*.toml")):
        if ".venv" in path.parts:
            continue
        title = re.search(r'^title = "(.*)"', path.read_text(encoding="utf-8"), re.MULTILINE).group(1)
        assert title.split(":")[0] in page, path.name
