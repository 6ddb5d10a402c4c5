"""Size of the JAX persistent compilation cache after visiting every Simulate configuration.

For every preset x integrator x precision of the Simulate tab (the uploaded preset aside),
prepares a run as the dashboard does (``SimulationState.prepare()``: the frame function
compiled, one call made) in a fresh process whose cache is configured like the server's
(``nbody_explorer.runtime.compile_cache.configure_compilation_cache``) in an empty directory, with the
bound out of the way (``NBODY_JAX_CACHE_MAX_MB=1000000``), and reports the cache's size,
entry count and largest entry; then prunes a copy of the cache to the default bound
(``DEFAULT_CACHE_MAX_MB``) and reports what is left.

A configuration whose first frame runs past ``--timeout`` seconds (an adaptive integrator can
take up to 100,000 steps in one frame; issue 26 problem 1) is recorded as timed out: its
frame function was compiled (and cached) before it ran, and the process is restarted for the
configurations after it.

    python benchmarks/bench_compile_cache.py            # all 7 x 7 x 2 configurations
    python benchmarks/bench_compile_cache.py --quick    # figure-eight and Plummer, 2 integrators

Writes benchmarks/results/compile_cache.json and compile_cache.md (with date and load average).
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results"
sys.path.insert(0, str(REPO_ROOT))


def _visit(configurations: list[tuple[str, str, str]]) -> None:
    """In this process: prepare each configuration; one JSON line (seconds, error) per configuration."""
    import nbody_core
    from nbody_explorer.runtime.compile_cache import configure_compilation_cache
    from nbody_explorer.state.simulate import SimulationState

    import jax

    nbody_core.enable_float64()
    configure_compilation_cache(jax.config)
    for preset, integrator, precision in configurations:
        start = time.perf_counter()
        row = {"preset": preset, "integrator": integrator, "precision": precision}
        try:
            state = SimulationState()
            rejected = state.apply_settings({"preset": preset, "integrator": integrator, "precision": precision})
            if rejected:
                raise ValueError("; ".join(rejected))
            state.prepare()
        except Exception as error:  # noqa: BLE001 - recorded, the others go on
            row["error"] = f"{type(error).__name__}: {error}"[:200]
        row["seconds"] = round(time.perf_counter() - start, 2)
        print(json.dumps(row), flush=True)


def _configurations(quick: bool) -> list[tuple[str, str, str]]:
    from nbody_explorer.state.simulate import UPLOADED, SimulationState

    state = SimulationState()
    presets = [p for p in state.param.preset.objects if p != UPLOADED]
    integrators = list(state.param.integrator.objects)
    precisions = list(state.param.precision.objects)
    if quick:
        presets, integrators = ["figure_eight", "plummer"], ["leapfrog", "dopri8"]
    return list(itertools.product(presets, integrators, precisions))


def _visit_all(configurations, env, *, quick: bool, timeout_s: float) -> list[dict]:
    """Visit every configuration in child processes, restarting one past a configuration
    that takes longer than ``timeout_s``."""
    import queue
    import threading

    rows: list[dict] = []
    while len(rows) < len(configurations):
        child = subprocess.Popen(
            [sys.executable, __file__, "--visit", str(len(rows)), *(["--quick"] if quick else [])],
            env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
        )
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in child.stdout] + [lines.put(None)], daemon=True).start()
        while len(rows) < len(configurations):
            try:
                line = lines.get(timeout=timeout_s)
            except queue.Empty:
                preset, integrator, precision = configurations[len(rows)]
                rows.append({"preset": preset, "integrator": integrator, "precision": precision,
                             "seconds": timeout_s, "timed_out": True})
                print(json.dumps(rows[-1]), flush=True)
                child.kill()
                break
            if line is None:  # the child ended early (a crash): skip the configuration it was on
                preset, integrator, precision = configurations[len(rows)]
                rows.append({"preset": preset, "integrator": integrator, "precision": precision,
                             "seconds": 0.0, "error": f"process ended with {child.wait()}"})
                break
            if line.startswith("{"):
                rows.append(json.loads(line))
                print(line.strip(), flush=True)
        child.wait()
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 presets x 2 integrators x 2 precisions")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one configuration may take (default 120)")
    parser.add_argument("--visit", type=int, help=argparse.SUPPRESS)  # internal: the child starts at this index
    parser.add_argument("--out-dir", default=str(RESULTS))
    args = parser.parse_args(argv)
    configurations = _configurations(args.quick)
    if args.visit is not None:
        _visit(configurations[args.visit:])
        return 0

    from nbody_explorer.runtime.compile_cache import DEFAULT_CACHE_MAX_MB, compilation_cache_bytes, prune_compilation_cache

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="nbody-cache-bench-"))
    cache = work / "cache"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "NBODY_JAX_CACHE_DIR": str(cache), "NBODY_JAX_CACHE_MAX_MB": "1000000"}
    start = time.perf_counter()
    rows = _visit_all(configurations, env, quick=args.quick, timeout_s=args.timeout)
    elapsed = time.perf_counter() - start
    entries = sorted(p.stat().st_size for p in cache.glob("*-cache"))
    total = compilation_cache_bytes(cache)
    pruned = work / "pruned"
    shutil.copytree(cache, pruned)
    removed, left = prune_compilation_cache(pruned, DEFAULT_CACHE_MAX_MB * 2**20)
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "configurations": len(rows),
        "failed": [r for r in rows if "error" in r],
        "timed_out": [r for r in rows if r.get("timed_out")],
        "timeout_s": args.timeout,
        "visit_seconds": round(elapsed, 1),
        "cache_bytes": total,
        "cache_mib": round(total / 2**20, 2),
        "entries": len(entries),
        "largest_entry_kib": round(entries[-1] / 1024, 1) if entries else 0,
        "median_entry_kib": round(entries[len(entries) // 2] / 1024, 1) if entries else 0,
        "default_bound_mib": DEFAULT_CACHE_MAX_MB,
        "pruned_to_default": {"removed": removed, "bytes_left": left},
        "rows": rows,
    }
    shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = "compile_cache_quick" if args.quick else "compile_cache"
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    slowest = sorted(rows, key=lambda r: -r["seconds"])[:5]
    md = [
        "# JAX persistent compilation cache: size after every Simulate configuration",
        "",
        f"{result['date']}; every preset x integrator x precision of the Simulate tab ({len(rows)} "
        "configurations, the uploaded preset aside), each prepared as the dashboard does "
        "(`SimulationState.prepare()`), in fresh processes sharing one cache, empty at the start "
        "(`benchmarks/bench_compile_cache.py`).",
        "",
        "| configurations | failed | timed out | cache size | entries | median entry | largest entry | default bound | after pruning to it |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {len(rows)} | {len(result['failed'])} | {len(result['timed_out'])} | {result['cache_mib']} MiB | {len(entries)} | "
        f"{result['median_entry_kib']} KiB | {result['largest_entry_kib']} KiB | {DEFAULT_CACHE_MAX_MB} MiB | "
        f"{removed} removed, {left / 2**20:.2f} MiB left |",
        "",
        f"Visiting them all took {elapsed:.0f} s (compiles included); slowest: "
        + ", ".join(f"{r['preset']}/{r['integrator']}/{r['precision']} {r['seconds']} s" for r in slowest) + ".",
        "",
        ("Timed out (first frame past " + f"{args.timeout:.0f} s; compiled and cached before it ran): "
         + ", ".join(f"{r['preset']}/{r['integrator']}/{r['precision']}" for r in result["timed_out"]) + ".\n\n"
         if result["timed_out"] else "")
        + f"Load average {result['load_average_before'][0]} before, {result['load_average_after'][0]} after, "
        f"{os.cpu_count()} CPUs (the machine shared with other work: times vary with load, sizes do not).",
        "",
    ]
    (out / f"{name}.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
