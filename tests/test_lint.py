"""Lint and type checks run in CI as part of the suite (issue 24 item 4).

- ``ruff check .``: pyflakes and pycodestyle's error rules (config: ``[tool.ruff]`` in pyproject.toml);
- ``mypy nbody_core``: the core package type-checks (``[tool.mypy]``; the modules still on the
  follow-up list there are skipped by name, every other module is checked).

Each test prints the tool's findings when it fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_tool(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )


def test_ruff_check_is_clean():
    result = run_tool("ruff", "check", "--no-fix", "--output-format", "concise", ".", timeout=120)
    assert result.returncode == 0, f"ruff check found:\n{result.stdout}\n{result.stderr}"


# A cold mypy run (no .mypy_cache, as in a fresh CI clone) reads jax's and numpy's stubs: ~90 s on the
# loaded 2-core machine, ~7 s warm.
@pytest.mark.slow
def test_mypy_nbody_core_is_clean():
    result = run_tool("mypy", "nbody_core", timeout=600)
    assert result.returncode == 0, f"mypy nbody_core found:\n{result.stdout}\n{result.stderr}"
