"""Two server processes behind nginx: frames per client, stickiness, liveness, with the load average.

Starts two ``nbody serve`` processes sharing one runtime directory (one coordinator: caps and
compute slots for both), nginx in front configured from ``deploy/nginx/nbody.conf`` (sticky by
cookie, websocket upgrade), then ``--clients`` frame clients (benchmarks/frame_client.py, no
browser) through nginx, each with its own cookie jar, all playing Plummer N = ``--n`` for
``--duration`` seconds. Reports frames/s per client (min, median), clients per backend, whether
every client's page and websocket reached one backend (nginx's log), ``/liveness`` latency of
each backend while playing, server CPU (cores) and the load average.

    python benchmarks/bench_processes.py [--clients 20] [--duration 20] [--n 200]

Writes benchmarks/results/processes.json and processes.md. Needs nginx (``apt-get install nginx``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from benchmarks.frame_client import run_clients  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results"
CLI = [sys.executable, "-c", "import sys; from nbody_core.cli import main; sys.exit(main())"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def render_nginx_config(directory: Path, *, listen_port: int, backends: list[int]) -> Path:
    """deploy/nginx/nbody.conf with these ports, inside a main config that runs unprivileged in
    ``directory`` (pid, logs and temp files there; ``access.log`` in nginx's ``nbody`` format)."""
    site = (REPO_ROOT / "deploy" / "nginx" / "nbody.conf").read_text()
    if "server app:5006;" not in site or "listen 80;" not in site:
        raise ValueError("deploy/nginx/nbody.conf no longer has `server app:5006;` and `listen 80;`")
    site = site.replace("server app:5006;", " ".join(f"server 127.0.0.1:{port};" for port in backends))
    site = site.replace("listen 80;", f"listen 127.0.0.1:{listen_port};")
    site = site.replace("/var/log/nginx/nbody.log", str(directory / "access.log"))
    temp = "\n".join(f"    {kind}_temp_path {directory / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                                 "uwsgi", "scgi"))
    main = (f"{'user root;' if os.geteuid() == 0 else ''}\nworker_processes 1;\ndaemon off;\n"
            f"pid {directory / 'nginx.pid'};\nerror_log {directory / 'error.log'} warn;\n"
            f"events {{ worker_connections 4096; }}\n"
            f"http {{\n{temp}\n    access_log off;\n{site}\n}}\n")
    path = directory / "nginx.conf"
    path.write_text(main)
    return path


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def routes_by_upstream(access_log: Path) -> dict[str, set[str]]:
    """``{route cookie: upstreams it reached}`` from nginx's ``nbody`` log format."""
    seen: dict[str, set[str]] = {}
    for line in access_log.read_text().splitlines():
        match = re.search(r"route=(\S+) upstream=(\S+)", line)
        if match:
            seen.setdefault(match[1], set()).add(match[2])
    return seen


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _liveness_ms(port: int) -> float:
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/liveness", timeout=10) as response:
            response.read()
    except Exception:  # noqa: BLE001 - a failed probe counts as 10 s
        return 10_000.0
    return (time.perf_counter() - start) * 1000


def run(*, clients: int, duration_s: float, n: int, directory: Path) -> dict:
    nginx = nginx_binary()
    if nginx is None:
        raise SystemExit("nginx is not installed: apt-get install nginx")
    backends, proxy_port = [free_port(), free_port()], free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBODY_", "BOKEH_"))}
    env.update(PYTHONPATH=str(REPO_ROOT), JAX_PLATFORMS="cpu", NBODY_SECRET_KEY="p" * 48)
    servers = [subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--runtime-dir", str(directory / "runtime"), "--max-sessions",
         str(max(30, clients)), "--max-sessions-per-address", "0", "--use-xheaders",
         "--allow-websocket-origin", f"127.0.0.1:{proxy_port}"],
        cwd=REPO_ROOT, env=env, stdout=open(directory / f"serve-{port}.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT, start_new_session=True) for port in backends]
    proxy = subprocess.Popen([nginx, "-c", str(render_nginx_config(directory, listen_port=proxy_port,
                                                                   backends=backends)), "-p", str(directory)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for port in backends:
            deadline = time.monotonic() + 180
            while _liveness_ms(port) >= 10_000.0:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server on {port} did not start")
                time.sleep(0.5)
        probes: dict[int, list[float]] = {port: [] for port in backends}
        cpu_start = {s.pid: _cpu_seconds(s.pid) for s in servers}
        stop = threading.Event()

        def probe() -> None:
            while not stop.wait(0.5):
                for port in backends:
                    probes[port].append(_liveness_ms(port))

        base = f"http://127.0.0.1:{proxy_port}"
        queries = [f"?preset=plummer&n={n}&seed={i}&steps=1" for i in range(clients)]
        prober = threading.Thread(target=probe, daemon=True)
        started = time.monotonic()
        prober.start()
        results = asyncio.run(run_clients(base, queries, duration_s, stagger_s=0.3))
        stop.set()
        prober.join()
        wall = time.monotonic() - started
        cpu = {s.pid: round((_cpu_seconds(s.pid) - cpu_start[s.pid]) / wall, 2) for s in servers}
        load = os.getloadavg()
        time.sleep(2)  # noqa: TID251 - nginx writes a websocket's log line once it has closed
        seen = routes_by_upstream(directory / "access.log")
        routes = [r.cookie.split("=", 1)[1] for r in results if r.cookie.startswith("nbody_route=")]
        per_backend = {f"127.0.0.1:{p}": sum(seen.get(r) == {f"127.0.0.1:{p}"} for r in routes) for p in backends}
        fps = [round(r.frames_per_s(), 2) for r in results]
        return {
            "config": {"clients": clients, "duration_s": duration_s, "n": n, "processes": 2},
            "cpus": os.cpu_count(),
            "load_avg_end": load,
            "frames_per_s": fps,
            "min_fps": min(fps), "median_fps": statistics.median(fps),
            "errors": [r.error for r in results if r.error],
            "clients_per_backend": per_backend,
            "sticky": all(len(seen.get(r, set())) == 1 for r in routes) and len(routes) == clients,
            "liveness_p95_ms": {str(p): round(sorted(v)[int(0.95 * (len(v) - 1))], 1) if v else None
                                for p, v in probes.items()},
            "server_cores": cpu,
        }
    finally:
        if proxy.poll() is None:
            os.killpg(proxy.pid, signal.SIGTERM)
            proxy.wait(30)
        for server in servers:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(30)


def write_results(runs: list[dict]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "processes.json").write_text(json.dumps(runs, indent=2) + "\n")
    lines = [
        "# Two server processes behind nginx",
        "",
        "`python benchmarks/bench_processes.py`: two `nbody serve` processes sharing one coordinator "
        "(`--runtime-dir`), nginx in front with `deploy/nginx/nbody.conf` (sticky cookie, websocket "
        f"upgrade), frame clients (no browser, on the same {runs[0]['cpus']} CPUs) playing Plummer "
        f"N = {runs[0]['config']['n']}, 1 step per frame.",
        "",
        "| clients | per backend | sticky | frames/s min / median | /liveness p95 (ms) | server cores | errors | load (1 min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run_ in runs:
        lines.append(
            f"| {run_['config']['clients']} | {' / '.join(map(str, run_['clients_per_backend'].values()))} "
            f"| {'yes' if run_['sticky'] else 'NO'} | {run_['min_fps']} / {run_['median_fps']} "
            f"| {' / '.join(str(v) for v in run_['liveness_p95_ms'].values())} "
            f"| {' + '.join(str(v) for v in run_['server_cores'].values())} | {len(run_['errors'])} "
            f"| {run_['load_avg_end'][0]:.1f} |"
        )
    (RESULTS / "processes.md").write_text("\n".join(lines) + "\n")
    return RESULTS / "processes.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, action="append", help="clients (repeat for several runs; default 20)")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args(argv)
    runs = []
    for clients in args.clients or [20]:
        with tempfile.TemporaryDirectory(prefix="nbody-processes-") as directory:
            runs.append(run(clients=clients, duration_s=args.duration, n=args.n, directory=Path(directory)))
            print(json.dumps(runs[-1]), flush=True)
    print(write_results(runs).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
