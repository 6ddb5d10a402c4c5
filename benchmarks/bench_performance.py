"""Performance goals of issue 7, side by side with REBOUND in one run on this machine.

Rows (every JAX row reports compile time = first call minus steady state, apart from run time):

* force throughput: pair interactions per second, ``N (N - 1) / t`` for one full force
  evaluation, float64 at N = 1000 and 4096 (float32 too) for the reference kernels
  (``analytic``, ``autodiff``) and the tiled ones (``tiled``, ``autodiff_tiled``). REBOUND
  baseline: ``rebound.Simulation`` with ``integrator="leapfrog"``, ``gravity="basic"``
  (direct summation in C, one core), the same softening; we time ``sim.steps(k)`` and divide
  by ``k``. A REBOUND leapfrog step is one gravity evaluation plus O(N) drift/kick, so at
  N >= 1000 the step time is the force time to within a fraction of a percent.
* memory: peak RSS of a separate process (benchmarks/memory_probe.py) doing one force / energy
  evaluation at N = 20 000.
* whole run: leapfrog N = 1000, 1000 steps, JAX ``simulate`` vs REBOUND leapfrog.
* small N: figure-eight steps/s inside one scan; per-call time of ``advance(state, 1)``.
* gradient of a Gaussian log-likelihood of the final positions through a 200-step leapfrog
  ``simulate`` over the forward run's time.
* ensemble: M = 1024 members x N = 64 x 500 leapfrog steps, ``jax.vmap`` over ``simulate``, all
  members in one call and in the chunks ``run_ensemble`` uses (``chunk_size_for``).

The goal column holds issue 13's CPU goals (float64 forces and a leapfrog run at least as fast
as REBOUND, a gradient through 200 steps at most 4x the forward run, >= 150 ensemble
simulations/s) and whether this run met them.

Timings repeat each measurement, interleaving the contenders, and report medians; the load
average is recorded, since on a shared machine only ratios measured in one run mean much.

    python benchmarks/bench_performance.py              # full run, a few minutes
    python benchmarks/bench_performance.py --quick --out-dir /tmp/bench   # smoke run
    python benchmarks/bench_performance.py --device gpu --sizes 1000 4096 16384 65536

REBOUND is GPL: used here as a baseline only, never imported by nbody_core.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results"


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in seconds")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                        help="JAX platform; REBOUND always runs on the CPU")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="N for force throughput")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--only", nargs="+", default=None,
                        choices=("forces", "memory", "leapfrog", "small", "gradient", "ensemble"),
                        help="run only these groups")
    return parser.parse_args(argv)


ARGS = _parse(sys.argv[1:] if __name__ == "__main__" else [])
os.environ.setdefault("JAX_PLATFORMS", ARGS.device if __name__ == "__main__" else "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import nbody_core as nb  # noqa: E402
from nbody_core.physics.forces import acceleration_function  # noqa: E402

nb.enable_float64()  # float64 runs need JAX's 64-bit mode (an explicit call, not an import)

SOFTENING = 0.01
rows: list[dict] = []


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _median_time(fn, repeats: int, inner: int = 1) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            out = fn()
        jax.block_until_ready(out)
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times)


def _first_call(fn) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def _inner(fn, target_s: float = 0.05) -> int:
    """Calls per sample so one sample lasts ~target_s (timer and dispatch noise averaged out)."""
    once = _median_time(fn, 1)
    if once >= target_s / 3:
        return 1
    return max(1, int(target_s / max(_median_time(fn, 3), 1e-7)))


CPU_SECONDS: dict = {}  # name -> median process CPU seconds per call, filled by _interleaved


def _interleaved(contenders: dict, repeats: int, inner: dict | None = None) -> dict:
    """Median wall seconds per call of each contender, measured round-robin.

    Also records the median *process CPU* seconds per call in ``CPU_SECONDS``: on a machine
    shared with other jobs, CPU time measures the work a contender does (summed over its
    threads: REBOUND uses one, XLA:CPU may use all cores), where wall time also measures the load.
    """
    inner = inner or {name: _inner(fn) for name, fn in contenders.items()}
    samples = {name: [] for name in contenders}
    cpu = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.process_time()
            samples[name].append(_median_time(fn, 1, inner[name]))
            cpu[name].append((time.process_time() - start) / inner[name])
    CPU_SECONDS.update({name: statistics.median(ts) for name, ts in cpu.items()})
    return {name: statistics.median(ts) for name, ts in samples.items()}


def _row(group, name, **fields):
    row = {"group": group, "name": name, "load": _load(), **fields}
    rows.append(row)
    print(json.dumps(row), flush=True)
    return row


# -- REBOUND ---------------------------------------------------------------------------------

def _rebound_sim(state: nb.ParticleState, dt: float):
    import rebound  # GPL: benchmark-only baseline

    sim = rebound.Simulation()
    sim.integrator = "leapfrog"
    sim.gravity = "basic"
    sim.softening = SOFTENING
    sim.G = 1.0
    sim.dt = dt
    x, v, m = (np.asarray(a, dtype=np.float64) for a in (state.position, state.velocity, state.mass))
    for i in range(len(m)):
        sim.add(m=float(m[i]), x=x[i, 0], y=x[i, 1], z=x[i, 2], vx=v[i, 0], vy=v[i, 1], vz=v[i, 2])
    return sim


def _plummer(n, dtype=jnp.float64):
    return nb.cast_state(nb.plummer(jax.random.key(n), n), dtype)


# -- rows ------------------------------------------------------------------------------------

def bench_forces(sizes, repeats):
    methods = ["analytic", "autodiff", "tiled", "autodiff_tiled", "auto"]
    for n in sizes:
        pairs = n * (n - 1)
        inner_for = lambda seconds_guess: max(1, int(0.05 / seconds_guess))
        contenders, inner, compile_s = {}, {}, {}
        if ARGS.device == "cpu" or n <= 8192:
            sim = _rebound_sim(_plummer(n), dt=1e-6)
            sim.steps(1)
            per_step = _median_time(lambda: sim.steps(1), 1)
            contenders["rebound"] = lambda: sim.steps(1)
            inner["rebound"] = inner_for(per_step)
        for dtype in (jnp.float64, jnp.float32):
            state = _plummer(n, dtype)
            params = nb.PhysicsParams(softening=SOFTENING).astype(dtype)
            for method in methods:
                if method in ("analytic", "autodiff") and n > 4096:
                    continue  # O(n^2) memory: the reference kernels stop here
                name = f"{method} {jnp.dtype(dtype).name}"
                fn = jax.jit(acceleration_function(method))
                call = lambda fn=fn, s=state, p=params: fn(s.position, s.mass, p)
                first = _first_call(call)
                steady = _median_time(call, 1)
                compile_s[name] = max(0.0, first - steady)
                contenders[name] = call
                inner[name] = inner_for(steady)
        times = _interleaved(contenders, repeats, inner)
        base = times.get("rebound")
        cpu_base = CPU_SECONDS.get("rebound")
        for name, t in times.items():
            cpu = CPU_SECONDS[name]
            _row("force throughput", name, n=n, seconds=t, mpairs_per_s=pairs / t / 1e6,
                 vs_rebound=(base / t) if base else None, cpu_seconds=cpu,
                 mpairs_per_cpu_s=pairs / cpu / 1e6,
                 vs_rebound_cpu=(cpu_base / cpu) if cpu_base else None, compile_s=compile_s.get(name))


def bench_memory(n):
    probe = REPO_ROOT / "benchmarks" / "memory_probe.py"
    for method, what in (("tiled", "force"), ("autodiff_tiled", "force"), ("tiled", "energy")):
        out = subprocess.run(
            [sys.executable, str(probe), "--n", str(n), "--method", method, "--what", what],
            capture_output=True, text=True, check=True, env={**os.environ, "JAX_PLATFORMS": ARGS.device},
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        _row("memory", f"{what} {method}", n=n, peak_rss_mib=result["peak_rss_mib"],
             baseline_rss_mib=result["baseline_rss_mib"], pair_matrix_mib=n * n * 8 / 2**20)


def bench_leapfrog(n, steps, repeats):
    state = _plummer(n)
    params = nb.PhysicsParams(softening=SOFTENING)
    dt = 1e-3
    sim = _rebound_sim(state, dt)
    contenders, first = {"rebound leapfrog": lambda: sim.steps(steps)}, {}
    # The O(n^2)-memory reference kernels take ~10x longer (see the force rows): not rerun here.
    for method in ("tiled", "autodiff_tiled", "auto"):
        run = lambda method=method: nb.simulate(state, dt=dt, num_steps=steps, save_every=steps,
                                               params=params, forces=method).position
        first[f"jax simulate {method}"] = _first_call(run)
        contenders[f"jax simulate {method}"] = run
    times = _interleaved(contenders, repeats, {name: 1 for name in contenders})
    base = times["rebound leapfrog"]
    for name, t in times.items():
        compile_s = max(0.0, first[name] - t) if name in first else None
        _row("leapfrog run", name, n=n, steps=steps, seconds=t, vs_rebound=base / t,
             cpu_seconds=CPU_SECONDS[name],
             vs_rebound_cpu=CPU_SECONDS["rebound leapfrog"] / CPU_SECONDS[name], compile_s=compile_s)


def bench_small_n(steps, repeats):
    state = nb.figure_eight()
    params = nb.PhysicsParams()
    for method in ("analytic", "tiled", "auto"):
        run = lambda method=method: nb.simulate(state, dt=1e-3, num_steps=steps, save_every=steps,
                                               params=params, forces=method).position
        first = _first_call(run)
        t = _median_time(run, repeats, _inner(run))
        _row("small N", f"figure-eight scan, {method}", n=3, steps=steps, seconds=t,
             steps_per_s=steps / t, compile_s=max(0.0, first - t))
    for method in ("analytic", "tiled", "auto"):
        frame = lambda method=method: nb.advance(state, 1, dt=1e-3, params=params, forces=method)
        first = _first_call(frame)
        t = _median_time(frame, repeats, _inner(frame))
        _row("small N", f"advance(state, 1) per call, {method}", n=3, seconds=t,
             ms_per_call=t * 1e3, compile_s=max(0.0, first - t))


def bench_gradient(n, steps, repeats):
    key = jax.random.key(7)
    state = _plummer(n)
    params = nb.PhysicsParams(softening=0.05)
    observed = state.position + 0.01 * jax.random.normal(key, state.position.shape)
    for method in ("analytic", "tiled", "autodiff_tiled", "tiled_custom_vjp", "auto"):
        def forward(position, method=method):
            traj = nb.simulate(state._replace(position=position), dt=1e-3, num_steps=steps,
                               save_every=steps, params=params, forces=method)
            return -0.5 * jnp.sum((traj.position[-1] - observed) ** 2) / 0.01**2

        f = jax.jit(forward)
        g = jax.jit(jax.grad(forward))
        _first_call(lambda: f(state.position))  # compile the forward before timing
        compile_g = _first_call(lambda: g(state.position))
        times = _interleaved({"f": lambda: f(state.position), "g": lambda: g(state.position)}, repeats)
        _row("gradient", f"grad log-likelihood / forward, {method}", n=n, steps=steps,
             forward_s=times["f"], gradient_s=times["g"], ratio=times["g"] / times["f"],
             compile_s=max(0.0, compile_g - times["g"]))


def bench_ensemble(members, n, steps, repeats, rebound_runs):
    from nbody_core.ensembles.runner import chunk_size_for, member_bytes

    base = _plummer(n)
    keys = jax.random.split(jax.random.key(3), members)
    positions = base.position[None] * (1.0 + 0.01 * jax.random.normal(keys[0], (members, n, 3)))
    params = nb.PhysicsParams(softening=SOFTENING)
    # All members in one vmapped call, and in the chunks run_ensemble uses on this device
    # (chunk_size_for: [chunk, n, n] temporaries within a quarter of the last-level cache).
    chunk = chunk_size_for(member_bytes(n), platform=jax.default_backend())
    contenders, first = {}, {}
    for method in ("tiled", "auto"):  # the broadcast reference is ~10x slower per pair (force rows)
        def one(position, method=method):
            return nb.simulate(base._replace(position=position), dt=1e-3, num_steps=steps,
                               save_every=steps, params=params, forces=method).position[-1]

        run = jax.jit(jax.vmap(one))
        for size in dict.fromkeys((members, min(chunk, members))):
            name = (f"jax.vmap(simulate), {method}, " +
                    ("all members in one call" if size == members else f"chunks of {size}"))
            call = lambda run=run, size=size: [run(positions[i:i + size]) for i in range(0, members, size)]
            first[name] = _first_call(call)
            contenders[name] = call
    times = _interleaved(contenders, repeats, {name: 1 for name in contenders})
    for name, t in times.items():
        _row("ensemble", name, members=members, n=n, steps=steps, seconds=t,
             simulations_per_s=members / t, cpu_seconds=CPU_SECONDS[name],
             simulations_per_cpu_s=members / CPU_SECONDS[name], compile_s=max(0.0, first[name] - t))
    sims = [_rebound_sim(base, 1e-3) for _ in range(rebound_runs)]
    start, cpu = time.perf_counter(), time.process_time()
    for sim in sims:
        sim.steps(steps)
    t = (time.perf_counter() - start) / rebound_runs
    cpu = (time.process_time() - cpu) / rebound_runs
    _row("ensemble", "rebound one run after another", members=rebound_runs, n=n, steps=steps,
         seconds=t * members, simulations_per_s=1 / t, cpu_seconds=cpu * members,
         simulations_per_cpu_s=1 / cpu, compile_s=None)


# -- goals (issue 13, CPU) -------------------------------------------------------------------

def _goal(row) -> str:
    """The issue-13 goal a row is measured against, and whether this run met it ('' if none).

    The goals are on wall time; on a shared machine the CPU-time figure is quoted beside it.
    """
    group, name = row["group"], row["name"]
    ratio_rows = (group == "force throughput" and name == "auto float64" and row.get("n") in (1000, 4096)
                  or group == "leapfrog run" and name == "jax simulate auto" and row.get("n") == 1000)
    if ratio_rows and row.get("vs_rebound") is not None:
        value, cpu = row["vs_rebound"], row.get("vs_rebound_cpu")
        text = f"≥ 1× REBOUND: {'met' if value >= 1.0 else 'missed'} ({value:.2f}× wall"
        return text + (f", {cpu:.2f}× CPU time)" if cpu is not None else ")")
    # The gradient and ensemble goals are set at the full run's sizes only.
    if group == "gradient" and name.endswith(", auto") and (row.get("n"), row.get("steps")) == (64, 200):
        value = row["ratio"]
        return f"≤ 4× forward: {'met' if value <= 4.0 else 'missed'} ({value:.2f}×)"
    if (group == "ensemble" and name.startswith("jax.vmap(simulate), auto, chunks")
            and (row.get("n"), row.get("steps")) == (64, 500)):
        value, cpu = row["simulations_per_s"], row.get("simulations_per_cpu_s")
        text = f"≥ 150 sims/s: {'met' if value >= 150.0 else 'missed'} ({value:.3g} sims/s wall"
        return text + (f", {cpu:.3g} sims/s per CPU-s)" if cpu is not None else ")")
    return ""


# -- output ----------------------------------------------------------------------------------

def _version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _machine():
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(),
            "jax_devices": [str(d) for d in jax.devices()], "python": platform.python_version()}


def _fmt(value, digits=3):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _markdown(meta) -> str:
    lines = [
        "# Performance (issue 7)", "",
        f"{meta['date']} · {meta['machine']['cpu']} · {meta['machine']['cores']} cores · "
        f"devices {meta['machine']['jax_devices']} · jax {meta['versions']['jax']} · "
        f"rebound {meta['versions']['rebound']} · load average {meta['load_start']} → {meta['load_end']}"
        + (" · QUICK smoke run" if meta["quick"] else ""), "",
        "Command: `" + meta["command"] + "`" + (f" ({meta['rerun']})" if meta.get("rerun") else ""), "",
        "| group | row | N | result | vs REBOUND (wall) | vs REBOUND (CPU time) | goal (issue 13) | compile s | load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["group"] == "force throughput":
            result = f"{r['mpairs_per_s']:.0f} M pairs/s ({r['seconds'] * 1e3:.3g} ms)"
            if r.get("mpairs_per_cpu_s"):
                result += f"; {r['mpairs_per_cpu_s']:.0f} M pairs/CPU-s"
        elif r["group"] == "memory":
            result = f"peak RSS {r['peak_rss_mib']:.0f} MiB (after import {r['baseline_rss_mib']:.0f}; N² f64 matrix {r['pair_matrix_mib']:.0f})"
        elif r["group"] == "leapfrog run":
            result = f"{r['steps']} steps in {r['seconds']:.3g} s"
        elif r["group"] == "small N" and "steps_per_s" in r:
            result = f"{r['steps_per_s'] / 1e6:.3g} M steps/s"
        elif r["group"] == "small N":
            result = f"{r['ms_per_call']:.3g} ms per call"
        elif r["group"] == "gradient":
            result = f"{r['ratio']:.2f}× forward ({r['gradient_s'] * 1e3:.3g} / {r['forward_s'] * 1e3:.3g} ms, {r['steps']} steps)"
        else:
            result = f"{r['simulations_per_s']:.3g} simulations/s ({r['members']} × N={r['n']} × {r['steps']} steps)"
            if r.get("simulations_per_cpu_s"):
                result += f"; {r['simulations_per_cpu_s']:.3g} per CPU-s"
        vs = f"{r['vs_rebound']:.2f}×" if r.get("vs_rebound") else ""
        vs_cpu = f"{r['vs_rebound_cpu']:.2f}×" if r.get("vs_rebound_cpu") else ""
        lines.append(f"| {r['group']} | {r['name']} | {r.get('n', '')} | {result} | {vs} | {vs_cpu} | "
                     f"{_goal(r)} | {_fmt(r.get('compile_s'))} | {r['load']} |")
    lines += ["", "Pairs/s = N(N-1) / time of one full force evaluation (REBOUND: one leapfrog "
              "step, gravity='basic'). Medians of interleaved repeats. CPU time = process CPU "
              "seconds per call, summed over threads: the work done, robust to other jobs on "
              "a shared machine. REBOUND runs on one thread; XLA:CPU spreads a JAX kernel "
              "over the cores when they are free (CPU time above wall time)."]
    return "\n".join(lines) + "\n"


def main() -> int:
    quick = ARGS.quick
    sizes = ARGS.sizes or ([64, 200] if quick else [1000, 4096])
    repeats = ARGS.repeats or (2 if quick else 7)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "quick": quick, "device": ARGS.device, "machine": _machine(), "load_start": _load(),
        "versions": {name: _version(name) for name in ("jax", "jaxlib", "numpy", "rebound")},
    }
    groups = {
        "forces": lambda: bench_forces(sizes, repeats),
        "memory": lambda: bench_memory(2_000 if quick else 20_000),
        "leapfrog": lambda: bench_leapfrog(100 if quick else 1000, 20 if quick else 1000,
                                           2 if quick else 3),
        "small": lambda: bench_small_n(2_000 if quick else 200_000, repeats),
        "gradient": lambda: bench_gradient(8 if quick else 64, 20 if quick else 200, repeats),
        "ensemble": lambda: bench_ensemble(16 if quick else 1024, 8 if quick else 64,
                                           10 if quick else 500, 2 if quick else 3,
                                           2 if quick else 20),
    }
    for name, run in groups.items():
        if ARGS.only is None or name in ARGS.only:
            run()
    meta["load_end"] = _load()
    suffix = "" if ARGS.device == "cpu" else f"_{ARGS.device}"
    ARGS.out_dir.mkdir(parents=True, exist_ok=True)
    previous = ARGS.out_dir / f"performance{suffix}.json"
    if ARGS.only and previous.exists():  # keep the other groups' rows of the last full run
        old = json.loads(previous.read_text())
        rerun = {r["group"] for r in rows}
        kept = [r for r in old["rows"] if r["group"] not in rerun]
        rows[:0] = kept
        order = [r["group"] for r in old["rows"]]
        rows.sort(key=lambda r: order.index(r["group"]) if r["group"] in order else len(order))
        meta["rerun"] = f"groups {sorted(rerun)} rerun at {meta['date']}; others from {old['date']}"
        meta["date"] = old["date"]
    for row in rows:
        row["goal"] = _goal(row)
    (ARGS.out_dir / f"performance{suffix}.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))
    (ARGS.out_dir / f"performance{suffix}.md").write_text(_markdown(meta))
    print(f"wrote {ARGS.out_dir / f'performance{suffix}.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
