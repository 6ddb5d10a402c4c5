"""Cost of a log-posterior gradient: autodiff (reverse mode through the whole simulation)
against central finite differences, as the number of parameters d grows.

Runs :func:`nbody_core.lab.gradient_checks.measure_gradient_costs` (the same routine as the Inference
tab's finite-difference panel) on :func:`nbody_core.infer.inference.scaling_problem`: a Plummer
cluster whose first d log masses are inferred, the same simulation for every d, so the
forward cost is fixed. Side by side in one process: one log density (forward simulation +
likelihood), its autodiff gradient, its finite-difference gradient (2d log densities, one
after another). Compile time (first call minus best run) is reported apart. Also the
triple problem's gradient cost and its finite-difference error sweep (best h).

    python benchmarks/bench_inference.py [--dims 2 8 32 128] [--num-bodies 128] [--num-steps 20]
    python benchmarks/bench_inference.py --quick       # a seconds-long smoke run

Writes benchmarks/results/inference.json and inference.md (``--output`` changes the stem,
``--results-dir`` the folder). The load average is recorded: on a shared machine only the
ratios measured in one run are meaningful.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results"


def _markdown(payload) -> str:
    s = payload["scaling"]
    lines = [
        "# Log-posterior gradient cost: autodiff vs finite differences",
        "",
        f"Plummer cluster of {s['num_bodies']} bodies, {s['num_steps']} leapfrog steps, "
        f"{s['num_obs']} observation times; d log masses inferred (same simulation for every d).",
        "",
        "| d | forward ms | autodiff ms | FD ms | autodiff / forward | FD / forward | FD / autodiff "
        "| compile ms (fwd / AD / FD) |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in s["rows"]:
        lines.append(
            f"| {r['d']} | {r['forward_ms']:.3f} | {r['autodiff_ms']:.3f} | {r['finite_difference_ms']:.2f} "
            f"| {r['autodiff_over_forward']:.2f} | {r['finite_difference_over_forward']:.1f} "
            f"| {r['finite_difference_over_autodiff']:.1f} "
            f"| {r['forward_compile_ms']:.0f} / {r['autodiff_compile_ms']:.0f} / {r['finite_difference_compile_ms']:.0f} |"
        )
    t = payload["triple"]
    lines += [
        "",
        f"Triple (perturbed figure-eight, d = {t['d']}, {t['num_steps']} steps): forward {t['forward_ms']:.3f} ms, "
        f"autodiff gradient {t['autodiff_ms']:.3f} ms ({t['autodiff_over_forward']:.2f}x), "
        f"finite differences {t['finite_difference_ms']:.3f} ms ({t['finite_difference_over_forward']:.1f}x). "
        f"FD error sweep: best h = {t['best_h']:.0e}, relative error {t['best_relative_error']:.1e}.",
        "",
        f"Load average {payload['load_average_before']:.1f} before, {payload['load_average_after']:.1f} after; "
        f"jax {payload['jax_version']}, Python {payload['python']}, {payload['machine']}.",
        "",
        f"Command: `{payload['command']}`",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 8, 32, 128])
    parser.add_argument("--num-bodies", type=int, default=128)
    parser.add_argument("--num-steps", type=int, default=20)
    parser.add_argument("--num-obs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of seconds")
    parser.add_argument("--output", default="inference", help="stem of the files written")
    parser.add_argument("--results-dir", default=str(RESULTS), help="folder of the files written")
    args = parser.parse_args(argv)
    if args.quick:
        args.dims, args.num_bodies, args.num_steps, args.num_obs, args.repeats = [1, 4], 8, 4, 2, 2

    sys.path.insert(0, str(REPO_ROOT))
    import nbody_core

    nbody_core.enable_float64()  # float64 runs need JAX's 64-bit mode
    import jax
    import jax.numpy as jnp
    import numpy as np

    from nbody_core.lab import gradient_checks
    from nbody_core.infer import inference

    load_before = os.getloadavg()[0]
    rows = []
    for cost in gradient_checks.measure_gradient_costs(
        args.dims, repeats=args.repeats, num_bodies=args.num_bodies, num_steps=args.num_steps, num_obs=args.num_obs
    ):
        rows.append({
            "d": cost.num_parameters,
            "forward_ms": 1e3 * cost.forward_s,
            "autodiff_ms": 1e3 * cost.autodiff_s,
            "finite_difference_ms": 1e3 * cost.finite_difference_s,
            "autodiff_over_forward": cost.autodiff_s / cost.forward_s,
            "finite_difference_over_forward": cost.finite_difference_s / cost.forward_s,
            "finite_difference_over_autodiff": cost.finite_difference_s / cost.autodiff_s,
            "forward_compile_ms": 1e3 * cost.forward_compile_s,
            "autodiff_compile_ms": 1e3 * cost.autodiff_compile_s,
            "finite_difference_compile_ms": 1e3 * cost.finite_difference_compile_s,
        })
        print(f"d={cost.num_parameters}: {rows[-1]}", file=sys.stderr, flush=True)

    # The triple posterior of the tab and the CLI (default settings).
    problem = inference.make_problem("triple", num_obs=4 if args.quick else 20)
    x = jnp.asarray(problem.truth) + 0.01
    forward, _ = gradient_checks.time_call(gradient_checks.forward_value, problem.logdensity_fn, x, repeats=args.repeats)
    ad, _ = gradient_checks.time_call(gradient_checks.autodiff_gradient, problem.logdensity_fn, x, repeats=args.repeats)
    fd, _ = gradient_checks.time_call(gradient_checks.finite_difference_gradient, problem.logdensity_fn, x, 1e-5, repeats=args.repeats)
    sweep = gradient_checks.gradient_error_sweep(problem.logdensity_fn, x, np.logspace(-10, -1, 19))
    best = int(np.argmin(sweep["relative_error"]))
    triple = {
        "d": problem.num_parameters,
        "forward_ms": 1e3 * forward, "autodiff_ms": 1e3 * ad, "finite_difference_ms": 1e3 * fd,
        "autodiff_over_forward": ad / forward, "finite_difference_over_forward": fd / forward,
        "fd_sweep_h": sweep["h"].tolist(), "fd_sweep_relative_error": sweep["relative_error"].tolist(),
        "best_h": float(sweep["h"][best]), "best_relative_error": float(sweep["relative_error"][best]),
    }
    spec = inference.PROBLEMS["triple"]
    triple["num_steps"] = int(round(spec.t_end / spec.dt))  # the leapfrog steps of one simulation
    payload = {
        "scaling": {"num_bodies": args.num_bodies, "num_steps": args.num_steps, "num_obs": args.num_obs, "rows": rows},
        "triple": triple,
        "jax_version": jax.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {jax.devices()[0].platform}",
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "command": "python benchmarks/bench_inference.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    out = Path(args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.output}.json").write_text(json.dumps(payload, indent=2) + "\n")
    table = _markdown(payload)
    (out / f"{args.output}.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
