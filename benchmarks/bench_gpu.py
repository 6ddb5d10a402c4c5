"""GPU table of issue 13: kernels, leapfrog, gradients and ensembles on one accelerator.

    python benchmarks/bench_gpu.py                 # on a GPU machine: writes benchmarks/results/gpu.{md,json}
    python benchmarks/bench_gpu.py --quick --allow-cpu --out-dir /tmp/g   # CPU smoke run (interpreter)
    python benchmarks/bench_gpu.py --only forces; python benchmarks/bench_gpu.py --only leapfrog gradient ensemble
                                                   # two shorter device calls: rows merge into gpu.json

Without a GPU (and without ``--allow-cpu``) it prints "no GPU" and exits 0.

Rows (best of ``--repeats`` after the compile; compile time = first call minus steady state):

* forces: G pairs/s ``N (N - 1) / t`` for float32 and float64 at N = 4096, 16384, 65536 for
  ``analytic`` (skipped where its ``[N, N, 3]`` temporaries would not fit in a quarter of the
  device's memory), ``tiled``, ``pallas`` (best of a small tile sweep, reported with its
  tiles) and ``auto`` (what ``forces="auto"`` picks); the fraction of the device's peak at
  20 flops per pair (H200: 67 TFLOP/s float32, 34 float64 -> ~3.3 / ~1.7 T pairs/s), and the
  ratio of ``auto`` to the fastest kernel at each N.
* leapfrog: ``simulate`` steps/s at N = 1000 (1000 steps), float32 and float64, per kernel.
* gradient: ``jax.grad`` of a Gaussian log-likelihood through 200 leapfrog steps at N = 256
  float64 over the forward run's time, per kernel.
* ensemble: ``run_ensemble`` Plummer N = 64 x 500 steps, simulations/s at M = 1024 ... 8192.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results"
FLOPS_PER_PAIR = 20  # sub x3, dot 5, rsqrt ~4, cube 2, weight 1, accumulate 6 (issue 13's count)
# Peak TFLOP/s of devices we know (dense, no tensor cores): device_kind substring -> (f32, f64).
PEAK_TFLOPS = {"H200": (67.0, 34.0), "H100": (67.0, 34.0), "A100": (19.5, 9.7)}


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--allow-cpu", action="store_true",
                        help="run on the CPU (Pallas in its interpreter): for testing this script")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--only", nargs="+", default=None,
                        choices=("forces", "leapfrog", "gradient", "ensemble"))
    return parser.parse_args(argv)


def _sizes(quick):
    if quick:
        return dict(force_sizes=(64, 160), leapfrog_n=32, leapfrog_steps=20, grad_n=16,
                    grad_steps=10, ensemble_members=(8, 16), ensemble_n=8, ensemble_steps=20,
                    tiles=((16, 16), (32, 16)))
    return dict(force_sizes=(4096, 16384, 65536), leapfrog_n=1000, leapfrog_steps=1000,
                grad_n=256, grad_steps=200, ensemble_members=(1024, 2048, 4096, 8192),
                ensemble_n=64, ensemble_steps=500,
                tiles=((32, 32), (64, 32), (64, 64), (128, 32), (128, 64)))


def main(argv=None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    import jax

    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    if not gpus and not args.allow_cpu:
        print("no GPU: nothing measured (pass --allow-cpu for a CPU smoke run)")
        return 0
    import jax.numpy as jnp

    import nbody_core as nb

    nb.enable_float64()  # float64 runs need JAX's 64-bit mode (an explicit call, not an import)
    from nbody_core.physics.autoselect import resolve_forces
    from nbody_core.physics.forces import acceleration_function
    from nbody_core.physics.pallas_kernels import PallasConfig, acceleration_pallas

    device = gpus[0] if gpus else jax.devices()[0]
    size = _sizes(args.quick)
    rows: list[dict] = []
    softening = 0.01

    def row(group, name, **fields):
        entry = {"group": group, "name": name, **fields}
        rows.append(entry)
        print(json.dumps(entry), flush=True)
        return entry

    def timed(fn, repeats=args.repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        first = time.perf_counter() - start
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(fn())
            best = min(best, time.perf_counter() - start)
        return best, max(0.0, first - best)

    def plummer(n, dtype):
        return nb.cast_state(nb.plummer(jax.random.key(n), n), dtype)

    memory = (device.memory_stats() or {}).get("bytes_limit") if gpus else None
    peak = next((p for kind, p in PEAK_TFLOPS.items() if kind in device.device_kind), None)

    def peak_fraction(pairs_per_s, dtype):
        if peak is None or not gpus:
            return None
        return pairs_per_s * FLOPS_PER_PAIR / (peak[jnp.dtype(dtype).itemsize > 4] * 1e12)

    interpret = None if gpus else True

    if args.only is None or "forces" in args.only:
        for dtype in (jnp.float32, jnp.float64):
            for n in size["force_sizes"]:
                state = plummer(n, dtype)
                params = nb.PhysicsParams(softening=softening)
                pairs = n * (n - 1)
                times = {}
                kernels = {"analytic": None, "tiled": None}
                if memory is not None and 4 * n * n * 3 * jnp.dtype(dtype).itemsize > memory:
                    kernels.pop("analytic")  # [n, n, 3] temporaries: past a quarter of memory
                for name in kernels:
                    fn = jax.jit(acceleration_function(name))
                    t, c = timed(lambda fn=fn: fn(state.position, state.mass, params))
                    times[name] = t
                    row("forces", name, dtype=jnp.dtype(dtype).name, n=n, seconds=t, compile_s=c,
                        gpairs_per_s=pairs / t / 1e9, peak_fraction=peak_fraction(pairs / t, dtype))
                best_tile = None
                for bt, bs in size["tiles"]:
                    config = PallasConfig(block_target=bt, block_source=bs, interpret=interpret)
                    fn = jax.jit(lambda x, m, config=config: acceleration_pallas(x, m, params, config=config))
                    try:
                        t, c = timed(lambda fn=fn: fn(state.position, state.mass))
                    except Exception as error:  # a tile that does not compile: say so, go on
                        row("forces", f"pallas {bt}x{bs}", dtype=jnp.dtype(dtype).name, n=n,
                            error=f"{type(error).__name__}: {str(error)[:200]}")
                        continue
                    if best_tile is None or t < best_tile[0]:
                        best_tile = (t, c, f"{bt}x{bs}")
                if best_tile is not None:
                    t, c, tiles = best_tile
                    times["pallas"] = t
                    row("forces", "pallas", tiles=tiles, dtype=jnp.dtype(dtype).name, n=n,
                        seconds=t, compile_s=c, gpairs_per_s=pairs / t / 1e9,
                        peak_fraction=peak_fraction(pairs / t, dtype))
                picked = resolve_forces("auto", n=n, dtype=dtype)  # what the "auto" record runs
                fn = jax.jit(acceleration_function("auto"))
                t, c = timed(lambda: fn(state.position, state.mass, params))
                row("forces", "auto", picked=picked, dtype=jnp.dtype(dtype).name, n=n, seconds=t,
                    compile_s=c, gpairs_per_s=pairs / t / 1e9,
                    peak_fraction=peak_fraction(pairs / t, dtype),
                    auto_vs_fastest=min(times.values()) / t,
                    fastest=min(times, key=times.get))

    if args.only is None or "leapfrog" in args.only:
        n, steps = size["leapfrog_n"], size["leapfrog_steps"]
        for dtype in (jnp.float32, jnp.float64):
            state = plummer(n, dtype)
            for method in ("analytic", "tiled", "pallas", "auto"):
                run = lambda method=method: nb.simulate(
                    state, dt=1e-3, num_steps=steps, save_every=steps,
                    params=nb.PhysicsParams(softening=softening), forces=method).position
                t, c = timed(run, max(1, args.repeats // 2))
                row("leapfrog", method, dtype=jnp.dtype(dtype).name, n=n, steps=steps, seconds=t,
                    compile_s=c, steps_per_s=steps / t,
                    picked=resolve_forces(method, n=n, dtype=dtype, needs_grad=None))

    if args.only is None or "gradient" in args.only:
        n, steps = size["grad_n"], size["grad_steps"]
        state = plummer(n, jnp.float64)
        params = nb.PhysicsParams(softening=0.05)
        observed = state.position + 0.01 * jax.random.normal(jax.random.key(7), state.position.shape)
        for method in ("analytic", "tiled_custom_vjp", "pallas", "auto"):
            def forward(position, method=method):
                traj = nb.simulate(state._replace(position=position), dt=1e-3, num_steps=steps,
                                   save_every=steps, params=params, forces=method)
                return -0.5 * jnp.sum((traj.position[-1] - observed) ** 2) / 0.01**2

            f, g = jax.jit(forward), jax.jit(jax.grad(forward))
            tf, _ = timed(lambda: f(state.position))
            tg, cg = timed(lambda: g(state.position))
            row("gradient", method, dtype="float64", n=n, steps=steps, forward_s=tf,
                gradient_s=tg, ratio=tg / tf, compile_s=cg,
                picked=resolve_forces(method, n=n, dtype=jnp.float64, needs_grad=True))

    if args.only is None or "ensemble" in args.only:
        from nbody_core.ensembles import EnsembleSpec, run_ensemble

        for members in size["ensemble_members"]:
            spec = EnsembleSpec(system="plummer", num_bodies=size["ensemble_n"],
                                num_members=members, num_steps=size["ensemble_steps"], dt=1e-3,
                                softening=softening, seed=1)
            run_ensemble(spec)  # compile
            start = time.perf_counter()
            result = run_ensemble(spec)
            wall = time.perf_counter() - start
            row("ensemble", "run_ensemble", n=size["ensemble_n"], steps=size["ensemble_steps"],
                members=members, seconds=wall, simulations_per_s=members / wall,
                chunk_size=result.timing["chunk_size"], num_chunks=result.timing["num_chunks"])

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": f"{device.platform}:{device.device_kind}", "jax": jax.__version__,
        "memory_bytes": memory, "peak_tflops_f32_f64": peak, "quick": args.quick,
        "command": "python benchmarks/bench_gpu.py" + (" " + " ".join(argv or sys.argv[1:])).rstrip(),
        "load_average": os.getloadavg()[0],
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    previous = args.out_dir / "gpu.json"
    if args.only and previous.exists():  # keep the other groups' rows (split device runs)
        old = json.loads(previous.read_text())
        rerun = {r["group"] for r in rows}
        rows[:0] = [r for r in old["rows"] if r["group"] not in rerun]
        meta["command"] += f" (other groups from {old['meta']['date']})"
    (args.out_dir / "gpu.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (args.out_dir / "gpu.md").write_text(_markdown(meta, rows))
    print(f"wrote {args.out_dir / 'gpu.md'}")
    return 0


def _fmt(value, digits=3):
    if value is None:
        return ""
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _markdown(meta, rows) -> str:
    lines = [
        "# GPU performance (issue 13)", "",
        f"{meta['date']} · {meta['device']} · jax {meta['jax']} · peak TFLOP/s (f32, f64) "
        f"{meta['peak_tflops_f32_f64']}" + (" · QUICK smoke run" if meta["quick"] else ""), "",
        f"Command: `{meta['command']}`. Best of repeats after compile; peak fraction at "
        f"{FLOPS_PER_PAIR} flops per pair.", "",
        "| group | row | dtype | N | result | compile s | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("error"):
            result, note = "failed", r["error"]
        elif r["group"] == "forces":
            result = f"{r['gpairs_per_s']:.3g} G pairs/s ({r['seconds'] * 1e3:.3g} ms)"
            note = "; ".join(filter(None, [
                f"{r['peak_fraction']:.1%} of peak" if r.get("peak_fraction") else "",
                f"tiles {r['tiles']}" if r.get("tiles") else "",
                f"picks {r['picked']}; {r['auto_vs_fastest']:.2f}x the fastest ({r['fastest']})"
                if r.get("picked") else ""]))
        elif r["group"] == "leapfrog":
            result, note = f"{r['steps_per_s']:,.0f} steps/s", f"{r['steps']} steps; runs {r['picked']}"
        elif r["group"] == "gradient":
            result = f"{r['ratio']:.2f}x forward ({r['gradient_s'] * 1e3:.3g} / {r['forward_s'] * 1e3:.3g} ms)"
            note = f"{r['steps']} steps; runs {r['picked']}"
        else:
            result = f"{r['simulations_per_s']:,.0f} sims/s (M = {r['members']})"
            note = f"{r['steps']} steps; chunk {r['chunk_size']} x {r['num_chunks']} calls"
        lines.append(f"| {r['group']} | {r['name']} | {r.get('dtype', '')} | {r.get('n', '')} | "
                     f"{result} | {_fmt(r.get('compile_s'))} | {note} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
