"""A class on one server: many frame-only clients playing Plummer N = 200 at once.

Serves the app (``python -m panel serve app``, short session clean-up) and runs
``--sessions`` lightweight clients (``benchmarks/frame_client.py``: Bokeh's websocket
protocol, Play pressed, each binary frame acknowledged as the page does; no drawing), so
the browsers' own CPU does not hide the server's capacity. Measures:

- frames/s received per session (after the first second), min / median / max;
- server CPU per frame per session: the server process's CPU time over the window divided
  by the frames delivered, minus the physics of one frame (``SimulationState.step_frame``
  for the same settings, timed in this process), i.e. the cost of packing, sending and the
  session's bookkeeping;
- ``/liveness`` latency while playing (p50 / p95 / max, every 0.5 s);
- server RSS: warm baseline (one session played and closed), max while playing, and after
  the sessions closed (until back within 10 % or 30 s);
- cold start: a server process started with JAX's persistent compilation cache already
  filled (by an earlier process) and one without it: process start to ``/liveness``, the
  page (GET), the Simulate tab ready on the page, and Play to the first frame received;
  then the first page of a new session while ``--burners`` CPU-bound processes keep the
  machine busy (load average recorded beside it).

    python benchmarks/bench_live_view.py [--sessions 30] [--duration 20] [--n 200] [--burners 8]
    python benchmarks/bench_live_view.py --quick --out-dir /tmp/bench   # 4 sessions x 6 s, 4 burners: a smoke run

Writes benchmarks/results/live_view.json and live_view.md (or into ``--out-dir``). The machine is shared: the
load average is recorded beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
from frame_client import run_clients  # noqa: E402
from load_test import (  # noqa: E402
    Sampler,
    free_port,
    percentile,
    process_sample,
    start_server,
    stop_server,
    wait_live,
)

RESULTS = REPO_ROOT / "benchmarks" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class CpuSampler(threading.Thread):
    """``(perf_counter, CPU seconds)`` of the server process every ``period_s``."""

    def __init__(self, pid: int, period_s: float = 0.25):
        super().__init__(daemon=True, name="cpu-sampler")
        self.pid, self.period_s, self.samples = pid, period_s, []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.perf_counter(), cpu_seconds(self.pid)))
            self._halt.wait(self.period_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds used between two perf_counter times (linear between samples)."""
        times = [t for t, _ in self.samples]
        values = [c for _, c in self.samples]
        return float(np.interp(end, times, values) - np.interp(start, times, values))


def physics_ms_per_frame(n: int, steps: int, repeats: int = 60) -> float:
    """CPU ms of one frame's physics (step + diagnostics) for the load test's settings."""
    import nbody_core
    from nbody_explorer.state.simulate import SimulationState

    nbody_core.enable_float64()  # as app/main.py does in the server
    state = SimulationState(preset="plummer", num_bodies=n, steps_per_frame=steps)
    state.prepare()
    for _ in range(5):
        state.step_frame()
    start = time.process_time()
    for _ in range(repeats):
        state.step_frame()
    return 1000 * (time.process_time() - start) / repeats


def query(index: int, n: int, steps: int) -> str:
    return f"?preset=plummer&n={n}&seed={index}&steps={steps}&fps=30"


def _one_session(base: str, query_string: str, play_s: float) -> dict:
    """One frame client: seconds to the page and to the Simulate tab, ms from Play to the
    first frame (None if none came), and the client's error."""
    [client] = asyncio.run(run_clients(base, [query_string], play_s))
    out = {"error": client.error, "page_s": None, "ready_s": None, "play_to_first_frame_ms": None}
    if client.page_loaded_at is not None:
        out["page_s"] = round(client.page_loaded_at - client.connect_started_at, 2)
    if client.ready_at is not None:
        out["ready_s"] = round(client.ready_at - client.connect_started_at, 2)
    if client.play_sent_at is not None and client.arrivals:
        out["play_to_first_frame_ms"] = round(1000 * (client.arrivals[0] - client.play_sent_at), 1)
    return out


