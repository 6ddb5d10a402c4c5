"""``nbody serve`` as a user pastes and runs it (issue 28 items 6 and 8).

``--dry-run`` prints a line that serves when pasted into a shell (the secret key and every
setting that travels as an environment variable included); a second ``nbody serve`` on a
busy port says so in one line before any banner.
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

from nbody_core.cli import main

REPO_ROOT = Path(__file__).resolve().parents[3]
#: A served app answers /liveness in ~2 s on a quiet machine (NOTES.md); the shared CI machine
#: runs at load 8-20, so the wait is generous (polled, never slept through).
START_TIMEOUT_S = 120.0
CLI = [sys.executable, "-c", "import sys; from nbody_core.cli import main; sys.exit(main())"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment() -> dict[str, str]:
    """This interpreter's scripts first on PATH (the `panel` a user's venv puts there) and this
    checkout importable (the line names its app directory and the nbody_explorer.runtime.health plugin)."""
    env = {k: v for k, v in os.environ.items() if k not in ("BOKEH_SECRET_KEY", "NBODY_SECRET_KEY")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # its own session: the shell and what it started
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


def test_dry_run_prints_a_line_that_serves_as_printed(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("BOKEH_SECRET_KEY", raising=False)
    monkeypatch.delenv("NBODY_SECRET_KEY", raising=False)
    port = _free_port()
    assert main(["serve", "--port", str(port), "--max-sessions", "7", "--dry-run"]) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and " NBODY_MAX_SESSIONS=7 " in line and " panel serve " in line
    log = tmp_path / "serve.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(line, shell=True, cwd=tmp_path, env=_environment(), stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        answered = False
        while time.monotonic() < deadline and process.poll() is None and not answered:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/liveness", timeout=2) as response:
                    answered = response.status == 200
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        # Before the fix: "To sign sessions, the BOKEH_SECRET_KEY environment variable must be set".
        assert answered, f"the printed line did not serve (exit {process.poll()}):\n{log.read_text()[-2000:]}"
    finally:
        _stop(process)


def test_dry_run_names_a_configured_key_without_printing_it(capsys, monkeypatch):
    key = "k" * 40
    monkeypatch.setenv("NBODY_SECRET_KEY", key)
    monkeypatch.delenv("BOKEH_SECRET_KEY", raising=False)
    assert main(["serve", "--dry-run"]) == 0
    line = capsys.readouterr().out
    assert key not in line and 'BOKEH_SECRET_KEY="$NBODY_SECRET_KEY"' in line


def test_a_busy_port_is_reported_before_any_banner(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        finished = subprocess.run([*CLI, "serve", "--port", str(port)], cwd=tmp_path, env=_environment(),
                                  capture_output=True, text=True, timeout=300)
    assert finished.returncode == 2, finished.stderr
    assert finished.stdout == ""
    # One line, no banner ("nbody serve: http://...") and no Panel/Tornado traceback.
    assert finished.stderr.strip().splitlines() == [
        f"nbody serve: error: port {port} is already in use on 127.0.0.1 (another nbody serve or panel "
        "serve?); stop it or choose another --port"
    ]
