"""The compute pool's fairness: a session with 10x costlier pieces vs 3 light ones.

Fake jobs of measured cost drive :class:`nbody_explorer.runtime.scheduler.FairPool` under both policies
in one run: ``time`` (fair by measured cost, the default since issue 21 item 2) and ``turn``
(every piece costs the same: the round robin before it). One (or two) heavy sessions compute all
the time in pieces of ``--heavy-ms`` (a heavy frame: ``--heavy-pieces`` pieces); three light
sessions ask for pieces of ``--light-ms``:

- ``backlogged``: the light sessions also compute all the time (one piece per job, the next
  job at once): the share of slot time each session gets.
- ``live``: each light session waits ``--think-ms`` after each job (its page painting the
  frame) before asking again, as a playing Simulate tab does: its frames/s and the latency
  from asking to getting the frame.

A piece holds its slot for its cost by sleeping (``--spin`` busy-waits instead, which a
loaded machine stretches); its cost is measured (``perf_counter`` around it), and the slot
time a session got is the sum of its pieces' measured costs.

    python benchmarks/bench_fair_pool.py [--seconds 8] [--slots 1 2] [--quick]

Writes benchmarks/results/fair_pool.json and fair_pool.md (``--output`` changes the stem,
``--results-dir`` the folder) with the load average.
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

from nbody_explorer.runtime.scheduler import FairPool, Job  # noqa: E402 - after the path


#: (charge, reserve): the pool's default, its fairness without the slot kept for short work,
#: and the round robin of earlier releases (every piece costs the same, every slot for anyone).
POLICIES = (("time", True), ("time", False), ("turn", False))
NAMES = {("time", True): "cost + kept slot (default)", ("time", False): "cost", ("turn", False): "turns (before)"}


def _hold(seconds: float, spin: bool) -> float:
    """Hold the slot for ``seconds``; returns the measured seconds."""
    start = time.perf_counter()
    if spin:
        while time.perf_counter() - start < seconds:
            pass
    else:
        time.sleep(seconds)
    return time.perf_counter() - start


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run_case(*, policy: str, reserve: bool, slots: int, scenario: str, heavies: int, seconds: float, heavy_s: float,
             heavy_pieces: int, light_s: float, think_s: float, spin: bool) -> dict:
    """One configuration: slot time, jobs and latencies per session."""
    pool = FairPool(slots=slots, charge=policy, reserve=reserve)
    stop = threading.Event()
    lock = threading.Lock()
    heavy_names = [f"heavy{i}" for i in range(heavies)]
    used = {name: 0.0 for name in (*heavy_names, "light0", "light1", "light2")}
    pieces = dict.fromkeys(used, 0)
    latencies: dict[str, list[float]] = {name: [] for name in used}

    def piece(name: str, cost: float) -> None:
        measured = _hold(cost, spin)
        with lock:
            used[name] += measured
            pieces[name] += 1

    def heavy_job(name):
        def fn(job):
            for _ in range(heavy_pieces):
                if stop.is_set():
                    return
                piece(name, heavy_s)
                job.checkpoint()
        return fn

    def light_job(name):
        return lambda job: piece(name, light_s)

    def session(name: str) -> None:
        while not stop.is_set():
            asked = time.perf_counter()
            heavy = name.startswith("heavy")
            job = pool.submit(Job(heavy_job(name) if heavy else light_job(name), session=name))
            while not job.finished.wait(0.05):
                if stop.is_set():
                    job.cancel()
            if job.completed:
                latencies[name].append(time.perf_counter() - asked)
            if not heavy and scenario == "live":
                stop.wait(think_s)

    start = time.perf_counter()
    threads = [threading.Thread(target=session, args=(name,), daemon=True) for name in used]
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join(30)
    elapsed = time.perf_counter() - start
    total = sum(used.values())
    lights = [f"light{i}" for i in range(3)]
    light_rates = [len(latencies[n]) / elapsed for n in lights]
    light_latency = [x for n in lights for x in latencies[n]]
    return {
        "policy": policy, "reserve": reserve, "slots": slots, "scenario": scenario, "heavy_sessions": heavies,
        "seconds": round(elapsed, 2),
        "slot_share": {n: round(used[n] / total, 4) if total else 0.0 for n in used},
        "slot_seconds": {n: round(used[n], 3) for n in used},
        "pieces": pieces,
        "light_jobs_per_s": [round(r, 2) for r in light_rates],
        "light_latency_ms": {
            "p50": round(1000 * _percentile(light_latency, 0.5), 1),
            "p95": round(1000 * _percentile(light_latency, 0.95), 1),
            "max": round(1000 * max(light_latency, default=float("nan")), 1),
        },
        "heavy_jobs_per_s": round(sum(len(latencies[n]) for n in heavy_names) / elapsed, 3),
    }


def _markdown(payload: dict) -> str:
    o = payload["options"]
    lines = [
        "# Compute pool fairness: heavy sessions (10x cost per piece) vs 3 light ones",
        "",
        f"`python benchmarks/bench_fair_pool.py` (fake jobs: a heavy piece holds a slot {o['heavy_ms']:g} ms, "
        f"{o['heavy_pieces']} pieces per heavy job; a light job is one piece of {o['light_ms']:g} ms; pieces "
        f"{'busy-wait' if o['spin'] else 'sleep'}, their cost measured). Policies: *cost*: fair by measured cost; "
        "*kept slot*: with 2 slots or more, long sessions (last two pieces > 50 ms) leave one slot to short work "
        "while it is about; *turns (before)*: every piece costs the same and no slot is kept, the round robin "
        "before this change (app/runtime/scheduler.py; one slot per session still holds, which changes nothing "
        "here: each session runs one job at a time). backlogged: every session asks "
        f"again at once; live: a light session waits {o['think_ms']:g} ms after each job (its page painting), as a "
        f"playing tab does. {o['seconds']:g} s per row, all rows in one run.",
        "",
        "| scenario | heavy sessions | slots | policy | share of slot time: each heavy (mean) | each light (mean) "
        "| light jobs/s (min / mean) | light latency p50 / p95 / max (ms) |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for case in payload["cases"]:
        share = case["slot_share"]
        light_share = statistics.mean(share[f"light{i}"] for i in range(3))
        rates = case["light_jobs_per_s"]
        lat = case["light_latency_ms"]
        heavy_share = statistics.mean(share[f"heavy{i}"] for i in range(case["heavy_sessions"]))
        lines.append(
            f"| {case['scenario']} | {case['heavy_sessions']} | {case['slots']} | {NAMES[case['policy'], case['reserve']]} | {100 * heavy_share:.1f} % "
            f"| {100 * light_share:.1f} % | {min(rates):.1f} / {statistics.mean(rates):.1f} "
            f"| {lat['p50']:.0f} / {lat['p95']:.0f} / {lat['max']:.0f} |"
        )
    load = payload["load_average"]
    lines += [
        "",
        f"Load average (1 min) {load['before'][0]:.2f} before, {load['after'][0]:.2f} after "
        f"({os.cpu_count()} CPUs, a shared machine).",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per configuration")
    parser.add_argument("--slots", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--heavy-ms", type=float, default=100.0)
    parser.add_argument("--heavy-pieces", type=int, default=20)
    parser.add_argument("--light-ms", type=float, default=10.0)
    parser.add_argument("--think-ms", type=float, default=33.0)
    parser.add_argument("--spin", action="store_true", help="busy-wait pieces instead of sleeping")
    parser.add_argument("--quick", action="store_true", help="1.5 s per configuration (a smoke run)")
    parser.add_argument("--output", default="fair_pool")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    seconds = 1.5 if args.quick else args.seconds
    before = os.getloadavg()
    cases = []
    for scenario, heavies in (("backlogged", 1), ("live", 1), ("live", 2)):
        for slots in args.slots:
            for policy, reserve in POLICIES:
                case = run_case(policy=policy, reserve=reserve, slots=slots, scenario=scenario, heavies=heavies, seconds=seconds,
                                heavy_s=args.heavy_ms / 1000, heavy_pieces=args.heavy_pieces,
                                light_s=args.light_ms / 1000, think_s=args.think_ms / 1000, spin=args.spin)
                cases.append(case)
                print(json.dumps(case), flush=True)
    payload = {
        "options": {"seconds": seconds, "heavy_ms": args.heavy_ms, "heavy_pieces": args.heavy_pieces,
                    "light_ms": args.light_ms, "think_ms": args.think_ms, "spin": args.spin},
        "cases": cases,
        "load_average": {"before": list(before), "after": list(os.getloadavg())},
        "cpus": os.cpu_count(),
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"{args.output}.json").write_text(json.dumps(payload, indent=1) + "\n")
    markdown = _markdown(payload)
    (args.results_dir / f"{args.output}.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