def _burn() -> None:  # pragma: no cover - runs in the burner processes
    while True:
        pass


def cold_start(args, work: Path) -> dict:
    """Cold server with and without a filled persistent compilation cache, then a first page
    while ``args.burners`` CPU-bound processes run (see the module docstring)."""
    import multiprocessing

    cache_dir = tempfile.mkdtemp(prefix="nbody-cold-jax-")
    figures: dict = {"burners": args.burners}
    # An earlier process fills the cache (as a lecture server restarted after a first run).
    port = free_port()
    process = start_server(port, log_path=work / "prime.log", cache_dir=cache_dir)
    try:
        wait_live(f"http://127.0.0.1:{port}", process, timeout_s=300)
        figures["prime"] = _one_session(f"http://127.0.0.1:{port}", query(0, args.n, args.steps), 3.0)
    finally:
        stop_server(process)
    for label, cache in (("with_cache", cache_dir), ("without_cache", tempfile.mkdtemp(prefix="nbody-cold-empty-"))):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        process = start_server(port, log_path=work / f"cold-{label}.log", cache_dir=cache)
        try:
            wait_live(base, process, timeout_s=300)
            live_s = time.perf_counter() - started
            figures[label] = {"start_to_live_s": round(live_s, 2), "load_average_1min": round(os.getloadavg()[0], 2),
                              **_one_session(base, query(0, args.n, args.steps), 3.0)}
            if label == "with_cache" and args.burners:
                burners = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(args.burners)]
                for burner in burners:
                    burner.start()
                try:
                    time.sleep(args.burn_s)  # let the 1-minute load average climb
                    load = os.getloadavg()[0]
                    figures["busy"] = {"load_average_1min": round(load, 2),
                                       **_one_session(base, query(1, args.n, args.steps), 3.0)}
                finally:
                    for burner in burners:
                        burner.terminate()
                    for burner in burners:
                        burner.join(timeout=5)
        finally:
            stop_server(process)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds each client plays")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--burners", type=int, default=8,
                        help="CPU-bound processes running while the busy-machine first page is measured")
    parser.add_argument("--burn-s", type=float, default=40.0,
                        help="seconds the burners run before that page is asked for (the load average climbs)")
    parser.add_argument("--skip-cold", action="store_true", help="leave out the cold-start figures")
    parser.add_argument("--quick", action="store_true", help="4 sessions x 6 s, 4 burners for 10 s (a smoke run)")
    parser.add_argument("--out-dir", default=str(RESULTS), help="where live_view.json / .md go")
    args = parser.parse_args(argv)
    if args.quick:
        args.sessions, args.duration, args.burners, args.burn_s = 4, 6.0, 4, 10.0

    os.environ.setdefault("NBODY_MAX_SESSIONS", str(args.sessions + 10))
    os.environ.setdefault("NBODY_MAX_SESSIONS_PER_ADDRESS", "0")  # every client is on loopback
    cache_dir = tempfile.mkdtemp(prefix="nbody-live-jax-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    work = Path(tempfile.mkdtemp(prefix="nbody-live-"))
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "sessions": args.sessions, "duration_s": args.duration, "n": args.n, "steps_per_frame": args.steps,
        "target_fps": 30, "quick": args.quick,
    }
    if not args.skip_cold:
        results["cold_start"] = cold_start(args, work)
    process = start_server(port, log_path=work / "serve.log", cache_dir=cache_dir)
    try:
        wait_live(base, process, timeout_s=180)
        results["rss_cold_mib"] = process_sample(process.pid)["rss_mib"]
        # Warm-up: one session compiles; the baseline is taken once it has been destroyed.
        [warm] = asyncio.run(run_clients(base, [query(0, args.n, args.steps)], 4.0))
        results["warmup"] = {"frames": len(warm.arrivals), "error": warm.error}
        time.sleep(6)
        results["rss_warm_baseline_mib"] = process_sample(process.pid)["rss_mib"]
        results["physics_ms_per_frame"] = round(physics_ms_per_frame(args.n, args.steps), 3)

        sampler = Sampler(process.pid, base)
        sampler.start()
        sampler.phase = "playing"
        cpu = CpuSampler(process.pid)
        cpu.start()
        load0 = os.getloadavg()[0]
        clients = asyncio.run(run_clients(base, [query(i, args.n, args.steps) for i in range(args.sessions)],
                                          args.duration, stagger_s=0.1))
        cpu.stop()
        sampler.phase = "closed"
        load1 = os.getloadavg()[0]
        # After close: RSS back within 10 % of the warm baseline, or 30 s.
        closed_at = time.monotonic()
        baseline = results["rss_warm_baseline_mib"]
        rss_after = process_sample(process.pid)["rss_mib"]
        while time.monotonic() - closed_at < 30 and rss_after > 1.1 * baseline:
            time.sleep(1)
            rss_after = process_sample(process.pid)["rss_mib"]
        sampler.stop()
    finally:
        stop_server(process)

    rates = [c.frames_per_s() for c in clients]
    # Steady window: every client playing (1 s after the last Play) until the first one stops;
    # connecting and building each session's tabs is not counted in the per-frame cost.
    started = [c.play_sent_at for c in clients if c.play_sent_at is not None]
    wall0, wall1 = max(started) + 1.0, min(started) + args.duration - 0.2
    frames = sum(1 for c in clients for t in c.arrivals if wall0 <= t <= wall1)
    cpu_ms_per_frame = 1000 * cpu.cpu_between(wall0, wall1) / max(frames, 1)
    cpu_share = cpu.cpu_between(wall0, wall1) / max(wall1 - wall0, 1e-9)
    latencies = [1000 * lat for _, lat, phase in sampler.latencies if phase == "playing"]
    finite = [v for v in latencies if v != float("inf")]
    results.update({
        "errors": [c.error for c in clients if c.error],
        "frames_in_steady_window": frames,
        "steady_window_s": round(wall1 - wall0, 1),
        "fps_per_session": {"min": round(min(rates), 2), "median": round(statistics.median(rates), 2),
                            "max": round(max(rates), 2), "sessions_at_or_above_10": sum(r >= 10 for r in rates)},
        "server_cpu_ms_per_frame": round(cpu_ms_per_frame, 3),
        "server_cpu_ms_per_frame_excluding_physics": round(cpu_ms_per_frame - results["physics_ms_per_frame"], 3),
        "server_cpu_share": round(cpu_share, 2),
        "bytes_per_frame": round(sum(c.frame_bytes for c in clients) / max(sum(len(c.arrivals) for c in clients), 1)),
        "liveness_ms": {"p50": round(percentile(finite, 0.5), 1), "p95": round(percentile(finite, 0.95), 1),
                        "max": round(max(finite), 1) if finite else None, "failed": len(latencies) - len(finite),
                        "probes": len(latencies)},
        "rss_max_playing_mib": max((s["rss_mib"] for s in sampler.samples if s["phase"] == "playing"), default=None),
        "rss_after_close_mib": rss_after,
        "rss_back_within_10_percent": rss_after <= 1.1 * baseline,
        "seconds_to_rss_back": round(time.monotonic() - closed_at, 1),
        "load_average_1min": {"start": round(load0, 2), "end": round(load1, 2)},
    })
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "live_view.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "live_view.md").write_text(markdown(results))
    print((out_dir / "live_view.md").read_text())
    return 0


