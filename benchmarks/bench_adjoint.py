"""Gradients through the adaptive integrators: speed and memory of ``jax.grad`` by loop.

One figure-eight period (t = 6.33, a few hundred adaptive steps; float64, ``analytic`` forces,
``max_steps`` 1024) through ``solve`` under ``jit``: the forward run (the eager host loop, and
traced in the ``"forward"`` while loop and the ``"direct"`` bounded loop), and ``jax.grad`` of a
loss of the final positions by the ``"direct"`` loop with chunks of K steps rematerialized
(``jax.checkpoint``) for several K, and as one flat scan (every residual kept). Memory is XLA's
own count of the compiled program's temporary buffers (``memory_analysis().temp_size_in_bytes``),
not a process measurement. Wall times: median of ``--repeats`` runs after the compile.

    python benchmarks/bench_adjoint.py            # 5 repeats
    python benchmarks/bench_adjoint.py --quick    # 2 repeats, K = 64 and flat only
    python benchmarks/bench_adjoint.py --render   # adjoint.md again from adjoint.json

Writes benchmarks/results/adjoint.json and adjoint.md (with the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results"
sys.path.insert(0, str(REPO_ROOT))
T_END = 6.32591398  # one figure-eight period (Chenciner & Montgomery 2000; Simo's orbit)
MAX_STEPS = 1024
OPTIONS = {"dopri8": {"rtol": 1e-12, "atol": 1e-12}, "ias15": {}}


def _time(fn, arg, repeats):
    import jax

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(arg))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _compiled(fn, arg):
    import jax

    start = time.perf_counter()
    compiled = jax.jit(fn).lower(arg).compile()
    seconds = time.perf_counter() - start
    memory = compiled.memory_analysis()
    return compiled, seconds, None if memory is None else int(memory.temp_size_in_bytes)


def run(repeats: int, checkpoints) -> dict:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    import nbody_core as nb
    import nbody_core.integrate.adjoint as adjoint

    state = nb.figure_eight()
    rows = []
    for integrator in ("dopri8", "ias15"):
        options = OPTIONS[integrator]

        def final(v, mode="direct"):
            solution = nb.solve(state._replace(velocity=v), t_end=T_END, integrator=integrator, num_saves=1,
                                forces="analytic", max_steps=MAX_STEPS, adjoint=mode, **options)
            return solution.trajectory.position[-1]

        def loss(v):
            return jnp.sum(final(v) ** 2)

        eager = nb.solve(state, t_end=T_END, integrator=integrator, num_saves=1, forces="analytic", **options)
        steps = eager.stats.num_steps
        eager_s = _time(lambda v: nb.solve(state._replace(velocity=v), t_end=T_END, integrator=integrator,
                                           num_saves=1, forces="analytic", **options).trajectory.position,
                        state.velocity, repeats)
        rows.append({"integrator": integrator, "what": "forward, eager host loop", "K": None, "steps": steps,
                     "compile_s": None, "run_s": eager_s, "temp_bytes": None})
        for mode in ("forward", "direct"):
            jax.clear_caches()
            compiled, compile_s, memory = _compiled(lambda v: final(v, mode), state.velocity)
            rows.append({"integrator": integrator, "what": f"forward, jit, adjoint={mode!r}",
                         "K": adjoint.CHECKPOINT_STEPS if mode == "direct" else None, "steps": steps,
                         "compile_s": compile_s, "run_s": _time(compiled, state.velocity, repeats),
                         "temp_bytes": memory})
        default = adjoint.CHECKPOINT_STEPS
        try:
            for k in checkpoints:
                adjoint.CHECKPOINT_STEPS = MAX_STEPS if k is None else k
                jax.clear_caches()  # the chunk size is read when the run is traced
                compiled, compile_s, memory = _compiled(jax.grad(loss), state.velocity)
                rows.append({"integrator": integrator, "what": "grad, jit, adjoint='direct'", "K": k,
                             "steps": steps, "compile_s": compile_s, "run_s": _time(compiled, state.velocity, repeats),
                             "temp_bytes": memory})
                print(rows[-1], flush=True)
        finally:
            adjoint.CHECKPOINT_STEPS = default
    return {
        "benchmark": "adjoint", "system": "figure_eight", "t_end": T_END, "max_steps": MAX_STEPS,
        "repeats": repeats, "rows": rows, "load_average": os.getloadavg(), "cpu_count": os.cpu_count(),
        "platform": platform.platform(), "jax": jax.__version__, "device": str(jax.devices()[0]),
    }


def render(result: dict) -> str:
    lines = [
        "# Gradients through the adaptive integrators (adjoint)",
        "",
        f"Figure-eight, one period (t = {result['t_end']}), float64, `analytic` forces, max_steps "
        f"{result['max_steps']}; median of {result['repeats']} runs after compiling; temp = XLA's temporary "
        f"buffers of the compiled program. K: steps per rematerialized chunk (flat: one scan, every residual "
        f"kept). Load average {', '.join(f'{x:.1f}' for x in result['load_average'])} on "
        f"{result['cpu_count']} CPUs ({result['device']}, jax {result['jax']}).",
        "",
        "| integrator | what | K | steps | compile s | run ms | temp MiB | run / jit forward (direct) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    forward = {r["integrator"]: r["run_s"] for r in result["rows"] if r["what"] == "forward, jit, adjoint='direct'"}
    for r in result["rows"]:
        k = "" if r["K"] is None and not r["what"].startswith("grad") else ("flat" if r["K"] is None else r["K"])
        compile_s = "" if r["compile_s"] is None else f"{r['compile_s']:.1f}"
        memory = "" if r["temp_bytes"] is None else f"{r['temp_bytes'] / 2**20:.2f}"
        lines.append(f"| {r['integrator']} | {r['what']} | {k} | {r['steps']} | {compile_s} | "
                     f"{1e3 * r['run_s']:.1f} | {memory} | {r['run_s'] / forward[r['integrator']]:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--render", action="store_true", help="rewrite adjoint.md from adjoint.json")
    args = parser.parse_args(argv)
    checkpoints = (64, None) if args.quick else (16, 64, 256, None)
    if args.render:  # the tables again from the JSON, without running
        result = json.loads((RESULTS / "adjoint.json").read_text())
    else:
        result = run(2 if args.quick else args.repeats, checkpoints)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "adjoint.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "adjoint.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
