"""Ensembles: the runner against raw vmap, a Python loop and REBOUND, over N and members.

For M members of a Plummer sphere (N bodies, leapfrog, softening 0.01, dt 1e-3, members
differing by seed), four ways to run the same members from the same initial states:

* **loop**: ``time_python_loop`` over every member: the jitted single-member functions
  (initial state, integration, summaries) called one member at a time;
* **raw vmap**: ``jax.jit(jax.vmap(nb.simulate))`` over the members' initial states, saving
  at the same cadence (initial states built beforehand, no summaries): what a user writes;
* **runner**: ``run_ensemble(spec)`` with its defaults (chunks, worker threads), initial
  states and every summary included: the whole call's wall time;
* **REBOUND**: its C leapfrog (``gravity="basic"``), one member after another from the same
  initial states, the energy taken at the same snapshots.

Compilation is excluded (one warm-up call each); wall times are the best of ``--repeats``
interleaved repetitions (load changes hit every contender alike), and the CPU seconds of
that repetition are given beside them: the runner uses every core (threads), the others one.
A second part compares, in a subprocess with 2 fake CPU devices, the runner on 1 device with
2 threads against 2 devices (sharded) with 1 thread, and checks the results are identical.

    python benchmarks/bench_ensembles.py                       # the full table (minutes)
    python benchmarks/bench_ensembles.py --quick --out-dir /tmp/bench   # smoke run

Writes benchmarks/results/ensembles.json and ensembles.md (or into --out-dir) with the date,
machine, versions and load average: on a shared machine only ratios measured side by side
in one run are meaningful.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results"
SOFTENING = 0.01
DT = 1e-3
#: (N, members, steps) of the default table: the Ensembles tab's default (N = 32, 256
#: members, 200 steps), issue 27's N = 64 x 500, small N, and members from 16 to 1024.
CONFIGS = ((8, 256, 200), (16, 256, 200), (32, 256, 200), (64, 256, 500), (32, 16, 200), (32, 1024, 200))
#: Issue 27's goals: the runner within 10 % of raw vmap; >= 1.8x the loop (>= 2.5x at
#: N <= 16); >= 2x REBOUND serial at N = 64 x 500.
GOAL_RAW_VMAP = 1 / 1.10


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _rebound_member(state, steps: int, num_saves: int) -> float:
    import rebound  # GPL: benchmark-only baseline

    import numpy as np

    sim = rebound.Simulation()
    sim.integrator, sim.gravity, sim.softening, sim.G, sim.dt = "leapfrog", "basic", SOFTENING, 1.0, DT
    x, v, m = (np.asarray(a, dtype=np.float64) for a in (state.position, state.velocity, state.mass))
    for i in range(len(m)):
        sim.add(m=float(m[i]), x=x[i, 0], y=x[i, 1], z=x[i, 2], vx=v[i, 0], vy=v[i, 1], vz=v[i, 2])
    energy = sim.energy()
    for _ in range(num_saves):
        sim.steps(steps // num_saves)
        energy = sim.energy()
    return energy


def measure(num_bodies: int, members: int, steps: int, repeats: int) -> dict:
    """One row: best wall seconds (and CPU seconds) of each contender on the same members."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import nbody_core as nb
    from nbody_core.ensembles import EnsembleSpec, member_initial_state, run_ensemble, time_python_loop

    spec = EnsembleSpec(system="plummer", num_bodies=num_bodies, num_members=members, num_steps=steps,
                        dt=DT, softening=SOFTENING, seed=0, integrator="leapfrog")
    states = [member_initial_state(spec, i) for i in range(members)]
    stacked = jax.block_until_ready(jax.tree.map(lambda *leaves: jnp.stack(leaves), *states))
    host_states = [jax.tree.map(np.asarray, s) for s in states]
    params = nb.PhysicsParams(G=1.0, softening=SOFTENING)
    raw_fn = jax.jit(jax.vmap(lambda s: nb.simulate(s, dt=DT, num_steps=steps, save_every=steps // spec.num_saves,
                                                      params=params).energy))

    def timed(fn):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - start, time.process_time() - cpu

    contenders = {
        "loop": lambda: time_python_loop(spec, num_members=None),
        "raw_vmap": lambda: jax.block_until_ready(raw_fn(stacked)),
        "runner": lambda: run_ensemble(spec),
        "rebound": lambda: [_rebound_member(s, steps, spec.num_saves) for s in host_states],
    }
    compile_s = {}
    for name, fn in contenders.items():  # warm-up: compiles, first-call costs
        compile_s[name] = timed(fn)[0]
    best = {name: (float("inf"), float("inf")) for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            if name == "loop":  # its own timer: the loop alone, compile and set-up excluded
                out = fn()
                result = (out["run_s"], out["cpu_s"])
            elif name == "runner":
                timing = fn().timing
                result = (timing["wall_s"], timing["cpu_s"])
            else:
                result = timed(fn)
            if result[0] < best[name][0]:
                best[name] = result
    runner = run_ensemble(spec)
    row = {"num_bodies": num_bodies, "members": members, "steps": steps,
           "chunk_size": runner.timing["chunk_size"], "workers": runner.timing["workers"],
           "num_chunks": runner.timing["num_chunks"]}
    for name, (wall, cpu) in best.items():
        row[f"{name}_s"], row[f"{name}_cpu_s"] = wall, cpu
        row[f"{name}_members_per_s"] = members / wall
    row["runner_vs_raw_vmap"] = row["raw_vmap_s"] / row["runner_s"]
    row["runner_vs_loop"] = row["loop_s"] / row["runner_s"]
    row["raw_vmap_vs_loop"] = row["loop_s"] / row["raw_vmap_s"]
    row["runner_vs_rebound"] = row["rebound_s"] / row["runner_s"]
    row["load_average"] = os.getloadavg()[0]
    print(f"N={num_bodies} M={members} steps={steps}: loop {row['loop_s']:.3f} s, raw vmap {row['raw_vmap_s']:.3f}, "
          f"runner {row['runner_s']:.3f}, REBOUND {row['rebound_s']:.3f}; runner/raw {row['runner_vs_raw_vmap']:.2f}, "
          f"x loop {row['runner_vs_loop']:.2f}, x REBOUND {row['runner_vs_rebound']:.2f} "
          f"(load {row['load_average']:.1f})", file=sys.stderr, flush=True)
    return row


def goals(row) -> list[str]:
    """Issue 27's goals that apply to a row, each with its verdict."""
    out = [f"runner >= 0.91x raw vmap: {'met' if row['runner_vs_raw_vmap'] >= GOAL_RAW_VMAP else 'NOT met'}"]
    loop_goal = 2.5 if row["num_bodies"] <= 16 else 1.8
    if row["num_bodies"] <= 16 or (row["num_bodies"], row["members"], row["steps"]) in ((32, 256, 200), (64, 256, 500)):
        out.append(f"runner >= {loop_goal}x loop: {'met' if row['runner_vs_loop'] >= loop_goal else 'NOT met'}")
    if (row["num_bodies"], row["steps"]) == (64, 500):
        out.append(f"runner >= 2x REBOUND: {'met' if row['runner_vs_rebound'] >= 2 else 'NOT met'}")
    return out


_SHARDED_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import jax, numpy as np
    import nbody_core
    from nbody_core.ensembles import EnsembleSpec, SUMMARIES, run_ensemble
    nbody_core.enable_float64()
    members, n, steps, repeats = (int(a) for a in sys.argv[1:5])
    spec = EnsembleSpec(system="plummer", num_bodies=n, num_members=members, num_steps=steps, seed=0)
    layouts = {"1 device, 1 thread": dict(devices=1, workers=1), "1 device, 2 threads": dict(devices=1, workers=2),
               "2 devices (sharded), 1 thread": dict(devices=2, workers=1)}
    out, results = {}, {}
    for name, kwargs in layouts.items():
        results[name] = run_ensemble(spec, **kwargs)
    best = {name: float("inf") for name in layouts}
    for _ in range(repeats):
        for name, kwargs in layouts.items():
            best[name] = min(best[name], run_ensemble(spec, **kwargs).timing["wall_s"])
    first = next(iter(results.values()))
    for name, result in results.items():
        same = all(np.array_equal(first.summaries[k], result.summaries[k]) for k in SUMMARIES)
        out[name] = {"wall_s": best[name], "members_per_s": members / best[name], "identical": bool(same),
                     "chunk_size": result.timing["chunk_size"], "num_chunks": result.timing["num_chunks"]}
    print(json.dumps(out))
    """
)


def measure_sharded(*, members, num_bodies, num_steps, repeats):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", _SHARDED_SCRIPT, str(members), str(num_bodies), str(num_steps), str(repeats)],
        env=env, capture_output=True, text=True, timeout=3600, cwd=REPO_ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"sharded run failed:\n{done.stderr}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"layouts: {report}", file=sys.stderr, flush=True)
    return {"members": members, "num_bodies": num_bodies, "num_steps": num_steps, "layouts": report}


def markdown(payload) -> str:
    lines = [
        "# Ensembles: the runner against raw vmap, a Python loop and REBOUND (Plummer, leapfrog, float64)",
        "",
        f"{payload['date_utc']}, {payload['machine']['cpu']} ({payload['machine']['cores']} cores), "
        f"jax {payload['versions']['jax']}, REBOUND {payload['versions']['rebound']}; load average "
        f"{payload['load_average_before'][0]:.1f} before, {payload['load_average_after'][0]:.1f} after "
        "(each row's own in its last column).",
        f"Same members from the same initial states (softening {SOFTENING}, dt {DT}); compile excluded; best wall "
        f"time of {payload['repeats']} interleaved repeats, CPU seconds of that repeat in brackets. *loop*: "
        "`time_python_loop` over every member (jitted single member, one after another, initial state and "
        "summaries included). *raw vmap*: `jax.jit(jax.vmap(nb.simulate))` over the prepared initial states, "
        "energies at the same 20 snapshots, no summaries. *runner*: the whole `run_ensemble(spec)` call with "
        "its defaults (initial states, summaries and copies to the host included; chunks shared by worker "
        "threads, one per core). *REBOUND*: its C leapfrog, one member after another, energy at the same "
        "snapshots. Ratios are of wall times measured side by side.",
        "",
        "| N | members | steps | loop s | raw vmap s | runner s | REBOUND s | runner / raw vmap | runner x loop "
        "| raw vmap x loop | runner x REBOUND | chunk x calls, threads | load |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in payload["rows"]:
        lines.append(
            f"| {r['num_bodies']} | {r['members']} | {r['steps']} | {r['loop_s']:.3f} ({r['loop_cpu_s']:.2f}) | "
            f"{r['raw_vmap_s']:.3f} ({r['raw_vmap_cpu_s']:.2f}) | {r['runner_s']:.3f} ({r['runner_cpu_s']:.2f}) | "
            f"{r['rebound_s']:.3f} ({r['rebound_cpu_s']:.2f}) | {r['runner_vs_raw_vmap']:.2f}x | "
            f"{r['runner_vs_loop']:.2f}x | {r['raw_vmap_vs_loop']:.2f}x | {r['runner_vs_rebound']:.2f}x | "
            f"{r['chunk_size']} x {r['num_chunks']}, {r['workers']} | {r['load_average']:.1f} |"
        )
    lines += ["", "Goals of issue 27 (wall-time ratios of this run):", ""]
    for r in payload["rows"]:
        lines.append(f"- N = {r['num_bodies']}, {r['members']} members, {r['steps']} steps: " + "; ".join(goals(r)))
    s = payload.get("sharded")
    if s:
        lines += [
            "",
            f"## Threads or sharding: {s['members']} members, N = {s['num_bodies']}, {s['num_steps']} steps",
            "",
            "One process with 2 fake CPU devices (`XLA_FLAGS=--xla_force_host_platform_device_count=2`); best "
            "wall time of the whole `run_ensemble` call.",
            "",
            "| layout | wall s | members/s | chunk x calls | results identical |",
            "|---|---:|---:|---:|---|",
        ]
        for name, d in s["layouts"].items():
            lines.append(f"| {name} | {d['wall_s']:.3f} | {d['members_per_s']:.0f} | {d['chunk_size']} x "
                         f"{d['num_chunks']} | {'yes' if d['identical'] else 'NO'} |")
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=int, nargs=3, action="append", metavar=("N", "MEMBERS", "STEPS"),
                        help="a row (repeatable); default: the table in CONFIGS")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-sharded", action="store_true", help="skip the threads-or-sharding subprocess")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in seconds")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    configs = [tuple(c) for c in args.config] if args.config else list(CONFIGS)
    sharded_size = (256, 32, 200)
    if args.quick:
        configs, args.repeats, sharded_size = [(8, 8, 20)], 1, (8, 8, 20)
    import jax
    import rebound

    import nbody_core

    nbody_core.enable_float64()  # float64 runs need JAX's 64-bit mode (the subprocess calls it too)
    load_before = os.getloadavg()
    rows = [measure(n, m, steps, args.repeats) for n, m, steps in configs]
    sharded = None if args.no_sharded else measure_sharded(
        members=sharded_size[0], num_bodies=sharded_size[1], num_steps=sharded_size[2], repeats=args.repeats)
    payload = {
        "benchmark": "ensembles",
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count() or 1, "platform": platform.platform()},
        "versions": {"python": platform.python_version(), "jax": jax.__version__, "rebound": rebound.__version__},
        "repeats": args.repeats,
        "rows": rows,
        "sharded": sharded,
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "quick": args.quick,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "ensembles.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out_dir / "ensembles.md").write_text(markdown(payload))
    print(f"wrote {args.out_dir / 'ensembles.json'} and ensembles.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