def markdown(r: dict) -> str:
    fps, live = r["fps_per_session"], r["liveness_ms"]
    command = ("`python benchmarks/bench_live_view.py --quick` (a smoke run)" if r.get("quick") else
               f"`python benchmarks/bench_live_view.py --sessions {r['sessions']} --duration {r['duration_s']:g} --n {r['n']}`")
    return "\n".join([
        f"# Live view: {r['sessions']} frame-only clients playing Plummer N = {r['n']}",
        "",
        command +
        f" on {r['machine']['cpus']} shared CPUs: one server process and {r['sessions']} clients that speak Bokeh's"
        " websocket protocol, press Play, acknowledge each binary frame and draw nothing"
        f" (`benchmarks/frame_client.py`). Target 30 frames/s per session, {r['steps_per_frame']} step/frame."
        f" Load average {r['load_average_1min']['start']} at the start, {r['load_average_1min']['end']} at the end"
        " (the machine is shared with other jobs).",
        "",
        "| figure | value | goal |",
        "|---|---|---|",
        f"| frames/s per session: min / median / max | {fps['min']} / {fps['median']} / {fps['max']}"
        f" ({fps['sessions_at_or_above_10']} of {r['sessions']} at >= 10) | every session >= 10 |",
        f"| steady window (all {r['sessions']} playing) | {r['steady_window_s']} s, {r['frames_in_steady_window']} frames | |",
        f"| server CPU per frame per session, all included | {r['server_cpu_ms_per_frame']} ms | |",
        f"| physics of one frame (step + diagnostics, timed alone) | {r['physics_ms_per_frame']} ms | |",
        f"| server CPU per frame per session, excluding physics | {r['server_cpu_ms_per_frame_excluding_physics']} ms | <= 2 ms |",
        f"| server CPU used (cores) | {r['server_cpu_share']} | |",
        f"| bytes per frame | {r['bytes_per_frame']} | |",
        f"| `/liveness` while playing: p50 / p95 / max | {live['p50']} / {live['p95']} / {live['max']} ms"
        f" ({live['failed']} of {live['probes']} failed) | p95 <= 200 ms |",
        f"| server RSS MiB: cold / warm baseline / max playing / after close | {r['rss_cold_mib']} /"
        f" {r['rss_warm_baseline_mib']} / {r['rss_max_playing_mib']} / {r['rss_after_close_mib']}"
        f" (back within 10 %: {'yes' if r['rss_back_within_10_percent'] else 'no'}, {r['seconds_to_rss_back']} s) |"
        " baseline ± 10 % within 30 s |",
        f"| client errors | {len(r['errors'])} | 0 |",
        "",
        *cold_markdown(r.get("cold_start")),
    ])


