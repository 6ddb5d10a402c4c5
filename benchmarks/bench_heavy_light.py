"""A light session's frames/s while a heavy one plays, before and after a change (issue 26).

Serves a checkout (``python -m panel serve app``), connects two frame clients
(benchmarks/frame_client.py: Bokeh's websocket protocol, no browser), presses Play in both
and counts the light session's frames after a settling second. Run once per checkout to
compare (``--repo`` of the old code, then this one), on the same load:

    python benchmarks/bench_heavy_light.py --repo /path/to/old --label before
    python benchmarks/bench_heavy_light.py --label after

Appends to benchmarks/results/heavy_light.json and rewrites heavy_light.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import load_test  # noqa: E402
from frame_client import run_clients  # noqa: E402

RESULTS = HERE / "results"
LIGHT = "?preset=plummer&n=200&steps=1"
HEAVY = {
    "none": None,
    "hostile link (dopri8, N = 2000, dt = 1, 200 steps/frame)": "?preset=plummer&n=2000&integrator=dopri8&dt=1&steps=200",
    "yoshida4, N = 2000, 60 steps/frame": "?preset=plummer&n=2000&integrator=yoshida4&steps=60",
    "two hostile links": ["?preset=plummer&n=2000&integrator=dopri8&dt=1&steps=200"] * 2,
}


SKIP_S = 10.0  # the first seconds of play are not counted (compiling N = 200 on a loaded machine)


def measure(repo: Path, duration_s: float, only: list[str] | None = None) -> list[dict]:
    rows = []
    cache = tempfile.mkdtemp(prefix="heavy-light-jax-")  # shared: later scenarios reuse compilations
    for label, heavy in HEAVY.items():
        if only and label not in only:
            continue
        port = load_test.free_port()
        base = f"http://127.0.0.1:{port}"
        load_test.REPO_ROOT = repo  # start_server serves app/ of this checkout...
        os.environ["PYTHONPATH"] = str(repo)  # ...and imports its packages, not the installed ones
        if True:
            process = load_test.start_server(port, log_path=Path(cache) / f"server_{port}.log", cache_dir=cache)
            try:
                load_test.wait_live(base, process)
                heavies = [] if heavy is None else heavy if isinstance(heavy, list) else [heavy]
                queries = [*heavies, LIGHT]
                load_before = os.getloadavg()[0]
                cpu_before = load_test.cpu_seconds(process.pid)
                start = time.perf_counter()
                results = asyncio.run(run_clients(base, queries, duration_s))
                cpu = (load_test.cpu_seconds(process.pid) - cpu_before) / (time.perf_counter() - start)
                light = results[-1]
                rows.append(dict(heavy=label, light_frames_per_s=round(light.frames_per_s(skip_s=SKIP_S), 2),
                                 heavy_frames=None if heavy is None else sum(len(r.arrivals) for r in results[:-1]),
                                 server_cores=round(cpu, 2), load_before=round(load_before, 2),
                                 load_after=round(os.getloadavg()[0], 2),
                                 errors=[r.error for r in results if r.error]))
                print(rows[-1], flush=True)
            finally:
                load_test.stop_server(process)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=HERE.parent, help="checkout to serve (default: this one)")
    parser.add_argument("--label", default="after", help="name of this run in the results")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds both sessions play")
    parser.add_argument("--only", action="append", help="run only this heavy scenario (its label; repeatable)")
    args = parser.parse_args(argv)
    rows = measure(args.repo.resolve(), args.duration, args.only)
    path = RESULTS / "heavy_light.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append(dict(label=args.label, repo=str(args.repo), date=time.strftime("%Y-%m-%dT%H:%M:%S%z"), rows=rows))
    path.write_text(json.dumps(runs, indent=2))
    lines = ["# A light session (Plummer N = 200, 1 step/frame) while a heavy one plays (bench_heavy_light.py)", "",
             "| run | heavy session | light frames/s | heavy frames received | server cores | load before / after |",
             "|---|---|---:|---:|---:|---|"]
    for run in runs:
        for row in run["rows"]:
            lines.append(f"| {run['label']} ({run['date'][:16]}) | {row['heavy']} | {row['light_frames_per_s']} | "
                         f"{row['heavy_frames'] if row['heavy_frames'] is not None else '-'} | {row['server_cores']} | "
                         f"{row['load_before']} / {row['load_after']} |")
    lines += ["", f"Frame clients (no browser), {args.duration:.0f} s of play, the first {SKIP_S:.0f} s not counted; "
              f"{os.cpu_count()} cores shared with other work (load average beside each row)."]
    (RESULTS / "heavy_light.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
