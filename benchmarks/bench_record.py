"""Two concurrent recordings at the Record card's maximum (20 s x 30 fps = 600 frames at
1280x720) of an N-body run whose recorded trajectory is at its cap: process RSS warm, peak
while recording and after, the ffmpeg children's RSS, the load average; and how fast Stop ends a
recording (time to the job's end, partial file removed, CPU after).

In-process, through the app's own path without a browser: ``nbody_explorer.state.record.record_movie``
run as jobs on the runtime's ``FairPool`` with a ``job.checkpoint()`` after every frame (what
the Record button submits, app/views/record.py). The run is a Plummer sphere of ``--n`` bodies
drawn at ``RECORD_VALUES // (7 n + 8)`` snapshots (the most the Simulate tab keeps: 285 at
N = 2000), slowly rotating, so the arrays have the size a real maximal recording holds.

    python benchmarks/bench_record.py [--n 2000] [--formats gif,gif] [--seconds 20] [--fps 30]
    python benchmarks/bench_record.py --quick --out-dir /tmp/bench   # 2 s movies: a smoke run

Writes benchmarks/results/record.json and record.md (or into ``--out-dir``). Goal (issue 26):
peak RSS <= warm + 300 MiB, back within 10 % of warm after the recordings end.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
RESULTS = REPO_ROOT / "benchmarks" / "results"


def rss_mib(pid: int | str = "self") -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children_rss_mib() -> float:
    """RSS of this process's children (the ffmpeg encoders)."""
    me, total = str(os.getpid()), 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = stat.read().rsplit(")", 1)[1].split()[1]
        except OSError:
            continue
        if parent == me:
            total += rss_mib(entry)
    return total