def cold_markdown(c: dict | None) -> list[str]:
    """The cold-start table (empty when it was skipped)."""
    if not c:
        return []

    def cell(value, unit=""):
        return "–" if value is None else f"{value}{unit}"

    rows = [
        "## Cold start and first page",
        "",
        "One frame client per row (`benchmarks/frame_client.py`: page, websocket, Simulate tab built, Play,"
        " frames; nothing drawn, so \"first frame\" is the first frame received: a browser paints it at"
        " its next animation frame). *With cache*: a new server process whose JAX persistent compilation"
        " cache was filled by an earlier process; *without*: an empty cache. *Busy*: a new session on the"
        f" cached server while {c['burners']} CPU-bound processes run on the machine's"
        " CPUs (load average beside it).",
        "",
        "| case | process start → /liveness (s) | GET page (s) | GET → Simulate tab ready (s) | Play → first frame (ms) | load avg | goal |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, label, goal in (("with_cache", "cold server, persistent cache filled", "Play → first frame <= 4000 ms"),
                             ("without_cache", "cold server, empty cache", ""),
                             ("busy", "new session, busy machine", "page ready <= 10 s")):
        f = c.get(key)
        if not f:
            continue
        rows.append(
            f"| {label} | {cell(f.get('start_to_live_s'))} | {cell(f['page_s'])} | {cell(f['ready_s'])} |"
            f" {cell(f['play_to_first_frame_ms'])} | {f['load_average_1min']} | {goal} |"
            + (f" error: {f['error']}" if f.get("error") else "")
        )
    rows.append("")
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
