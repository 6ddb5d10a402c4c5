"""vmap over members against a Python loop over the jitted single simulation, and sharding.

For M members of a Plummer sphere (N bodies, leapfrog, members differing by seed), both
sides run the same single-system code from :mod:`nbody_core.ensembles`:

* **vmap**: ``run_ensemble`` (``jit(vmap(member))`` in chunks of ``--chunk-size``);
* **loop**: ``time_python_loop``, a Python ``for`` loop calling the jitted single-member
  functions one member at a time. For M above ``--loop-max-members`` the loop is timed on
  that many members spread over the ensemble and extrapolated linearly to M (marked).

Compile time is measured apart from run time (ahead-of-time ``lower().compile()``); run
times are the best of ``--repeats`` interleaved repetitions. A second part runs one ensemble
on 4 fake CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=4`` in a
subprocess) against 1 device, with the same per-device chunk, and checks the results are
bit-identical. On a 2-core machine 4 fake devices share 2 cores: expect at most ~2x.

    python benchmarks/bench_ensembles.py [--members 1 16 128 1024] [--n 64] [--steps 500]
    python benchmarks/bench_ensembles.py --quick --out-dir /tmp/bench   # smoke run, seconds

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
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_vmap_vs_loop(*, members, num_bodies, num_steps, chunk_size, loop_max_members, repeats, seed=0):
    """Rows of ``{members, vmap_*, loop_*, ratio}`` (seconds, simulations/s)."""
    import jax

    from nbody_core.ensembles import EnsembleSpec, run_ensemble, time_python_loop

    rows = []
    for m in members:
        spec = EnsembleSpec(system="plummer", num_bodies=num_bodies, num_members=m, num_steps=num_steps,
                            seed=seed, integrator="leapfrog")
        chunk = None if chunk_size is None else min(chunk_size, m)
        first = run_ensemble(spec, chunk_size=chunk)  # compiles (cached for the repeats)
        subset = min(m, loop_max_members)
        first_loop = time_python_loop(spec, num_members=subset)
        vmap_runs, loop_runs = [], []
        for _ in range(repeats):  # interleaved, so load changes hit both sides alike
            vmap_runs.append(run_ensemble(spec, chunk_size=chunk).timing["run_s"])
            loop_runs.append(time_python_loop(spec, num_members=subset)["seconds_per_member"])
        vmap_s = min(vmap_runs)
        per_member = min(loop_runs)
        loop_s = per_member * m
        rows.append({
            "members": m,
            "chunk_size": first.timing["chunk_size"],
            "num_chunks": first.timing["num_chunks"],
            "vmap_compile_s": first.timing["compile_s"],
            "vmap_run_s": vmap_s,
            "vmap_simulations_per_s": m / vmap_s,
            "loop_compile_s": first_loop["compile_s"],
            "loop_members_timed": subset,
            "loop_extrapolated": subset < m,
            "loop_seconds_per_member": per_member,
            "loop_run_s": loop_s,
            "loop_simulations_per_s": 1.0 / per_member,
            "ratio": loop_s / vmap_s,
            "device": str(jax.devices()[0].platform),
        })
        print(f"M={m:5d}: vmap {m / vmap_s:9.1f} sims/s, loop {1 / per_member:9.1f} sims/s"
              f"{' (extrapolated)' if subset < m else ''}, ratio {loop_s / vmap_s:.2f}", file=sys.stderr)
    return rows


_SHARDED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    import nbody_core
    from nbody_core.ensembles import EnsembleSpec, SUMMARIES, run_ensemble
    nbody_core.enable_float64()
    members, n, steps, chunk, repeats = (int(a) for a in sys.argv[1:6])
    spec = EnsembleSpec(system="plummer", num_bodies=n, num_members=members, num_steps=steps, seed=0)
    out = {"devices_available": len(jax.devices())}
    results = {}
    for devices in (1, 4):
        first = run_ensemble(spec, devices=devices, chunk_size=chunk)
        runs = [run_ensemble(spec, devices=devices, chunk_size=chunk) for _ in range(repeats)]
        results[devices] = runs[0]
        best = min(r.timing["run_s"] for r in runs)
        out[str(devices)] = {"compile_s": first.timing["compile_s"], "run_s": best,
                             "simulations_per_s": members / best, "num_chunks": first.timing["num_chunks"]}
    a, b = results[1], results[4]
    out["identical"] = bool(all(np.array_equal(a.summaries[k], b.summaries[k]) for k in SUMMARIES)
                            and np.array_equal(a.energy, b.energy))
    print(json.dumps(out))
    """
)


