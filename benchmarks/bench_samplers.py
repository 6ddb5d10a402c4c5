"""Which sampler and metric should be the default: HMC and BlackJAX NUTS on the triple masses.

Same posterior (``nbody infer``'s default problem: the triple-system log masses, 20
observations), same 4 tempered chain starts, same warm-up length, and the same post-warm-up
gradient budget: NUTS (diagonal metric) runs ``--draws`` draws and sets the budget; each HMC
variant runs as many draws as fit in it (``budget / (chains x L)``). Every configuration runs
twice: the first call compiles, the second (new keys, same shapes) is timed, and its draws are
the ones measured.

Reported per row: min bulk and tail ESS over the parameters (ArviZ), gradients after warm-up,
bulk and tail ESS per 1000 gradients, bulk ESS per second (warm-up + sampling of the timed
call), max split R-hat (rank-normalised), divergences.

    python benchmarks/bench_samplers.py            # 4 chains, 200 warm-up, 500 NUTS draws
    python benchmarks/bench_samplers.py --quick    # 4 chains, 100 warm-up, 150 NUTS draws

Writes benchmarks/results/samplers.json and samplers.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results"
sys.path.insert(0, str(REPO_ROOT))

#: (label, sampler, metric, leapfrog steps, step-size jitter); NUTS chooses its own path lengths.
CONFIGS = (
    ("nuts, diagonal", "nuts", "diagonal", None, None),
    ("nuts, laplace", "nuts", "laplace", None, None),
    ("hmc, diagonal, L 10 (former default)", "hmc", "diagonal", 10, 0.2),
    ("hmc, diagonal, L 10, path length jittered x U(0.1, 1.9)", "hmc", "diagonal", 10, 0.9),
    ("hmc, laplace, L 2 (default)", "hmc", "laplace", 2, 0.2),
    ("hmc, laplace, L 4", "hmc", "laplace", 4, 0.2),
)


def measure(draws, gradients: int, wall_s: float, divergences: int) -> dict:
    """ESS, R-hat and rates of ``draws [chains, n, d]``."""
    import numpy as np

    from nbody_core.infer import posterior

    az = posterior.arviz()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bulk = min(float(az.ess(np.asarray(draws[..., i]), method="bulk")) for i in range(draws.shape[-1]))
        tail = min(float(az.ess(np.asarray(draws[..., i]), method="tail")) for i in range(draws.shape[-1]))
        r_hat = max(float(az.rhat(np.asarray(draws[..., i]))) for i in range(draws.shape[-1]))
    return {
        "draws_per_chain": int(draws.shape[1]), "gradients": int(gradients), "min_ess_bulk": bulk,
        "min_ess_tail": tail, "ess_bulk_per_1000_gradients": 1000 * bulk / gradients,
        "ess_tail_per_1000_gradients": 1000 * tail / gradients, "wall_s": wall_s, "ess_bulk_per_s": bulk / wall_s,
        "max_split_r_hat": r_hat, "divergences": int(divergences),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 warm-up, 150 NUTS draws per chain")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    chains, warmup, nuts_draws = (4, 100, 150) if args.quick else (4, 200, 500)

    import jax
    import numpy as np

    import nbody_core
    import nbody_core.defaults as defaults
    from nbody_core.infer import hmc, inference, nuts
    from nbody_core.infer.metric import theta_result, whitening_for

    nbody_core.enable_float64()  # float64 runs need JAX's 64-bit mode
    load_before = os.getloadavg()
    started = time.perf_counter()
    problem = inference.make_problem("triple", num_obs=20, key=jax.random.key(0))
    x0 = inference.initial_positions(problem, jax.random.key(1), chains, method=defaults.START_METHOD)
    whitenings = {metric: whitening_for(problem, metric, x0) for metric in defaults.METRICS}

    def run(sampler, metric, steps, jitter, num_draws, seed):
        whitening = whitenings[metric]
        fn = problem.logdensity_fn if whitening is None else whitening.logdensity_fn(problem.logdensity_fn)
        start = x0 if whitening is None else whitening.to_u(x0)
        t0 = time.perf_counter()
        if sampler == "nuts":
            result = nuts.nuts_sample(jax.random.key(seed), fn, start, num_samples=num_draws, num_warmup=warmup)
        else:
            result = hmc.sample(jax.random.key(seed), fn, start, num_samples=num_draws, num_warmup=warmup,
                                num_integration_steps=steps, step_size=0.01, step_size_jitter=jitter)
        jax.block_until_ready(result.position)
        wall = time.perf_counter() - t0
        return theta_result(whitening, result), wall

    rows, budget = [], None
    for label, sampler, metric, steps, jitter in CONFIGS:
        num_draws = nuts_draws if sampler == "nuts" else max(1, round(budget / (chains * steps)))
        _, first_s = run(sampler, metric, steps, jitter, num_draws, seed=2)  # compiles
        result, wall = run(sampler, metric, steps, jitter, num_draws, seed=3)
        gradients = hmc.gradient_evaluations(result)
        if budget is None:
            budget = gradients  # the first row, NUTS with a diagonal metric, sets the budget
        row = {"label": label, "sampler": sampler, "metric": metric, "leapfrog_steps": steps, "jitter": jitter,
               "first_call_s": first_s,
               **measure(np.asarray(result.position), gradients, wall, np.asarray(result.info.is_divergent).sum())}
        rows.append(row)
        print(f"{label}: {row['ess_bulk_per_1000_gradients']:.1f} bulk ESS / 1000 gradients, "
              f"{row['ess_bulk_per_s']:.0f} / s, R-hat {row['max_split_r_hat']:.3f}", file=sys.stderr, flush=True)

    reference = rows[0]["ess_bulk_per_1000_gradients"]
    for row in rows:
        row["per_gradient_vs_nuts_diagonal"] = row["ess_bulk_per_1000_gradients"] / reference
    payload = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "problem": problem.description, "parameters": list(problem.parameter_names), "chains": chains,
        "warmup": warmup, "nuts_draws": nuts_draws, "gradient_budget": budget,
        "starts": defaults.START_METHOD, "rows": rows, "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()), "cpu_count": os.cpu_count(),
        "total_s": time.perf_counter() - started, "jax": jax.__version__,
    }
    lines = [
        "# Sampler and metric: HMC against BlackJAX NUTS on the triple masses", "",
        f"{payload['problem']}; parameters {', '.join(payload['parameters'])}; {chains} chains from the same "
        f"tempered starts, {warmup} warm-up transitions each; post-warm-up gradient budget {budget} (NUTS with a "
        f"diagonal metric, {nuts_draws} draws per chain); each HMC row runs the draws that fit in it. Measured "
        f"on the second call (the first compiles). {payload['date_utc']} UTC, jax {jax.__version__}, "
        f"{os.cpu_count()} CPU cores, load average {load_before[0]:.1f} before and {payload['load_average_after'][0]:.1f} "
        f"after; {payload['total_s']:.0f} s in all.", "",
        "| sampler, metric | draws / chain | gradients | min bulk ESS | min tail ESS | bulk ESS / 1000 grad | "
        "tail ESS / 1000 grad | bulk ESS / s | x NUTS diagonal per grad | max split R-hat | divergences |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['draws_per_chain']} | {r['gradients']} | {r['min_ess_bulk']:.0f} | "
            f"{r['min_ess_tail']:.0f} | {r['ess_bulk_per_1000_gradients']:.1f} | {r['ess_tail_per_1000_gradients']:.1f} "
            f"| {r['ess_bulk_per_s']:.0f} | {r['per_gradient_vs_nuts_diagonal']:.2f} | {r['max_split_r_hat']:.3f} | "
            f"{r['divergences']} |"
        )
    lines += [
        "", "Laplace: the chains move in coordinates whitened by the Laplace (Gauss-Newton) covariance at the best "
        "start (a dense metric, nbody_core.infer.metric). Bulk ESS above the number of draws means antithetic "
        "draws (a path of about half a period); the tail ESS shows what that costs. The defaults "
        "(nbody_core.defaults) are the row marked default.", "",
    ]
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "samplers.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.results_dir / "samplers.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
