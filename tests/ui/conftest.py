"""Real-browser fixtures: the real app served by ``panel serve app`` in a subprocess.

``app_url`` (session scope) starts ``python -m panel serve app`` on a free loopback port,
polls ``/liveness`` and terminates the server by PID at teardown. ``app_page`` is
pytest-playwright's ``page`` opened on the app with its Bokeh document loaded; ``open_app(query,
tab=...)`` opens it with a query string; ``ui`` bundles wait/read helpers. Headless
Chromium is Debian's ``/usr/bin/chromium`` (``playwright install`` cannot download here).
Every test in this directory gets the ``ui`` marker and runs in the one "browser" xdist group.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO_ROOT / "test-results"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVER_START_TIMEOUT_S = 90.0
PAGE_LOAD_TIMEOUT_MS = 60_000
BROWSER_RERUNS = 1
BROWSER_RERUN_DELAY_S = 5


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.ui)
            # Under pytest-xdist (``--dist loadgroup``, the suite's default) every browser test runs
            # on one worker, one after another, against that worker's one served app; the other
            # worker runs the rest of the suite beside them.
            item.add_marker(pytest.mark.xdist_group("browser"))
            # One rerun (pytest-rerunfailures) for a browser test, none for any other: these share
            # the machine's two cores with the other workers' JAX compiles, the served app and
            # Chromium, and a wait on a page is the one kind of check whose outcome can depend on
            # that load (Panel's own UI suite reruns its browser tests for the same reason). A
            # test that fails twice fails; every rerun is listed in the CI log ("RERUN", -rR).
            item.add_marker(pytest.mark.flaky(reruns=BROWSER_RERUNS, reruns_delay=BROWSER_RERUN_DELAY_S))


_QUIET_MARKS = (b"INFO", b"DEBUG")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing browser test carries the served app's recent warnings and errors (its log goes
    to test-results/panel-serve.log, which CI does not show): a callback that raised on the
    server is then named in the failure, not only the page that stopped changing."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    log_path = RESULTS_DIR / "panel-serve.log"
    try:
        lines = log_path.read_bytes().splitlines()[-4000:]
    except OSError:
        return
    # Everything but the INFO/DEBUG lines: warnings, errors and their tracebacks.
    picked = [line for line in lines if line.strip() and not any(mark in line for mark in _QUIET_MARKS)][-60:]
    if picked:
        report.sections.append(("served app log (warnings, errors, tracebacks: last 60 lines)",
                                b"\n".join(picked).decode("utf-8", "replace")))


def free_port() -> int:
    """A free loopback TCP port (bind port 0 and release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_liveness(url: str, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"panel serve exited early with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/liveness", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"panel serve did not answer {url}/liveness within {timeout_s} s")


def start_app_server(port: int, *, log_path: Path, extra_env: dict | None = None) -> subprocess.Popen:
    """Start ``python -m panel serve app`` on ``port`` (caller terminates it by PID)."""
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu"), **(extra_env or {})}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process below
    process = subprocess.Popen(
        [
            sys.executable, "-m", "panel", "serve", "app",
            "--port", str(port), "--address", "127.0.0.1",
            "--allow-websocket-origin", f"127.0.0.1:{port}",
            "--liveness", "--num-procs", "1", "--plugins", "nbody_explorer.runtime.health",  # /health, as nbody serve has it
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    process._nbody_log = log  # type: ignore[attr-defined]
    return process


def stop_app_server(process: subprocess.Popen) -> None:
    """Terminate the server started by :func:`start_app_server` (by its PID)."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    process._nbody_log.close()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """``(url, process)`` of the real app served on a free loopback port for this session."""
    port = free_port()
    cache_dir = tmp_path_factory.mktemp("jax-cache")
    log_path = RESULTS_DIR / "panel-serve.log"
    # Every UI test opens its own pages on this one server: no session cap in the way.
    process = start_app_server(
        port, log_path=log_path, extra_env={"NBODY_JAX_CACHE_DIR": str(cache_dir), "NBODY_MAX_SESSIONS": "1000",
                                        "NBODY_MAX_SESSIONS_PER_ADDRESS": "0"}
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_liveness(url, process, SERVER_START_TIMEOUT_S)
        yield url, process
    finally:
        stop_app_server(process)


@pytest.fixture(scope="session")
def app_url(app_server) -> str:
    """URL of the served dashboard, e.g. ``http://127.0.0.1:PORT/app``."""
    return f"{app_server[0]}/app"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [*browser_type_launch_args.get("args", []), *CHROMIUM_FLAGS],
    }


def wait_for_bokeh_document(page, timeout_ms: int = PAGE_LOAD_TIMEOUT_MS) -> None:
    """Wait until the page's Bokeh document exists and has its roots."""
    page.wait_for_function(
        "() => window.Bokeh && Bokeh.documents && Bokeh.documents.length > 0"
        " && Bokeh.documents[0].roots().length > 0",
        timeout=timeout_ms,
    )


def wait_for_model(page, name: str, timeout_ms: int = PAGE_LOAD_TIMEOUT_MS) -> None:
    """Wait until a Bokeh model called ``name`` is in the page's document."""
    page.wait_for_function(
        "(name) => window.Bokeh && Bokeh.documents.length > 0"
        " && Bokeh.documents[0].get_model_by_name(name) !== null",
        arg=name,
        timeout=timeout_ms,
    )


def source_length(page, name: str, column: str) -> int:
    """Length of ``column`` of the ColumnDataSource called ``name`` in the page."""
    return page.evaluate(
        "([name, column]) => {"
        " const m = Bokeh.documents[0].get_model_by_name(name);"
        " return m ? m.data[column].length : -1; }",
        [name, column],
    )


def scene_positions(page, name: str = "simulate-scene") -> list[list[float]]:
    """``[n, 3]`` positions of the last frame the page's orbit scene received ([] before one)."""
    return page.evaluate(
        "(name) => (window.nbodyScenes && window.nbodyScenes[name]) ? window.nbodyScenes[name].positions() : []", name)


def wait_for_scene_bodies(page, n: int, name: str = "simulate-scene", timeout_ms: int = PAGE_LOAD_TIMEOUT_MS) -> None:
    """Wait until the page's orbit scene shows ``n`` bodies."""
    page.wait_for_function(
        "([name, n]) => window.nbodyScenes && window.nbodyScenes[name] && window.nbodyScenes[name].numBodies() === n",
        arg=[name, n], timeout=timeout_ms)


@pytest.fixture
def open_app(page, app_url):
    """Open the dashboard (optionally with a query string) and wait for its document."""

    def _open(query: str = "", *, tab: str | None = None):
        page.goto(f"{app_url}{query}", timeout=PAGE_LOAD_TIMEOUT_MS)
        wait_for_bokeh_document(page)
        if tab is not None:
            page.get_by_role("tab", name=tab).click()
        return page

    return _open


@pytest.fixture(scope="session")
def ui():
    """Helpers for tests: ``ui.wait_for_model(page, name)``, ``ui.source_length(page, name,
    column)``, ``ui.wait_for_bokeh_document(page)``, ``ui.scene_positions(page)``,
    ``ui.wait_for_scene_bodies(page, n)``, ``ui.results_dir`` (test-results/)."""
    RESULTS_DIR.mkdir(exist_ok=True)
    return SimpleNamespace(
        wait_for_model=wait_for_model,
        source_length=source_length,
        wait_for_bokeh_document=wait_for_bokeh_document,
        scene_positions=scene_positions,
        wait_for_scene_bodies=wait_for_scene_bodies,
        results_dir=RESULTS_DIR,
    )


@pytest.fixture
def app_page(open_app):
    """pytest-playwright's ``page`` on the served dashboard, document loaded."""
    return open_app()


# [left, top, right, bottom] (CSS px) of the orbit scene's canvas or of the Bokeh model's view called `name`.
MODEL_BOX = """(name) => {
  const scene = window.nbodyScenes && window.nbodyScenes[name];
  if (scene) { const c = scene.canvas.getBoundingClientRect(); return [c.left, c.top, c.right, c.bottom]; }
  const model = Bokeh.documents[0].get_model_by_name(name);
  const view = model ? Bokeh.index.find_one(model) : null;
  if (!view || !view.el) return null;
  const b = view.el.getBoundingClientRect();
  return [b.left, b.top, b.right, b.bottom];
}"""
