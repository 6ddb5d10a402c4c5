"""`nbody serve` in headless Chromium (issue 16 points 3, 5 and 9; issue 11's session cap).

One server for the module, started with ``nbody serve --max-sessions 3`` on a free loopback
port: signed session ids (a guessed or shared ``?bokeh-session-id=`` joins nothing, in two
separate browser contexts), a 4301-digit query value gives a working page with a message,
the session readout in the header, the friendly page past the cap, and ``/health``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO_ROOT / "test-results"
PAGE_LOAD_TIMEOUT_MS = 60_000
SERVER_START_TIMEOUT_S = 90.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_liveness(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"nbody serve exited early with code {process.returncode}"
        try:
            with urllib.request.urlopen(f"{url}/liveness", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        try:
            process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
    raise RuntimeError(f"nbody serve did not answer {url}/liveness within {SERVER_START_TIMEOUT_S} s")


CAP = 4  # the cap test counts the sessions the other tests left open


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    port = _free_port()
    env = {
        **os.environ, "JAX_PLATFORMS": "cpu", "NBODY_MAX_SESSIONS": "1000",  # the flag must win
        "NBODY_JAX_CACHE_DIR": str(tmp_path_factory.mktemp("jax-cache")),
    }
    for variable in ("BOKEH_SECRET_KEY", "NBODY_SECRET_KEY", "BOKEH_SIGN_SESSIONS"):
        env.pop(variable, None)  # no key configured: nbody serve makes one
    RESULTS_DIR.mkdir(exist_ok=True)
    log = open(RESULTS_DIR / "nbody-serve.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from nbody_core.cli import main; sys.exit(main())",
         "serve", "--port", str(port), "--max-sessions", str(CAP)],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_liveness(url, process)
        yield url
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        log.close()


def test_health_answers_json_beside_liveness(served):
    """`nbody serve` loads the /health plugin (app/runtime/health.py); with nothing computing
    it says healthy, with the queue, slots and memory (its unhealthy answer: tests/app/test_health.py)."""
    import json

    with urllib.request.urlopen(f"{served}/health", timeout=30) as response:
        assert response.status == 200 and response.headers["Content-Type"] == "application/json"
        body = json.load(response)
    assert body["status"] == "healthy" and body["slots"] == 2 and body["piece_bound_s"] == 5.0
    assert body["queue"]["total"] == 0 and body["oldest_piece_s"] == 0.0 and body["rss_mib"] > 0


def test_a_guessed_or_shared_session_id_joins_nothing(browser, served):
    # Unsigned sessions let the second browser see and drive the first one's simulation.
    statuses = []
    for _ in range(2):  # two separate browsers (contexts share no cookies or storage)
        context = browser.new_context()
        try:
            page = context.new_page()
            response = page.goto(f"{served}/app?bokeh-session-id=shared-classroom-id", timeout=PAGE_LOAD_TIMEOUT_MS)
            statuses.append(response.status)
            assert page.evaluate("() => !(window.Bokeh && Bokeh.documents && Bokeh.documents.length)")
        finally:
            context.close()
    assert statuses == [403, 403]


def test_a_4301_digit_query_value_gives_a_working_page_and_a_message(browser, served, ui):
    context = browser.new_context()
    try:
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{served}/app?utm_id={'7' * 4301}", timeout=PAGE_LOAD_TIMEOUT_MS)
        ui.wait_for_bokeh_document(page)
        page.get_by_text("Ignored link values with more digits than a number may have").first.wait_for()
        page.get_by_text("utm_id").first.wait_for()
        page.locator(".bk-tab", has_text="Simulate").first.wait_for()
        page.get_by_text("Sessions:").first.wait_for()
        assert errors == []
    finally:
        context.close()


def test_an_upload_over_the_cap_is_refused_in_the_browser_and_the_session_lives(browser, served, ui):
    # 12 MB: over the 1 MB upload cap and over the 10 MiB websocket message cap, so sending
    # it would close the websocket (issue 16: a 50 MB file left a dead page with no message).
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{served}/app", timeout=PAGE_LOAD_TIMEOUT_MS)
        ui.wait_for_model(page, "simulate-history")
        page.get_by_text("paused", exact=True).wait_for(timeout=PAGE_LOAD_TIMEOUT_MS)  # built and compiled
        name = "<b>huge</b>.csv"
        page.locator("input[type=file]").set_input_files(
            files=[{"name": name, "mimeType": "text/csv", "buffer": b"m,x,y,z,vx,vy,vz\n" + b"1" * 12_000_000}]
        )
        alert = page.locator("#nbody-upload-refused")
        alert.wait_for()
        text = alert.text_content()
        assert f"Not uploaded: \u201c{name}\u201d is 12.0 MB; this server accepts files up to 1.00 MB" in text
        assert alert.locator("b").count() == 0  # the name is text, not HTML
        # The websocket is still open: the server still answers a Step.
        before = page.evaluate("() => Bokeh.documents[0].get_model_by_name('simulate-history').data.t.length")
        page.get_by_role("button", name="Step").click()
        page.wait_for_function(
            "(n) => Bokeh.documents[0].get_model_by_name('simulate-history').data.t.length > n", arg=before
        )
    finally:
        context.close()


def test_past_the_cap_a_new_browser_gets_the_full_page(browser, served, ui):
    contexts = []
    try:
        full = None
        for _ in range(CAP + 1):  # earlier tests' sessions may still be counted
            context = browser.new_context()
            contexts.append(context)
            page = context.new_page()
            page.goto(f"{served}/app", timeout=PAGE_LOAD_TIMEOUT_MS)
            ui.wait_for_bokeh_document(page)
            page.locator(".bk-tab").or_(page.get_by_text("The dashboard is full right now")).first.wait_for(
                timeout=PAGE_LOAD_TIMEOUT_MS
            )
            if page.get_by_text("The dashboard is full right now").count():
                full = page
                break
            admitted = page
        assert full is not None, f"no full page after {CAP + 1} sessions with a cap of {CAP}"
        full.get_by_text(f"{CAP} of {CAP} sessions are in use").first.wait_for()
        assert full.locator(".bk-tab").count() == 0  # no dashboard was built for it
        admitted.get_by_text(f"Sessions: {CAP} / {CAP}").first.wait_for(timeout=15_000)
        full.screenshot(path=str(RESULTS_DIR / "sessions-full.png"))
    finally:
        for context in contexts:
            context.close()

