"""IAS15 here against REBOUND's IAS15 on the Pythagorean problem to t = 70, side by side.

Same initial state (nbody_core.pythagorean(), centre-of-mass frame), one integration to
t = 70 with no intermediate output in both. For each contender: wall time (best of
``--repeats`` runs, compile excluded and reported apart; runs alternate between the two so a
changing machine load hits both alike, and CPU time is recorded beside wall time), steps, the
relative energy error at t = 70 and the outcome (m = 3 escapes, 4 + 5 bound). Both run with
the "global" step-size criterion (RS15's; our default) and with PRS23 (Pham, Rein & Spiegel
2024; REBOUND's default), each compared with REBOUND in the same mode. The dopri8 integrator
is timed once for reference.

    python benchmarks/bench_ias15.py            # full: 7 repeats
    python benchmarks/bench_ias15.py --quick    # 2 repeats, no dopri8

Writes benchmarks/results/ias15.json and ias15.md. REBOUND (GPL) is a benchmark-only
dependency (``pip install .[bench]``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results"
sys.path.insert(0, str(REPO_ROOT))
T_END = 70.0


def _outcome(position, velocity, mass) -> bool:
    """m = 3 escapes (unbound from the pair, receding) and 4 + 5 form a bound binary."""
    import numpy as np

    x, v, m = (np.asarray(a, dtype=float) for a in (position, velocity, mass))
    m_pair = m[1] + m[2]
    x_pair = (m[1] * x[1] + m[2] * x[2]) / m_pair
    v_pair = (m[1] * v[1] + m[2] * v[2]) / m_pair
    dx, dv = x[0] - x_pair, v[0] - v_pair
    escape = 0.5 * m[0] * m_pair / (m[0] + m_pair) * dv @ dv - m[0] * m_pair / np.linalg.norm(dx)
    dx12, dv12 = x[1] - x[2], v[1] - v[2]
    binary = 0.5 * m[1] * m[2] / m_pair * dv12 @ dv12 - m[1] * m[2] / np.linalg.norm(dx12)
    return bool(escape > 0 and dx @ dv > 0 and binary < 0)


def _rebound_run(state, mode):
    import numpy as np
    import rebound

    sim = rebound.Simulation()
    sim.integrator = "ias15"
    sim.integrator.adaptive_mode = mode
    for m, x in zip(np.asarray(state.mass), np.asarray(state.position)):
        sim.add(m=float(m), x=float(x[0]), y=float(x[1]), z=float(x[2]))
    e0 = sim.energy()
    wall, cpu = time.perf_counter(), time.process_time()
    sim.integrate(T_END, exact_finish_time=1)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    position = [[p.x, p.y, p.z] for p in sim.particles]
    velocity = [[p.vx, p.vy, p.vz] for p in sim.particles]
    return wall, cpu, {
        "steps": int(sim.steps_done),
        "energy_error": abs((sim.energy() - e0) / e0),
        "outcome_ok": _outcome(position, velocity, [p.m for p in sim.particles]),
    }


def _ours_run(state, solve, mode="global"):
    import jax

    wall, cpu = time.perf_counter(), time.process_time()
    solution = solve(state, t_end=T_END, num_saves=1, integrator="ias15", adaptive_mode=mode)
    jax.block_until_ready(solution.trajectory)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    trajectory, stats = solution.trajectory, solution.stats
    return wall, cpu, {
        "steps": stats.num_steps,
        "rejected": stats.num_rejected_steps,
        "iterations": stats.iterations,
        "energy_error": float(trajectory.relative_energy_error[-1]),
        "max_energy_error_every_step": float(trajectory.max_relative_energy_error),
        "outcome_ok": _outcome(trajectory.position[-1], trajectory.velocity[-1], trajectory.mass),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="2 repeats, no dopri8")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else args.repeats

    import nbody_core as nb

    nb.enable_float64()  # float64 runs need JAX's 64-bit mode (an explicit call, not an import)

    state = nb.pythagorean()
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    _ours_run(state, nb.solve)
    compile_s = time.perf_counter() - start
    _ours_run(state, nb.solve, "prs23")
    names = ("nbody_core ias15 global", "nbody_core ias15 PRS23", "REBOUND ias15 global", "REBOUND ias15 PRS23")
    runs = {name: [] for name in names}
    info = {}
    for _ in range(repeats):  # alternate so load changes hit every contender alike
        for name in names:
            mode = "global" if "global" in name else "PRS23"
            if name.startswith("nbody_core"):
                wall, cpu, details = _ours_run(state, nb.solve, mode.lower())
            else:
                wall, cpu, details = _rebound_run(state, mode)
            runs[name].append((wall, cpu))
            info[name] = details
    rows = []
    for name in names:
        walls, cpus = zip(*runs[name])
        rows.append({"name": name, "wall_s": min(walls), "cpu_s": min(cpus), **info[name]})
    reference = {row["name"]: row for row in rows}
    for row in rows:
        row["wall_over_rebound_global"] = row["wall_s"] / reference[names[2]]["wall_s"]
        row["wall_over_rebound_prs23"] = row["wall_s"] / reference[names[3]]["wall_s"]
        same = reference[names[2] if "global" in row["name"] else names[3]]
        row["wall_over_rebound_same_mode"] = row["wall_s"] / same["wall_s"]
        row["cpu_over_rebound_same_mode"] = row["cpu_s"] / same["cpu_s"]
    if not args.quick:
        nb.solve(state, t_end=T_END, num_saves=1, integrator="dopri8")
        wall, cpu = time.perf_counter(), time.process_time()
        solution = nb.solve(state, t_end=T_END, num_saves=1, integrator="dopri8")
        solution.trajectory.energy.block_until_ready()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        trajectory = solution.trajectory
        rows.append({
            "name": "nbody_core dopri8 (rtol 1e-13)", "wall_s": wall, "cpu_s": cpu,
            "steps": solution.stats.num_steps,
            "energy_error": float(trajectory.relative_energy_error[-1]),
            "outcome_ok": _outcome(trajectory.position[-1], trajectory.velocity[-1], trajectory.mass),
            "wall_over_rebound_global": wall / reference[names[2]]["wall_s"],
            "wall_over_rebound_prs23": wall / reference[names[3]]["wall_s"],
        })
    import rebound

    payload = {
        "problem": "Pythagorean three-body problem (masses 3, 4, 5 at rest on a 3-4-5 triangle) to t = 70",
        "repeats": repeats,
        "compile_s": compile_s,
        "rows": rows,
        "rebound_version": rebound.__version__,
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "ias15.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.results_dir / "ias15.md").write_text(_markdown(payload))
    print(_markdown(payload))
    return 0


def _markdown(payload) -> str:
    lines = [
        "# IAS15 against REBOUND's IAS15",
        "",
        f"{payload['problem']}; best of {payload['repeats']} alternating runs, compile excluded "
        f"(first call {payload['compile_s']:.1f} s with compile). REBOUND {payload['rebound_version']}.",
        "",
        "| integrator | wall ms | CPU ms | steps | iterations | \\|dE/E\\| at t = 70 | outcome | wall / REBOUND global "
        "| wall / REBOUND PRS23 | wall (CPU) / REBOUND same mode |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in payload["rows"]:
        cpu = "" if r.get("cpu_s") is None else f"{1e3 * r['cpu_s']:.1f}"
        same = (f"{r['wall_over_rebound_same_mode']:.2f} ({r['cpu_over_rebound_same_mode']:.2f})"
                if "wall_over_rebound_same_mode" in r else "")
        lines.append(
            f"| {r['name']} | {1e3 * r['wall_s']:.1f} | {cpu} | {r['steps']} | {r.get('iterations', '')} "
            f"| {r['energy_error']:.2e} | {'m=3 escapes, 4+5 bound' if r['outcome_ok'] else 'WRONG'} "
            f"| {r['wall_over_rebound_global']:.2f} | {r['wall_over_rebound_prs23']:.2f} | {same} |"
        )
    lines += [
        "",
        f"Load average {payload['load_average_before']:.1f} before, {payload['load_average_after']:.1f} "
        f"after, {payload['cpu_count']} CPUs: only ratios from one run are meaningful; on a loaded "
        "machine CPU time (all threads of the process) is the steadier measure. Iterations: "
        "predictor-corrector passes (7 force evaluations each, one batch).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
