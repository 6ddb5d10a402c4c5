"""The compute pool with real Simulate frames: 2 heavy sessions and 4 light ones, no browser.

Each session is a thread that asks the pool (app/runtime/scheduler.py) for one frame of its own
:class:`nbody_explorer.state.simulate.SimulationState` at a time, as the Simulate tab's frame loop does
(``step_frame(cancelled=job.take_turn)``: a checkpoint between the frame's compiled calls):
heavy sessions at Plummer N = ``--heavy-n``, Yoshida-4, ``--heavy-steps`` steps per frame, back
to back; light sessions at Plummer N = 200, 1 step per frame, waiting ``--think-ms`` after each
frame (the page painting it). Two slots. The pool as it is (fair by measured cost, a slot kept
for short work) and the round robin before it (``charge="turn"``, no slot kept) run one after
the other, each for ``--seconds`` after every run is compiled.

    python benchmarks/bench_fair_pool_frames.py [--seconds 20]

Writes benchmarks/results/fair_pool_frames.json and .md with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results"
sys.path.insert(0, str(REPO_ROOT))

POLICIES = (("cost + kept slot (default)", "time", True), ("turns (before)", "turn", False))


def run(*, charge: str, reserve: bool, seconds: float, heavy_n: int, heavy_steps: int, think_s: float) -> dict:
    from nbody_explorer.runtime.scheduler import FairPool, Job
    from nbody_explorer.state.simulate import SimulationState

    pool = FairPool(2, charge=charge, reserve=reserve)
    states = {f"heavy{i}": SimulationState(preset="plummer", num_bodies=heavy_n, integrator="yoshida4",
                                           steps_per_frame=heavy_steps, seed=i) for i in range(2)}
    states.update({f"light{i}": SimulationState(preset="plummer", num_bodies=200, steps_per_frame=1, seed=10 + i)
                   for i in range(4)})
    for state in states.values():
        state.prepare()  # compiled before the window
    stats: dict[str, dict] = {}

    def session(name: str, state) -> None:
        waits, frames = [], 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            asked = time.perf_counter()
            job = pool.submit(Job(lambda job: state.step_frame(cancelled=job.take_turn), session=name))
            job.finished.wait(600)
            waits.append(time.perf_counter() - asked)
            frames += 1
            if name.startswith("light"):
                time.sleep(think_s)
        waits.sort()
        stats[name] = {"frames_per_s": round(frames / seconds, 2), "p50_ms": round(1000 * waits[len(waits) // 2]),
                       "max_ms": round(1000 * waits[-1])}

    threads = [threading.Thread(target=session, args=item) for item in states.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return stats


def _markdown(payload: dict) -> str:
    o = payload["options"]
    lines = [
        "# Compute pool with real Simulate frames: 2 heavy sessions + 4 light ones (no browser)",
        "",
        f"`python benchmarks/bench_fair_pool_frames.py`: heavy = Plummer N = {o['heavy_n']}, yoshida4, "
        f"{o['heavy_steps']} steps per frame, frames back to back; light = Plummer N = 200, 1 step per frame, "
        f"{o['think_ms']:g} ms between frames; 2 slots; frames checkpoint between their compiled calls; "
        f"{o['seconds']:g} s per policy after compiling. Wait = from asking for a frame to having it.",
        "",
        "| policy | light frames/s (min / mean) | light wait p50 / max (ms) | heavy frames/s (mean) | heavy wait p50 (ms) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, _charge, _reserve in POLICIES:
        stats = payload["runs"][name]
        light = [v for k, v in stats.items() if k.startswith("light")]
        heavy = [v for k, v in stats.items() if k.startswith("heavy")]
        lines.append(
            f"| {name} | {min(v['frames_per_s'] for v in light):.1f} / "
            f"{statistics.mean(v['frames_per_s'] for v in light):.1f} "
            f"| {statistics.median(v['p50_ms'] for v in light):.0f} / {max(v['max_ms'] for v in light):.0f} "
            f"| {statistics.mean(v['frames_per_s'] for v in heavy):.2f} "
            f"| {statistics.median(v['p50_ms'] for v in heavy):.0f} |"
        )
    load = payload["load_average"]
    lines += ["", f"Load average (1 min) {load['before'][0]:.2f} before, {load['after'][0]:.2f} after "
              f"({payload['cpus']} CPUs, a shared machine)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--heavy-n", type=int, default=1000)
    parser.add_argument("--heavy-steps", type=int, default=100)
    parser.add_argument("--think-ms", type=float, default=33.0)
    parser.add_argument("--output", default="fair_pool_frames")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    import nbody_core

    nbody_core.enable_float64()  # the Simulate tab's default precision
    before = os.getloadavg()
    runs = {}
    for name, charge, reserve in POLICIES:
        runs[name] = run(charge=charge, reserve=reserve, seconds=args.seconds, heavy_n=args.heavy_n,
                         heavy_steps=args.heavy_steps, think_s=args.think_ms / 1000)
        print(name, json.dumps(runs[name]), flush=True)
    payload = {"options": {"seconds": args.seconds, "heavy_n": args.heavy_n, "heavy_steps": args.heavy_steps,
                           "think_ms": args.think_ms},
               "runs": runs, "load_average": {"before": list(before), "after": list(os.getloadavg())},
               "cpus": os.cpu_count()}
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"{args.output}.json").write_text(json.dumps(payload, indent=1) + "\n")
    markdown = _markdown(payload)
    (args.results_dir / f"{args.output}.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
