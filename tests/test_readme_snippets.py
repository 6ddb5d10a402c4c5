"""README.md and docs/*.md pastes (issue 28 item 8; the guides moved from the README to docs/ in
issue 24): every ``python`` and ``bash`` block runs alone, in a fresh empty directory, as a
reader would paste it; and the pages say what the code does. The same block shown on several
pages (the Quick start is on the README, the home page and Getting started) runs, and counts,
once. docs/tutorials/*.py are not collected here: the docs build executes them.

A block may carry an HTML comment on the line before its fence:
``<!-- snippet not run: REASON -->`` (it installs, serves until stopped or needs Docker or a
cluster: REASON names what covers it instead) or ``<!-- snippet slow: WHY -->`` (it runs, under
the ``slow`` marker). Each block keeps itself CI-sized through its own small settings.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import nbody_core as nb

REPO_ROOT = Path(__file__).resolve().parent.parent
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
#: The markdown a reader pastes from: the README, then the docs pages (not the generated ones:
#: their markers are replaced at build time by text with no blocks).
PAGES = ["README.md", *sorted(path.relative_to(REPO_ROOT).as_posix() for path in (REPO_ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(
    r"^(?:<!-- snippet (?P<mark>[^>]*?) -->\n)?```(?P<language>python|bash)\n(?P<body>.*?)^```",
    re.MULTILINE | re.DOTALL,
)
#: The longest block (the Emulator's ensemble, training and simulator check) took ~4 min at load
#: ~15 on this 2-core machine; twice that, polled by subprocess.run's own timeout.
SNIPPET_TIMEOUT_S = 900


def _page(name: str) -> str:
    return (REPO_ROOT / name).read_text(encoding="utf-8")


def _blocks():
    """``(where, language, mark, body)`` of each distinct block, ``where`` its first place
    (``docs/cli.md:12``); a block repeated on another page is the same paste."""
    seen = set()
    for name in PAGES:
        text = _page(name)
        for match in BLOCK.finditer(text):
            key = (match.group("language"), match.group("body"))
            if key in seen:
                continue
            seen.add(key)
            line = text[: match.start("language")].count("\n") + 1
            yield f"{name}:{line}", match.group("language"), match.group("mark") or "", match.group("body")


def _runnable():
    params = []
    for where, language, mark, body in _blocks():
        if mark.startswith("not run:"):
            continue
        marks = [pytest.mark.slow] if mark.startswith("slow:") else []
        params.append(pytest.param(language, body, id=f"{where}-{language}", marks=marks))
    return params


def test_every_block_is_run_or_says_why_not():
    blocks = list(_blocks())
    assert len(blocks) >= 10
    for where, _, mark, _ in blocks:
        assert mark == "" or re.fullmatch(r"(not run|slow): \S.{10,}", mark), f"{where}: {mark!r}"
    # What cannot run here is the exception (counted over the README and every docs page):
    # installing, CI itself, Docker, a cluster, a server.
    not_run = [body.splitlines()[0] for _, _, mark, body in blocks if mark.startswith("not run:")]
    assert len(not_run) <= 8, not_run


@pytest.mark.parametrize(("language", "body"), _runnable())
def test_readme_block_runs_pasted_alone(language, body, tmp_path):
    env = {
        **os.environ,
        # The reader's venv: `nbody` and `python` are this interpreter's; this checkout imports.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO_ROOT),
        "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu"),
    }
    command = [sys.executable, "-c", body] if language == "python" else ["bash", "-e", "-o", "pipefail", "-c", body]
    finished = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=SNIPPET_TIMEOUT_S, check=False)
    assert finished.returncode == 0, f"{finished.stdout[-3000:]}\n{finished.stderr[-3000:]}"
    assert "Traceback" not in finished.stderr


def test_readme_says_what_the_code_does():
    intro = README[: README.index("## Quick start")].lower()
    for name in nb.INTEGRATORS:  # the intro's integrator list is complete (IAS15 was missing)
        assert name in intro, name
    pythagorean = nb.get_preset("pythagorean").integrator
    assert f"`pythagorean` defaults to the adaptive `{pythagorean}`" in _page("docs/presets.md")
    # The notebook extra exists, brings a kernel, and the dashboard guide names it.
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(requirement.startswith("ipykernel") for requirement in extras["notebook"])
    assert 'pip install -e ".[notebook]"' in _page("docs/dashboard.md")
    # The CLI example data is addressed by name, not by a path into the checkout.
    pasted = "".join(_page(name) for name in PAGES)
    assert "--ic assets/" not in pasted and "--ic example:bodies" in _page("docs/cli.md")