class Sampler:
    """Samples own RSS, children's RSS and the 1-min load average every ``period`` s."""

    def __init__(self, period: float = 0.1):
        self.period, self.samples, self._stop = period, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), rss_mib(), children_rss_mib(), os.getloadavg()[0]))
            self._stop.wait(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join()


class Run:
    """What ``record_movie`` reads of the Simulate tab's state: ``trajectory()`` and ``preset``."""

    preset = "plummer"

    def __init__(self, n: int):
        import jax

        import nbody_core as nb
        from nbody_explorer.state.simulate_run import RECORD_VALUES

        state = nb.plummer(jax.random.key(0), n)
        position, mass = np.asarray(state.position, float), np.asarray(state.mass, float)
        snapshots = max(2, RECORD_VALUES // (7 * n + 8))
        angle = np.linspace(0, 1.5, snapshots)
        cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
        self.time = angle.copy()
        self.position = np.stack([cos * position[:, 0] - sin * position[:, 1],
                                  sin * position[:, 0] + cos * position[:, 1],
                                  np.broadcast_to(position[:, 2], (snapshots, n))], axis=-1)
        self.mass = mass
        self.energy = -0.25 * (1 + 1e-6 * np.sin(40 * angle))

    def trajectory(self):
        return self  # time, position, mass, energy as attributes


def record_jobs(pool, run, settings_list, folders):
    """Submit one recording job per settings; returns the jobs (running on ``pool``)."""
    from nbody_explorer.runtime.scheduler import Job
    from nbody_explorer.state.record import record_movie

    jobs = []
    for index, (settings, folder) in enumerate(zip(settings_list, folders)):
        def work(job, settings=settings, folder=folder):
            return record_movie(run, settings, folder, lambda done, total: job.checkpoint())

        jobs.append(pool.submit(Job(work, session=f"session {index}")))
    return jobs


def settings_for(suffix: str, seconds: int, fps: int):
    from nbody_explorer.state.record import RecordSettings

    return RecordSettings(seconds=seconds, fps=fps, suffix=suffix, size=(1280, 720))


def concurrent(pool, run, suffixes, seconds, fps) -> dict:
    from nbody_explorer.runtime.admission import release_memory

    with tempfile.TemporaryDirectory() as base:
        folders = [Path(base) / str(i) for i in range(len(suffixes))]
        for folder in folders:
            folder.mkdir()
        gc.collect()
        warm = rss_mib()
        load_before = os.getloadavg()[0]
        start = time.monotonic()
        with Sampler() as sampler:
            jobs = record_jobs(pool, run, [settings_for(s, seconds, fps) for s in suffixes], folders)
            for job in jobs:
                job.finished.wait()
            elapsed = time.monotonic() - start
            right_after = rss_mib()
            time.sleep(2.0)
        settled = rss_mib()
        gc.collect()
        after_gc = rss_mib()
        release_memory()  # what the app does when the last session closes (gc + malloc_trim)
        after_trim = rss_mib()
        errors = [repr(job.error) for job in jobs if job.error is not None]
        files = {f"{folder.name}/{p.name}": p.stat().st_size for folder in folders for p in folder.iterdir()}
    own = [s[1] for s in sampler.samples]
    total = [s[1] + s[2] for s in sampler.samples]
    return {
        "formats": list(suffixes), "frames_each": seconds * fps, "seconds": round(elapsed, 1),
        "errors": errors, "files_bytes": files,
        "rss_warm_mib": round(warm, 1), "rss_peak_mib": round(max(own), 1),
        "rss_peak_over_warm_mib": round(max(own) - warm, 1),
        "ffmpeg_rss_peak_mib": round(max(s[2] for s in sampler.samples), 1),
        "rss_plus_ffmpeg_peak_over_warm_mib": round(max(total) - warm, 1),
        "rss_right_after_mib": round(right_after, 1), "rss_after_2s_mib": round(settled, 1),
        "rss_after_gc_mib": round(after_gc, 1), "rss_after_release_memory_mib": round(after_trim, 1),
        "after_within_10pct_of_warm": bool(settled <= 1.1 * warm),
        "after_release_within_10pct_of_warm": bool(after_trim <= 1.1 * warm),
        "load_before": round(load_before, 2), "load_max": round(max(s[3] for s in sampler.samples), 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def stop_latency(pool, run, suffix, after_s: float, fps: int) -> dict:
    """Start a maximal recording, cancel it after ``after_s``: time to the job's end, whether
    anything is left in its folder, this process's CPU and ffmpeg children over the next second."""
    with tempfile.TemporaryDirectory() as base:
        folder = Path(base)
        frames = []
        from nbody_explorer.runtime.scheduler import Job
        from nbody_explorer.state.record import record_movie

        settings = settings_for(suffix, 20, fps)

        def work(job):
            def progress(done, total):
                frames.append((done, time.monotonic()))
                job.checkpoint()
            return record_movie(run, settings, folder, progress)

        job = pool.submit(Job(work, session="stopped session"))
        deadline = time.monotonic() + 120
        while (not frames or frames[-1][1] - frames[0][1] < after_s) and time.monotonic() < deadline:
            time.sleep(0.02)
        cancelled_at = time.monotonic()
        job.cancel()
        job.finished.wait(30)
        ended = time.monotonic() - cancelled_at
        cpu_start, wall_start = time.process_time(), time.monotonic()
        time.sleep(1.0)
        cpu_after = (time.process_time() - cpu_start) / (time.monotonic() - wall_start)
        left = sorted(p.name for p in folder.iterdir())
        per_frame = np.diff([t for _, t in frames[1:]]) if len(frames) > 2 else np.array([np.nan])
    return {
        "format": suffix, "frames_before_stop": frames[-1][0] if frames else 0,
        "frame_s_median": round(float(np.median(per_frame)), 3),
        "stop_to_end_s": round(ended, 3), "files_left": left, "ffmpeg_children_after": round(children_rss_mib(), 1),
        "process_cpu_cores_in_next_second": round(cpu_after, 3), "error": repr(job.error) if job.error else None,
    }


def markdown(results: dict) -> str:
    lines = [
        "# Recording memory: two concurrent maximal recordings (issue 26)", "",
        f"{results['machine']}; N = {results['n']} ({results['snapshots']} recorded snapshots, the Simulate "
        f"tab's cap), {results['frames']} frames at 1280x720 each; in-process through "
        "`nbody_explorer.state.record.record_movie` on the runtime's FairPool (bench_record.py). Goal: peak RSS <= warm + "
        "300 MiB, back within 10 % of warm after.", "",
        "| formats | wall s | warm MiB | peak MiB (over warm) | ffmpeg peak MiB | after 2 s MiB | after gc MiB "
        "| after release_memory MiB | load before / max / after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results["concurrent"]:
        lines.append(
            f"| {' + '.join(run['formats'])} | {run['seconds']} | {run['rss_warm_mib']} | {run['rss_peak_mib']} "
            f"(+{run['rss_peak_over_warm_mib']}) | {run['ffmpeg_rss_peak_mib']} | {run['rss_after_2s_mib']} | "
            f"{run['rss_after_gc_mib']} | {run['rss_after_release_memory_mib']} | "
            f"{run['load_before']} / {run['load_max']} / {run['load_after']} |")
    lines += ["", "The Record card calls `release_memory()` (gc + malloc_trim) when a recording ends, so the "
              "last two columns are what a served process returns to. ffmpeg runs as a child process "
              "(its RSS is not in the process's)."]
    lines += ["", "Stop during a maximal recording:", "",
              "| format | frames before Stop | s a frame (median) | Stop to job end s | files left "
              "| CPU cores in the next second |",
              "|---|---|---|---|---|---|"]
    for stop in results["stop"]:
        lines.append(f"| {stop['format']} | {stop['frames_before_stop']} | {stop['frame_s_median']} | "
                     f"{stop['stop_to_end_s']} | {stop['files_left'] or 'none'} | {stop['process_cpu_cores_in_next_second']} |")
    lines += ["", "Before the change (issue 26, served app, GIF): RSS 456 -> 1149 MiB after 185 of 600 frames; "
              "4-7 s of encoding after the tab closed.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--scenarios", default="gif+gif,gif+mp4", help="comma-separated, e.g. gif+gif,mp4+mp4")
    parser.add_argument("--quick", action="store_true", help="2 s movies")
    parser.add_argument("--out-dir", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = 2

    import nbody_core as nb
    from nbody_explorer.runtime.scheduler import FairPool

    nb.enable_float64()
    pool = FairPool(2)
    run = Run(args.n)
    # Warm: matplotlib, the GIF palette lookup, ffmpeg's first start.
    concurrent(pool, run, [".gif", ".mp4"], 1, 5)
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "n": args.n, "snapshots": len(run.time), "frames": args.seconds * args.fps, "concurrent": [], "stop": [],
    }
    for scenario in args.scenarios.split(","):
        suffixes = ["." + s for s in scenario.split("+")]
        print("recording", suffixes, flush=True)
        results["concurrent"].append(concurrent(pool, run, suffixes, args.seconds, args.fps))
        print(json.dumps(results["concurrent"][-1]), flush=True)
    for suffix in (".gif", ".mp4"):
        results["stop"].append(stop_latency(pool, run, suffix, 3.0, args.fps))
        print(json.dumps(results["stop"][-1]), flush=True)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "record.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "record.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
