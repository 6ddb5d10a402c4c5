"""Effective samples per gradient evaluation: the recorded-gradient HMC against BlackJAX NUTS
on the same posterior (the triple-system masses), same starting points, same draw counts.

ESS is ArviZ's bulk ESS, the smallest over the parameters; gradients are the post-warm-up
leapfrog steps of every chain (HMC: chains x draws x L; NUTS: its own count per transition).

    python benchmarks/bench_samplers.py            # 4 chains, 500 warm-up + 500 draws
    python benchmarks/bench_samplers.py --quick    # 2 chains, 150 + 150

Writes benchmarks/results/samplers.json and samplers.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results"
sys.path.insert(0, str(REPO_ROOT))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    chains, warmup, draws = (2, 150, 150) if args.quick else (4, 500, 500)

    import jax

    import nbody_core
    from nbody_core.infer import hmc, inference, nuts

    nbody_core.enable_float64()  # float64 runs need JAX's 64-bit mode

    problem = inference.make_problem("triple", num_obs=20, key=jax.random.key(0))
    x0 = inference.initial_positions(problem, jax.random.key(1), chains)
    load_before = os.getloadavg()[0]
    rows = []
    for name in ("hmc", "nuts"):
        start = time.perf_counter()
        if name == "hmc":
            result = hmc.sample(jax.random.key(2), problem.logdensity_fn, x0, num_samples=draws,
                                num_warmup=warmup, num_integration_steps=10, step_size=0.01)
        else:
            result = nuts.nuts_sample(jax.random.key(2), problem.logdensity_fn, x0, num_samples=draws,
                                     num_warmup=warmup)
        jax.block_until_ready(result.position)
        wall = time.perf_counter() - start
        diagnostics = inference.summary_diagnostics(inference.to_inference_data(result, problem))
        ess = min(diagnostics["parameters"][n]["ess_bulk"] for n in problem.parameter_names)
        gradients = hmc.gradient_evaluations(result)
        rows.append({"sampler": name, "min_ess_bulk": ess, "gradients": gradients, "ess_per_gradient": ess / gradients,
                     "max_r_hat": diagnostics["mode_check"]["max_r_hat"],
                     "chains_disagree": diagnostics["chains_disagree"], "wall_s_with_compile": wall})
    ratio = rows[1]["ess_per_gradient"] / rows[0]["ess_per_gradient"]
    payload = {"problem": problem.description, "chains": chains, "warmup": warmup, "draws": draws,
               "rows": rows, "nuts_over_hmc": ratio, "load_average_before": load_before,
               "load_average_after": os.getloadavg()[0]}
    lines = [
        "# ESS per gradient: HMC (L = 10, dual averaging) against BlackJAX NUTS", "",
        f"{payload['problem']}; {chains} chains, {warmup} warm-up + {draws} draws each, same starts.", "",
        "| sampler | min bulk ESS | gradients | ESS / gradient | max R-hat | chains disagree | wall s (with compile) |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['sampler']} | {r['min_ess_bulk']:.0f} | {r['gradients']} | {r['ess_per_gradient']:.2e} "
                     f"| {r['max_r_hat']:.3f} | {r['chains_disagree']} | {r['wall_s_with_compile']:.0f} |")
    lines += ["", f"NUTS / HMC ESS per gradient: {ratio:.2f}. Load average {load_before:.1f} before, "
              f"{payload['load_average_after']:.1f} after.", ""]
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "samplers.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.results_dir / "samplers.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
