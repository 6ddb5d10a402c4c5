"""Time per force evaluation against N: NumPy double loop, vectorized NumPy, JAX kernels.

Runs :func:`nbody_core.lab.forcelab.time_force_methods` (the same routine as the Forces tab's
"Run timing" button): softened Newtonian accelerations of one random configuration per N,
float64, every method side by side in one process. JAX compile time (first call minus
steady state) is reported apart from the steady-state run time; the NumPy double loop is
measured up to ``--loop-max-n`` and extrapolated as N**2 above (marked in the table).

    python benchmarks/bench_forces.py [--ns 100 1000 4096] [--repeats 5] [--loop-max-n 1000]
    python benchmarks/bench_forces.py --quick --out-dir /tmp/bench   # smoke run, seconds

Writes benchmarks/results/forces.json and forces.md (or into --out-dir), with the date,
machine and package versions. The load average is recorded beside
the numbers: on a shared machine only ratios measured in one run are meaningful.
"""

from __future__ import annotations

import argparse
import json
import os
import datetime
import platform
import sys
from importlib import metadata as importlib_metadata
from pathlib import Path

import jax

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


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("jax", "jaxlib", "numpy"):
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def pair_interactions_per_second(num_bodies: int, run_ms: float) -> float:
    """Ordered pairs ``N (N - 1)`` evaluated per second."""
    return num_bodies * (num_bodies - 1) / (run_ms * 1e-3)


def _markdown(result, load_before, load_after, date="", versions=None) -> str:
    lines = [
        "# Force evaluation time against N (forcelab.time_force_methods)",
        "",
        "| method | N | run ms (steady) | pair interactions/s | compile ms | speedup vs NumPy loop | note |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in result.records:
        note = []
        if r.extrapolated:
            note.append(f"loop time extrapolated as N^2 from N={r.extrapolated_from}")
        elif r.speedup_extrapolated:
            note.append("vs extrapolated loop time")
        compile_ms = "-" if r.compile_ms is None else f"{r.compile_ms:.1f}"
        speedup = "-" if r.speedup_vs_numpy_loop is None else f"{r.speedup_vs_numpy_loop:,.1f}"
        rate = pair_interactions_per_second(r.num_bodies, r.run_ms)
        lines.append(
            f"| {r.method} | {r.num_bodies} | {r.run_ms:.4g} | {rate:.3g} | {compile_ms} | {speedup} | {'; '.join(note)} |"
        )
    lines.append("")
    lines.append(
        f"Device {result.device}, median of {result.repeats} steady-state calls, float64, softening 0.01; "
        f"load average {load_before:.1f} before / {load_after:.1f} after "
        f"({os.cpu_count()} cores, {_cpu_model()}); {date}; "
        + ", ".join(f"{k} {v}" for k, v in (versions or {}).items())
        + ". Compile ms = first call minus steady call; speedups are ratios measured in this run."
    )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", type=int, nargs="+", default=[100, 1000, 4096])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loop-max-n", type=int, default=1000)
    parser.add_argument("--output", default="forces", help="stem of the files written in the output directory")
    parser.add_argument("--out-dir", default=str(RESULTS), help="output directory (default benchmarks/results)")
    parser.add_argument("--quick", action="store_true", help="smoke run: N in {32, 64}, 2 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.ns, args.repeats, args.loop_max_n = [32, 64], 2, 64

    sys.path.insert(0, str(REPO_ROOT))
    import nbody_core
    from nbody_core.lab.forcelab import time_force_methods

    nbody_core.enable_float64()  # float64 runs need JAX's 64-bit mode

    load_before = os.getloadavg()[0]

    def progress(done, total, message):
        print(f"[{done}/{total}] {message}", file=sys.stderr, flush=True)

    result = time_force_methods(args.ns, None, args.repeats, progress, numpy_loop_max_n=args.loop_max_n)
    load_after = os.getloadavg()[0]
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    versions = _versions()
    payload = {
        **result.as_dict(),
        "date_utc": date,
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "platform": platform.platform()},
        "versions": versions,
        "pair_interactions_per_second": {
            f"{r.method}/{r.num_bodies}": pair_interactions_per_second(r.num_bodies, r.run_ms)
            for r in result.records
        },
        "jax_version": jax.__version__,
        "python": platform.python_version(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "command": "python benchmarks/bench_forces.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    (out_dir / f"{args.output}.json").write_text(json.dumps(payload, indent=2) + "\n")
    table = _markdown(result, load_before, load_after, date, versions)
    (out_dir / f"{args.output}.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
