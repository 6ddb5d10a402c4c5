"""Build the project's wheel from a copy of its sources (the build leaves nothing in the
working tree): shared by the packaging test and the installed-wheel browser test."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
#: What the wheel is built from: pyproject.toml's packages live in these folders.
SOURCE_FILES = ("pyproject.toml", "README.md")
SOURCE_FOLDERS = ("nbody_core", "app")


def build_wheel(tmp_path: Path) -> tuple[Path, Path]:
    """``(wheel, source)``: the wheel built with ``pip wheel --no-deps`` from a copy of the
    sources under ``tmp_path/src`` (returned too, to compare the wheel with)."""
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCE_FILES:
        shutil.copy(REPO_ROOT / name, source / name)
    for folder in SOURCE_FOLDERS:
        shutil.copytree(REPO_ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("nbody_explorer-*.whl")
    return wheel, source
