"""Several processes, one class, served for real (issue 21, item 3).

- ``nbody serve --processes 2``: two forked servers on one port, sharing one coordinator, and
  stopping with their parent.
- Two ``nbody serve`` processes sharing one runtime directory behind a real nginx configured
  from ``deploy/nginx/nbody.conf``: the session cap holds across both, each client stays on its
  own backend (its page request and its websocket reach the same process, and no two clients
  share a session), and websockets work through the proxy (frames arrive after Play).

nginx is a system package the CI installs (``apt-get install nginx``); without it the test fails
and says so.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))  # benchmarks/ (the frame client)
from benchmarks.bench_processes import nginx_binary, render_nginx_config  # noqa: E402
from benchmarks.frame_client import FrameClient, SessionRefused  # noqa: E402
from own_loop import run_on_own_loop  # noqa: E402

CLI = [sys.executable, "-c", "import sys; from nbody_core.cli import main; sys.exit(main())"]
#: A served app answers in ~2 s on a quiet machine, a dashboard is built in 5-50 s at load 8-20
#: (NOTES.md): generous bounds, always polled.
START_TIMEOUT_S = 180.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBODY_", "BOKEH_"))}
    env.update(PYTHONPATH=str(REPO_ROOT), JAX_PLATFORMS="cpu", NBODY_SECRET_KEY="k" * 48, **extra)
    return env


def _get_json(url: str, *, cookie: str = "", timeout: float = 10.0) -> dict | None:
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:  # 503 "unhealthy" still has its body
        return json.loads(error.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError):
        return None


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _serve(port: int, log: Path, *arguments: str) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "serve", "--port", str(port), *arguments], cwd=REPO_ROOT, env=_environment(),
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115 - closed with the process
                            start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    process.stdout and process.stdout.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_processes_share_one_port_one_coordinator_and_stop_with_their_parent(tmp_path):
    port = _free_port()
    server = _serve(port, tmp_path / "serve.log", "--processes", "2", "--runtime-dir", str(tmp_path / "runtime"))
    try:
        pids: set[int] = set()

        def both_answered():
            body = _get_json(f"http://127.0.0.1:{port}/health", timeout=5)
            if body is not None:
                pids.add(body["pid"])
                return len(pids) == 2 and body["all_processes"]["processes"] == 2 and body
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            return None

        body = _wait_for(both_answered, START_TIMEOUT_S, "both processes on /health")
        assert server.pid not in pids  # the forked children serve; the parent only watches them
        assert body["all_processes"]["slots_total"] == body["slots"]  # one number for both
        # Stopping the parent stops its children (PR_SET_PDEATHSIG; Tornado's parent does not).
        os.kill(server.pid, signal.SIGTERM)
        server.wait(30)
        _wait_for(lambda: not any(_alive(pid) for pid in pids), 30, "the children to exit")
    finally:
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        _stop(server)


def _nginx() -> str:
    found = nginx_binary()
    if found is None:
        pytest.fail("nginx is not installed: `apt-get install nginx` (the load-balancer test needs the real binary)")
    return found


async def _connect_all(base: str, routes: list[str], query: str) -> list[FrameClient]:
    """Connect one client per route cookie, one after another (the cap's order is then known)."""
    clients = []
    for route in routes:
        client = FrameClient(base, query)
        client.result.cookie = f"nbody_route={route}"
        try:
            await asyncio.wait_for(client._connect(), START_TIMEOUT_S)
        except SessionRefused:
            client.result.error = "refused"
        except Exception as error:  # noqa: BLE001 - reported below with the client
            client.result.error = f"{type(error).__name__}: {error}"
        clients.append(client)
    return clients


async def _connect_then_play(base: str, routes: list[str], query: str, between, seconds: float) -> list[FrameClient]:
    """Connect every client (:func:`_connect_all`), call ``between(clients)``, then play the
    admitted ones for ``seconds`` (all in one event loop: the websockets belong to it)."""
    clients = await _connect_all(base, routes, query)
    try:
        between(clients)
        await asyncio.gather(*(client._play_for(seconds) for client in clients if client.result.error is None))
    finally:
        for client in clients:
            if client._ws is not None:
                client._ws.close()
    return clients


def test_two_servers_behind_nginx_share_the_cap_and_keep_each_client_on_its_own(tmp_path):
    nginx = _nginx()
    backends, proxy_port = [_free_port(), _free_port()], _free_port()
    runtime = tmp_path / "runtime"
    cap = 4
    servers = [
        _serve(port, tmp_path / f"serve-{port}.log", "--runtime-dir", str(runtime), "--max-sessions", str(cap),
               "--max-sessions-per-address", "0", "--use-xheaders",
               "--allow-websocket-origin", f"127.0.0.1:{proxy_port}")
        for port in backends
    ]
    proxy = None
    try:
        config = render_nginx_config(tmp_path, listen_port=proxy_port, backends=backends)
        proxy = subprocess.Popen([nginx, "-c", str(config), "-p", str(tmp_path)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{proxy_port}"
        pid_of = {}
        for port in backends:
            body = _wait_for(lambda port=port: _get_json(f"http://127.0.0.1:{port}/health", timeout=5),
                             START_TIMEOUT_S, f"the server on {port}")
            pid_of[body["pid"]] = port
        # Which backend each route cookie reaches (the proxy's hash), asked through the proxy.
        routes: dict[int, list[str]] = {port: [] for port in backends}
        for i in range(200):
            body = _get_json(f"{base}/health", cookie=f"nbody_route=client{i}")
            assert body is not None, (tmp_path / "error.log").read_text()
            routes[pid_of[body["pid"]]].append(f"client{i}")
            if all(len(found) >= 4 for found in routes.values()):
                break
        first, second = (routes[port] for port in backends)
        assert len(first) >= 4 and len(second) >= 4, routes
        # Two clients on each backend fill the cap of 4; the next three (both backends) are refused.
        order = [first[0], second[0], first[1], second[1], first[2], second[2], first[3]]

        def connected(clients):
            outcomes = [client.result.error or "admitted" for client in clients]
            assert outcomes == ["admitted"] * 4 + ["refused"] * 3, outcomes
            for port in backends:  # each backend counts the viewers of both
                assert _get_json(f"http://127.0.0.1:{port}/health")["sessions"] == cap
            assert len({client.result.session_id for client in clients[:4]}) == 4  # four sessions, none shared

        # Websockets through the proxy: every admitted session receives frames after Play.
        clients = run_on_own_loop(_connect_then_play(base, order, "?preset=figure_eight&steps=1", connected, 8.0))
        admitted = clients[:4]
        assert all(len(client.result.arrivals) >= 2 for client in admitted), [
            len(client.result.arrivals) for client in admitted]

        # Sticky: every request of one route (page, websocket, health probes) reached one backend,
        # the one its probe named. nginx logs a websocket when it closes: wait for all seven.
        log = tmp_path / "access.log"
        _wait_for(lambda: all(f"route={route} " in line for route in order
                              for line in [next((x for x in log.read_text().splitlines()
                                                 if f"route={route} " in x and "/app/ws" in x), "")]),
                  30, "every websocket in nginx's log")
        seen: dict[str, set[str]] = {}
        for line in log.read_text().splitlines():
            match = re.search(r"route=(\S+) upstream=(\S+)", line)
            if match:
                seen.setdefault(match[1], set()).add(match[2])
        for client, route in zip(clients, order):
            expected = next(port for port, names in routes.items() if route in names)
            assert seen[route] == {f"127.0.0.1:{expected}"}, (route, seen[route])
            ws_lines = [line for line in (tmp_path / "access.log").read_text().splitlines()
                        if f"route={route} " in line and "/app/ws" in line]
            assert ws_lines and all(f"upstream=127.0.0.1:{expected} " in line for line in ws_lines), ws_lines
    finally:
        if proxy is not None and proxy.poll() is None:
            os.killpg(proxy.pid, signal.SIGTERM)
            proxy.wait(30)
        for server in servers:
            _stop(server)


def test_compose_file_runs_replicas_behind_nginx_with_the_health_endpoint():
    compose = yaml.safe_load((REPO_ROOT / "deploy" / "compose.yaml").read_text())
    app, proxy = compose["services"]["app"], compose["services"]["proxy"]
    assert app["deploy"]["replicas"] >= 2
    assert any("/health" in part for part in app["healthcheck"]["test"])
    assert "--runtime-dir" in app["command"] and "--use-xheaders" in app["command"]
    runtime_dir = app["command"][app["command"].index("--runtime-dir") + 1]
    assert any(volume.endswith(f":{runtime_dir}") for volume in app["volumes"])  # shared by the replicas
    assert "ports" not in app and "5006" in app["expose"]  # reached through the proxy only
    assert proxy["ports"] == ["8080:80"]
    mount = next(volume for volume in proxy["volumes"] if "nbody.conf" in volume)
    assert (REPO_ROOT / "deploy" / mount.split(":")[0]).resolve() == REPO_ROOT / "deploy" / "nginx" / "nbody.conf"
    assert proxy["depends_on"]["app"]["condition"] == "service_healthy"
    assert "NBODY_SECRET_KEY" in app["environment"]  # one key for every replica


def test_serve_arguments_for_several_processes(tmp_path):
    from nbody_core.cli import serve

    parser = __import__("argparse").ArgumentParser()
    serve.register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--port", "5123", "--processes", "3"])
    arguments, env = serve.serve_arguments(args, environ={})
    assert arguments[arguments.index("--num-procs") + 1] == "3"
    assert env["NBODY_RUNTIME_DIR"].endswith("nbody-serve-5123")  # one coordinator for the three
    args = parser.parse_args(["serve", "--runtime-dir", str(tmp_path)])
    arguments, env = serve.serve_arguments(args, environ={})
    assert "--num-procs" not in arguments and env["NBODY_RUNTIME_DIR"] == str(tmp_path.resolve())
    for bad in ("0", "65"):
        with pytest.raises(ValueError, match="--processes"):
            serve.serve_arguments(parser.parse_args(["serve", "--processes", bad]), environ={})
