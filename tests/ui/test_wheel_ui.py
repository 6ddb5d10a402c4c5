"""The wheel stands alone (issue 24): built from the sources and installed into a fresh virtual
environment in a temporary directory, with no checkout on its path, it gives ``nbody`` and
``nbody serve`` serves the dashboard at ``/app``, lessons included, in Chromium.

The environment installs at the versions of ``requirements.lock`` (what the Docker image
installs), so the packages come from pip's cache after the first run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from tests.ui.conftest import REPO_ROOT, RESULTS_DIR, SERVER_START_TIMEOUT_S, free_port
from tests.ui.conftest import wait_for_bokeh_document, wait_for_liveness
from wheel_build import build_wheel

#: pip's own limit for a fresh environment from its cache here is ~1 minute; 15 minutes means a
#: registry that does not answer.
INSTALL_TIMEOUT_S = 900


def _lesson_titles() -> set[str]:
    return {tomllib.loads(p.read_text(encoding="utf-8"))["title"] for p in (REPO_ROOT / "app" / "lessons").glob("*.toml")}


def test_the_wheel_installed_alone_serves_the_dashboard_with_its_lessons(tmp_path, page):
    wheel, _ = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        assert not any(name.startswith("app/") for name in archive.namelist())
    home = tmp_path / "home"  # the user's directory: the served link to the package goes under it
    home.mkdir()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python, nbody = venv / "bin" / "python", venv / "bin" / "nbody"
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "JAX_PLATFORMS": "cpu",
            "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))}
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--constraint", str(REPO_ROOT / "requirements.lock"), str(wheel)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    # The packages come from the environment, not from a checkout; there is no top-level `app`.
    where = subprocess.run(
        [str(python), "-c", "import importlib.util, nbody_core, nbody_explorer; "
         "print(nbody_explorer.__file__); print(importlib.util.find_spec('app'))"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=True,
    ).stdout.split()
    assert Path(where[0]).is_relative_to(venv), where
    assert where[1] == "None", where
    presets = subprocess.run([str(nbody), "presets"], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=300, check=True)
    assert "figure_eight" in presets.stdout

    port = free_port()
    log_path = RESULTS_DIR / "wheel-serve.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        server = subprocess.Popen([str(nbody), "serve", "--port", str(port)], cwd=tmp_path, env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_liveness(url, server, SERVER_START_TIMEOUT_S)
            page.goto(f"{url}/app")
            wait_for_bokeh_document(page)
            page.locator(".bk-tab", has_text="Lessons").first.click()
            picker = page.get_by_role("combobox", name="Lesson")
            picker.wait_for(timeout=120_000)
            options = set(picker.locator("option").all_inner_texts())
            assert options == _lesson_titles(), options  # read from the wheel's package data
            # The served folder is a link named `app` to the installed package (URL /app).
            link = home / ".cache" / "nbody-explorer" / "app"
            assert link.is_symlink() and link.resolve() == Path(where[0]).parent.resolve()
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=30)
