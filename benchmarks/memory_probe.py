"""Peak resident memory of ONE force (or energy) evaluation, measured in this process.

Run in a fresh subprocess by bench_performance.py so the number is not polluted by other
benchmarks: imports JAX, records the baseline peak RSS, builds an N-body Plummer sphere,
compiles and runs the kernel once, then prints one JSON line with ``ru_maxrss`` before and
after (MiB). The high-water mark (VmHWM, else ``resource.getrusage``) is reported, so
temporaries freed before the end still count.

    python benchmarks/memory_probe.py --n 20000 --method tiled [--what force|energy] [--dtype float64]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time


def _peak_mib() -> float:
    """This process's peak RSS in MiB.

    Linux keeps ``ru_maxrss`` across ``exec``, so a child started by a big parent reports
    the parent's peak; ``VmHWM`` in /proc/self/status belongs to this program's own address
    space. ``resource.getrusage`` is the fallback where /proc is missing.
    """
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--method", default="tiled")
    parser.add_argument("--what", choices=("force", "energy"), default="force")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    args = parser.parse_args(argv)

    import jax
    import jax.numpy as jnp

    import nbody_core as nb

    nb.enable_float64()  # float64 runs need JAX's 64-bit mode (an explicit call, not an import)
    from nbody_core.physics.forces import acceleration_function
    from nbody_core.physics.kernels import potential_energy_tiled
    from nbody_core.physics.potentials import potential_energy_from_positions

    baseline = _peak_mib()
    dtype = jnp.dtype(args.dtype)
    state = nb.cast_state(nb.plummer(jax.random.key(0), args.n), dtype)
    params = nb.PhysicsParams(softening=0.01).astype(dtype)
    if args.what == "force":
        fn = jax.jit(acceleration_function(args.method))
    else:
        energy = potential_energy_tiled if args.method == "tiled" else potential_energy_from_positions
        fn = jax.jit(lambda x, m, p: energy(x, m, p))
    start = time.perf_counter()
    out = fn(state.position, state.mass, params)
    jax.block_until_ready(out)
    seconds = time.perf_counter() - start
    ok = bool(jnp.all(jnp.isfinite(out)))
    print(json.dumps({
        "n": args.n, "method": args.method, "what": args.what, "dtype": args.dtype,
        "baseline_rss_mib": round(baseline, 1), "peak_rss_mib": round(_peak_mib(), 1),
        "seconds_with_compile": round(seconds, 3), "finite": ok,
    }))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
