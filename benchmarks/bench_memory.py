"""Server memory after a class leaves: RSS back to the warm baseline, per allocator setting.

For each variant, one ``nbody serve`` process (loopback) is started with the variant's
environment; one frame client opens the dashboard, plays and leaves (the warm-up: JAX, the
app's modules and the first compiles are now resident), and once that session is destroyed and
memory released the server's RSS is the *warm baseline*. Then ``--sessions`` frame clients
(benchmarks/frame_client.py: Bokeh's websocket protocol, no browser) open the dashboard together,
play ``--play`` seconds and close; the server's RSS is sampled every 0.5 s for ``--watch`` seconds
after the last close. Goal (issue 21, item 4): back within 10 % of the warm baseline within 30 s.

Variants: ``glibc`` (no ``malloc_trim``: ``NBODY_MALLOC_TRIM=0``), ``glibc+trim`` (the app's
default: ``gc.collect()``, JAX caches cleared and ``malloc_trim(0)`` 2 s after the last session
is destroyed), ``glibc+trim+arena2`` (``MALLOC_ARENA_MAX=2``), ``jemalloc`` (``LD_PRELOAD`` of
Debian's libjemalloc2, ``apt-get install libjemalloc2``, with a 1 s decay so it returns pages).

    python benchmarks/bench_memory.py [--sessions 6] [--play 8] [--watch 40] [--only glibc+trim]

Writes benchmarks/results/memory.json and memory.md (with the load average).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from benchmarks.frame_client import FrameClient  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results"
CLI = [sys.executable, "-c", "import sys; from nbody_core.cli import main; sys.exit(main())"]
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
QUERY = "?preset=plummer&n=200&steps=1"
GOAL = 1.10  # back within 10 % of the warm baseline...
GOAL_S = 30.0  # ...within this many seconds of the last close
VARIANTS = {
    "glibc": {"NBODY_MALLOC_TRIM": "0"},
    "glibc+trim": {},
    "glibc+trim+arena2": {"MALLOC_ARENA_MAX": "2"},
    "jemalloc": {"LD_PRELOAD": JEMALLOC, "MALLOC_CONF": "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0"},
    # Python's own small-object allocator (pymalloc) frees a 1 MiB arena only when all of it is
    # free; PYTHONMALLOC=malloc hands those objects to the C allocator, which can trim or decay.
    "glibc+trim+pymalloc-off": {"PYTHONMALLOC": "malloc"},
    "jemalloc+pymalloc-off": {"PYTHONMALLOC": "malloc", "LD_PRELOAD": JEMALLOC,
                              "MALLOC_CONF": "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0"},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024.0, 1)
    return float("nan")


def health(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            return json.loads(response.read())
    except Exception:  # noqa: BLE001 - not up yet, or busy
        return None


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def start_server(port: int, env_extra: dict[str, str], log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBODY_", "BOKEH_", "MALLOC_", "LD_PRELOAD"))}
    env.update({"PYTHONPATH": str(REPO_ROOT), "JAX_PLATFORMS": "cpu", "NBODY_SECRET_KEY": "m" * 48, **env_extra})
    process = subprocess.Popen([*CLI, "serve", "--port", str(port), "--max-sessions-per-address", "0"],
                               cwd=REPO_ROOT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
                               start_new_session=True)
    wait_for(lambda: process.poll() is not None or health(port), 180, "the server")
    if process.poll() is not None:
        raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
    return process


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)


async def _sessions(base: str, count: int, play_s: float) -> list[dict]:
    clients = [FrameClient(base, QUERY) for _ in range(count)]
    await asyncio.gather(*(client.run(play_s, connect_timeout_s=300) for client in clients))
    return [{"frames": len(c.result.arrivals), "error": c.result.error} for c in clients]


def sessions_gone(port: int) -> bool:
    body = health(port)
    return body is not None and body["sessions"] == 0


def cycle(port: int, pid: int, count: int, play_s: float, watch_s: float) -> dict:
    """Open ``count`` sessions, play, close; RSS samples (seconds after close, MiB)."""
    peak = rss_mib(pid)
    started = time.monotonic()
    clients = asyncio.run(_sessions(f"http://127.0.0.1:{port}", count, play_s))
    closed = time.monotonic()
    peak = max(peak, rss_mib(pid))
    samples = []
    while time.monotonic() - closed < watch_s:
        samples.append((round(time.monotonic() - closed, 1), rss_mib(pid)))
        time.sleep(0.5)
    return {"clients": clients, "open_s": round(closed - started, 1), "rss_at_close_mib": peak, "samples": samples}


def run_variant(name: str, env_extra: dict[str, str], *, sessions: int, play_s: float, watch_s: float,
                log_dir: Path) -> dict:
    port = free_port()
    server = start_server(port, env_extra, log_dir / f"memory-{name}.log")
    try:
        cold = rss_mib(server.pid)
        warmup = cycle(port, server.pid, 1, 3.0, watch_s)
        warm = warmup["samples"][-1][1]
        load = cycle(port, server.pid, sessions, play_s, watch_s)
        within = [mib for t, mib in load["samples"] if t <= GOAL_S]
        after_goal = next((t for t, mib in load["samples"] if mib <= warm * GOAL), None)
        return {
            "variant": name, "env": env_extra, "cold_mib": cold, "warm_mib": warm,
            "peak_mib": max([load["rss_at_close_mib"]] + [mib for _, mib in load["samples"]]),
            "at_30s_mib": within[-1] if within else None,
            "end_mib": load["samples"][-1][1],
            "back_within_10pct_after_s": after_goal,
            "ok": after_goal is not None and after_goal <= GOAL_S,
            "frames": [c["frames"] for c in load["clients"]],
            "errors": [c["error"] for c in load["clients"] if c["error"]],
            "samples": load["samples"],
            "load_avg": os.getloadavg(),
        }
    finally:
        stop_server(server)


def write_results(results: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "memory.json").write_text(json.dumps(results, indent=2) + "\n")
    config = results["config"]
    lines = [
        f"# Memory after a class leaves: {config['sessions']} sessions, per allocator setting",
        "",
        f"`python benchmarks/bench_memory.py --sessions {config['sessions']} --play {config['play_s']:g} "
        f"--watch {config['watch_s']:g}` on {os.cpu_count()} CPUs: one `nbody serve` process, frame clients "
        f"(no browser) playing Plummer N = 200, RSS sampled every 0.5 s after the last client closed "
        f"(sessions are destroyed ~15 s after their websocket closes). Load average (1 min) at the end "
        f"of each variant in the last column; at the start: {results['load_avg_start'][0]:.1f}.",
        "",
        "| variant | cold MiB | warm MiB | peak MiB | RSS 30 s after close | ≤ warm + 10 % after | goal (≤ 30 s) | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in results["variants"]:
        after = f"{row['back_within_10pct_after_s']} s" if row["back_within_10pct_after_s"] is not None else "never"
        lines.append(
            f"| {row['variant']} | {row['cold_mib']} | {row['warm_mib']} | {row['peak_mib']} | {row['at_30s_mib']} "
            f"| {after} | {'yes' if row['ok'] else 'no'} | {row['load_avg'][0]:.1f} |"
        )
    lines += ["", results.get("choice", "")]
    (RESULTS / "memory.md").write_text("\n".join(lines).rstrip() + "\n")
    return RESULTS / "memory.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--play", type=float, default=8.0)
    parser.add_argument("--watch", type=float, default=40.0)
    parser.add_argument("--only", action="append", choices=sorted(VARIANTS), help="run only these variants")
    parser.add_argument("--append", action="store_true", help="keep the other variants of memory.json")
    parser.add_argument("--choice", default="", help="a sentence on the pick, written under the table")
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp"))
    args = parser.parse_args(argv)
    names = args.only or list(VARIANTS)
    if "jemalloc" in names and not Path(JEMALLOC).exists():
        parser.error(f"jemalloc variant: {JEMALLOC} missing (apt-get install libjemalloc2)")
    results = {"config": {"sessions": args.sessions, "play_s": args.play, "watch_s": args.watch},
               "load_avg_start": os.getloadavg(), "variants": [], "choice": args.choice}
    if args.append and (RESULTS / "memory.json").exists():  # add these variants to the last run's
        results = json.loads((RESULTS / "memory.json").read_text())
        results["variants"] = [row for row in results["variants"] if row["variant"] not in names]
    for name in names:
        row = run_variant(name, VARIANTS[name], sessions=args.sessions, play_s=args.play, watch_s=args.watch,
                          log_dir=args.log_dir)
        results["variants"].append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "samples"}), flush=True)
    print(write_results(results).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