def measure_sharded(*, members, num_bodies, num_steps, chunk_size, repeats):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", _SHARDED_SCRIPT, str(members), str(num_bodies), str(num_steps), str(chunk_size),
         str(repeats)],
        env=env, capture_output=True, text=True, timeout=3600, cwd=REPO_ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"sharded run failed:\n{done.stderr}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report.update(members=members, num_bodies=num_bodies, num_steps=num_steps, chunk_size_per_device=chunk_size,
                  speedup_4_over_1=report["1"]["run_s"] / report["4"]["run_s"])
    print(f"sharded M={members}: 1 device {report['1']['simulations_per_s']:.1f} sims/s, 4 fake devices "
          f"{report['4']['simulations_per_s']:.1f} sims/s, identical={report['identical']}", file=sys.stderr)
    return report


def _compile(seconds: float) -> str:
    # Below 0.05 s the executable came from the cache of an earlier row (same chunk shape).
    return f"{seconds:.2f}" if seconds >= 0.05 else "reused"


def markdown(payload) -> str:
    lines = [
        f"# Ensembles: vmap vs Python loop (Plummer, N = {payload['num_bodies']}, {payload['num_steps']} leapfrog "
        "steps, float64)",
        "",
        f"{payload['date_utc']}, {payload['machine']['cpu']} ({payload['machine']['cores']} cores), "
        f"jax {payload['versions']['jax']}, device {payload['rows'][0]['device']}; load average "
        f"{payload['load_average_before'][0]:.1f} before, {payload['load_average_after'][0]:.1f} after.",
        "Run times exclude compilation (reported apart); best of "
        f"{payload['repeats']} interleaved repeats. `loop*`: timed on {payload['loop_max_members']} members "
        "spread over the ensemble and extrapolated linearly to M. `reused`: compiled for an earlier row.",
        "",
        "| members M | vmap sims/s | loop sims/s | vmap speedup | vmap run s | loop run s | vmap compile s | "
        "loop compile s | chunk |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in payload["rows"]:
        star = "*" if r["loop_extrapolated"] else ""
        lines.append(
            f"| {r['members']} | {r['vmap_simulations_per_s']:.1f} | {r['loop_simulations_per_s']:.1f} | "
            f"{r['ratio']:.2f}x | {r['vmap_run_s']:.3f} | {r['loop_run_s']:.3f}{star} | "
            f"{_compile(r['vmap_compile_s'])} | {_compile(r['loop_compile_s'])} | {r['chunk_size']} |"
        )
    s = payload["sharded"]
    lines += [
        "",
        f"## Sharded: {s['members']} members (N = {s['num_bodies']}, {s['num_steps']} steps), "
        f"{s['chunk_size_per_device']} members per device per call",
        "",
        "4 fake CPU devices (`XLA_FLAGS=--xla_force_host_platform_device_count=4`) on this machine's cores, "
        "NamedSharding over a 1-D `members` mesh.",
        "",
        "| devices | sims/s | run s | compile s | calls |",
        "|---:|---:|---:|---:|---:|",
    ]
    for devices in ("1", "4"):
        d = s[devices]
        lines.append(f"| {devices} | {d['simulations_per_s']:.1f} | {d['run_s']:.3f} | {d['compile_s']:.2f} | "
                     f"{d['num_chunks']} |")
    lines += ["", f"Speedup 4 devices / 1: {s['speedup_4_over_1']:.2f}x; results bit-identical: "
              f"{'yes' if s['identical'] else 'NO'}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 16, 128, 1024])
    parser.add_argument("--n", type=int, default=64, help="bodies per member (default 64)")
    parser.add_argument("--steps", type=int, default=500, help="leapfrog steps (default 500)")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="members per vmapped call (default: the library's, cache-sized on a CPU)")
    parser.add_argument("--loop-max-members", type=int, default=64,
                        help="members the Python loop really runs; above, it is extrapolated (default 64)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sharded-members", type=int, default=256)
    parser.add_argument("--sharded-chunk", type=int, default=16, help="members per device per call")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in seconds")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.members, args.n, args.steps, args.loop_max_members, args.repeats = [1, 4], 8, 20, 2, 1
        args.sharded_members, args.sharded_chunk = 8, 2
    import jax

    import nbody_core

    nbody_core.enable_float64()  # float64 runs need JAX's 64-bit mode (the sharded child calls it too)

    load_before = os.getloadavg()
    rows = measure_vmap_vs_loop(members=args.members, num_bodies=args.n, num_steps=args.steps,
                                chunk_size=args.chunk_size, loop_max_members=args.loop_max_members,
                                repeats=args.repeats)
    sharded = measure_sharded(members=args.sharded_members, num_bodies=args.n, num_steps=args.steps,
                              chunk_size=args.sharded_chunk, repeats=args.repeats)
    payload = {
        "benchmark": "ensembles",
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count() or 1, "platform": platform.platform()},
        "versions": {"python": platform.python_version(), "jax": jax.__version__},
        "num_bodies": args.n,
        "num_steps": args.steps,
        "repeats": args.repeats,
        "loop_max_members": args.loop_max_members,
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
