"""Can another exact float64 kernel beat the tiled one under XLA:CPU? (issue 13, CPU point)

    python benchmarks/bench_cpu_variants.py            # N = 1000, 4096: writes results/cpu_variants.{md,json}
    python benchmarks/bench_cpu_variants.py --quick --out-dir /tmp/v

Contenders, all equal to the reference kernel to float64 round-off (checked before timing):

* ``tiled`` (2 / 4 / 8 / 16 / 32 targets per block): the shipped kernel, ``nbody_core.physics.kernels``
  (4 rows is the float64 default above N = 64, ``force_block_size``: the row sums of thin
  ``[4, n]`` tiles are XLA's own vectorized reductions; wider tiles were handed to a slower
  library one).
* ``tiled rsqrt**3 (16 rows)``: the kernel before issue 13 (``rsqrt(s2)**3`` weights).
* ``matmul sums (16 rows)``: the row sums as one matmul, ``W @ [x, y, z, 1] - x_i sum_j W``:
  fast but NOT exact (cancellation when |x| >> |x_j - x_i|: ~1e-11 relative at N = 1000),
  timed for the record and rejected.
* ``rebound``: REBOUND ``gravity="basic"``, one leapfrog step (one force evaluation in C, one
  core), the baseline of the issue-13 goal.
* ``symmetric`` (128 x 128 tiles): each unordered pair once (block pairs ``I <= J`` in one
  ``lax.scan``; the tile's row sums go to block ``I``, its column sums, negated, to ``J``):
  half the square roots and divisions.
* ``newton_rsqrt``: ``1/sqrt(r2)`` seeded in float32 and refined by two float64 Newton steps
  (24 -> 48 -> 96 bits), replacing the float64 square root and division.
* ``flat``: no blocks, one ``[n, n]`` fusion (the loop XLA writes itself).

Wall time and process CPU time (summed over threads) per call, medians of interleaved
repeats; the machine is shared, so the load average is recorded with each row.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

import nbody_core as nb  # noqa: E402
from nbody_core.physics.forces import acceleration_analytic  # noqa: E402
from nbody_core.physics.kernels import _blocks, _newtonian_block, acceleration_tiled  # noqa: E402

nb.enable_float64()  # float64 runs need JAX's 64-bit mode (an explicit call, not an import)

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def _rsqrt_newton(r2):
    y = lax.rsqrt(r2.astype(jnp.float32)).astype(r2.dtype)  # ~24 correct bits
    for _ in range(2):  # each Newton step doubles them
        y = y * (1.5 - 0.5 * r2 * y * y)
    return y


def newton_rsqrt(position, mass, params, block_size=16):
    n = position.shape[0]
    x, y, z = position[:, 0], position[:, 1], position[:, 2]
    s2 = params.softening**2

    def block(target):
        dx, dy, dz = (c[None, :] - target[:, k:k + 1] for k, c in enumerate((x, y, z)))
        r2 = dx * dx + dy * dy + dz * dz + s2
        # The float32 seed needs r2 inside float32's range: true for these benchmark systems.
        inv_r = jnp.where(r2 > 0, _rsqrt_newton(jnp.where(r2 > 0, r2, 1.0)), 0.0)
        w = mass[None, :] * inv_r * inv_r * inv_r
        return jnp.stack([jnp.sum(w * dx, 1), jnp.sum(w * dy, 1), jnp.sum(w * dz, 1)], -1)

    blocks, padded = _blocks(position, block_size)
    return params.G * lax.map(block, blocks).reshape(padded, 3)[:n]


def symmetric(position, mass, params, block_size=128):
    n = position.shape[0]
    num_blocks = -(-n // block_size)
    padded = num_blocks * block_size
    X = jnp.pad(position, ((0, padded - n), (0, 0))).reshape(num_blocks, block_size, 3)
    M = jnp.pad(mass, (0, padded - n)).reshape(num_blocks, block_size)
    index = jnp.arange(padded).reshape(num_blocks, block_size)
    pairs = np.array([(i, j) for i in range(num_blocks) for j in range(i, num_blocks)], np.int32)
    s2 = params.softening**2

    def body(acc, ij):
        i, j = ij[0], ij[1]
        d = X[j][None, :, :] - X[i][:, None, :]
        r2 = jnp.sum(d * d, -1) + s2
        valid = (index[i][:, None] < index[j][None, :]) & (r2 > 0)  # each pair once
        inv_r = jnp.where(valid, lax.rsqrt(jnp.where(valid, r2, 1.0)), 0.0)
        u = inv_r * inv_r * inv_r
        acc = acc.at[i].add(jnp.einsum("ab,abk->ak", u * M[j][None, :], d))
        acc = acc.at[j].add(-jnp.einsum("ab,abk->bk", u * M[i][:, None], d))
        return acc, None

    acc, _ = lax.scan(body, jnp.zeros((num_blocks, block_size, 3), position.dtype), jnp.asarray(pairs))
    return params.G * acc.reshape(padded, 3)[:n]


def tiled_rsqrt(position, mass, params, block_size=16):
    n = position.shape[0]
    x, y, z = position[:, 0], position[:, 1], position[:, 2]
    s2 = params.softening**2

    def block(target):
        dx, dy, dz = (c[None, :] - target[:, k:k + 1] for k, c in enumerate((x, y, z)))
        r2 = dx * dx + dy * dy + dz * dz + s2
        inv_r = lax.rsqrt(jnp.where(r2 > 0, r2, jnp.inf))
        w = mass[None, :] * (inv_r * inv_r * inv_r)
        return jnp.stack([jnp.sum(w * dx, 1), jnp.sum(w * dy, 1), jnp.sum(w * dz, 1)], -1)

    blocks, padded = _blocks(position, block_size)
    return params.G * lax.map(block, blocks).reshape(padded, 3)[:n]


def matmul_sums(position, mass, params, block_size=16):
    n = position.shape[0]
    source = jnp.concatenate([position, jnp.ones((n, 1), position.dtype)], axis=1)
    s2 = params.softening**2

    def block(target):
        d = position[None, :, :] - target[:, None, :]
        r2 = jnp.sum(d * d, -1) + s2
        r2 = jnp.where(r2 > 0, r2, jnp.inf)
        sums = (mass[None, :] / (r2 * jnp.sqrt(r2))) @ source
        return sums[:, :3] - target * sums[:, 3:]

    blocks, padded = _blocks(position, block_size)
    return params.G * lax.map(block, blocks).reshape(padded, 3)[:n]


def flat(position, mass, params):
    x, y, z = position[:, 0], position[:, 1], position[:, 2]
    return params.G * _newtonian_block(x, y, z, mass, position, params.softening**2)


CONTENDERS = {
    "tiled (16 rows)": lambda x, m, p: acceleration_tiled(x, m, p, block_size=16),
    "tiled (2 rows)": lambda x, m, p: acceleration_tiled(x, m, p, block_size=2),
    "tiled (4 rows)": lambda x, m, p: acceleration_tiled(x, m, p, block_size=4),
    "tiled (8 rows)": lambda x, m, p: acceleration_tiled(x, m, p, block_size=8),
    "tiled (32 rows)": lambda x, m, p: acceleration_tiled(x, m, p, block_size=32),
    "tiled rsqrt**3 (16 rows)": tiled_rsqrt,
    "matmul sums (16 rows)": matmul_sums,
    "symmetric 128x128": symmetric,
    "newton_rsqrt (16 rows)": newton_rsqrt,
    "flat [n, n]": flat,
}


INEXACT = {"matmul sums (16 rows)"}


def _rebound_sim(state, params):
    import rebound  # GPL: benchmark-only baseline

    sim = rebound.Simulation()
    sim.integrator, sim.gravity = "leapfrog", "basic"
    sim.softening, sim.G, sim.dt = float(params.softening), float(params.G), 1e-6
    x, v, m = (np.asarray(a, np.float64) for a in (state.position, state.velocity, state.mass))
    for i in range(len(m)):
        sim.add(m=float(m[i]), x=x[i, 0], y=x[i, 1], z=x[i, 2], vx=v[i, 0], vy=v[i, 1], vz=v[i, 2])
    return sim


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    sizes = (200,) if args.quick else (1000, 4096)
    repeats = args.repeats or (3 if args.quick else 9)
    params = nb.PhysicsParams(softening=0.01)
    rows = []
    load_start = os.getloadavg()[0]
    for n in sizes:
        state = nb.plummer(jax.random.key(n), n)
        reference = acceleration_analytic(state.position, state.mass, params)
        fns = {name: jax.jit(fn) for name, fn in CONTENDERS.items()}
        errors = {}
        for name, fn in fns.items():
            out = fn(state.position, state.mass, params)
            scale = float(jnp.max(jnp.abs(reference)))
            errors[name] = float(jnp.max(jnp.abs(out - reference))) / scale
            # float64 round-off of an n-term sum: ~n * 2**-52 relative (4096: 9e-13).
            assert name in INEXACT or errors[name] < n * 2.0**-52, (name, errors[name])
        sim = _rebound_sim(state, params)
        sim.steps(1)
        fns["rebound"] = lambda *args: sim.steps(1)
        errors["rebound"] = None
        wall = {name: [] for name in fns}
        cpu = {name: [] for name in fns}
        for _ in range(repeats):
            for name, fn in fns.items():
                w, c = time.perf_counter(), time.process_time()
                jax.block_until_ready(fn(state.position, state.mass, params))
                wall[name].append(time.perf_counter() - w)
                cpu[name].append(time.process_time() - c)
        base = statistics.median(cpu["tiled (16 rows)"])
        for name in fns:
            row = {"n": n, "kernel": name, "wall_ms": 1e3 * statistics.median(wall[name]),
                   "cpu_ms": 1e3 * statistics.median(cpu[name]),
                   "cpu_vs_tiled": base / statistics.median(cpu[name]),
                   "cpu_vs_rebound": statistics.median(cpu["rebound"]) / statistics.median(cpu[name]),
                   "max_rel_error": errors[name], "load": round(os.getloadavg()[0], 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    meta = {"jax": jax.__version__, "cores": os.cpu_count(), "quick": args.quick,
            "load_start": load_start, "load_end": os.getloadavg()[0],
            "command": "python benchmarks/bench_cpu_variants.py " + " ".join(argv or sys.argv[1:])}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "cpu_variants.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = ["# Exact float64 force kernels under XLA:CPU (issue 13)", "",
             f"jax {meta['jax']} · {meta['cores']} cores (shared machine) · load average "
             f"{meta['load_start']:.1f} → {meta['load_end']:.1f}"
             + (" · QUICK smoke run" if args.quick else ""), "",
             f"Command: `{meta['command'].strip()}`. Medians of {repeats} interleaved repeats; "
             "CPU time = process CPU seconds summed over threads (robust to other jobs).", "",
             "| N | kernel | wall ms | CPU ms | CPU time vs tiled (16) | CPU time vs REBOUND | "
             "max rel. error vs reference | load |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['n']} | {r['kernel']} | {r['wall_ms']:.3g} | {r['cpu_ms']:.3g} | "
              f"{r['cpu_vs_tiled']:.2f}x | {r['cpu_vs_rebound']:.2f}x | "
              f"{'' if r['max_rel_error'] is None else format(r['max_rel_error'], '.1e')} | {r['load']} |"
              for r in rows]
    (args.out_dir / "cpu_variants.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
