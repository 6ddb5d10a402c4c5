"""``nbody infer``: HMC inference of physical parameters from simulated noisy observations.

Builds a named :mod:`nbody_core.infer.inference` problem (data from the simulator with a known
truth and seed), warms up and samples several chains with :mod:`nbody_core.infer.hmc` behind a
progress bar, prints the ArviZ diagnostics and writes the draws: ``.nc`` is an ArviZ
``InferenceData`` (NetCDF: posterior, sample_stats, observed_data, constant_data; the
diagnostics JSON in its attributes); ``.npz`` holds ``posterior [chain, draw, d]``, the
sample statistics and a JSON ``metadata`` entry with parameter names, truth and diagnostics.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import nbody_core.defaults as defaults
from nbody_core.cli import one_line_errors, seed

PROGRESS_CHUNKS = 20



def _step_size(text: str):
    if text == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--step-size must be 'auto' or a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"--step-size must be 'auto' or a positive number, got {text!r}")
    return value


def register(subparsers) -> None:
    from nbody_core.infer.inference import PARAMETER_SETS, PROBLEMS, START_METHODS

    parser = subparsers.add_parser(
        "infer",
        help="infer masses (and G or a velocity) of a few-body system by HMC through the simulator",
        description=(
            "Simulate noisy observed positions of a few-body system from a known truth, then "
            "sample the posterior of its log masses (optionally log G, an initial velocity) with "
            "HMC whose gradients come from jax.grad through the whole simulation. Writes the "
            "draws and diagnostics to --out (.nc: ArviZ InferenceData; .npz: arrays + JSON)."
        ),
    )
    one_line_errors(parser, "infer")
    parser.add_argument("--problem", default="triple", choices=sorted(PROBLEMS), help="system (default triple)")
    parser.add_argument("--params", default="masses", choices=list(PARAMETER_SETS), help="parameters to infer")
    parser.add_argument("--noise", type=float, default=None, help="observation noise, length units (default: the problem's)")
    parser.add_argument("--num-obs", type=int, default=20, help="number of observation times (default 20)")
    parser.add_argument("--chains", type=int, default=defaults.NUM_CHAINS,
                        help=f"number of chains, run in parallel (default {defaults.NUM_CHAINS})")
    parser.add_argument("--samples", type=int, default=500, help="draws per chain after warm-up (default 500)")
    parser.add_argument("--warmup", type=int, default=300, help="warm-up transitions per chain (default 300)")
    parser.add_argument(
        "--step-size", type=_step_size, default="auto",
        help="leapfrog step size, or 'auto' for dual averaging (and a diagonal metric) during warm-up",
    )
    parser.add_argument(
        "--sampler", choices=defaults.SAMPLERS, default=defaults.SAMPLER,
        help=f"hmc: this project's HMC, every gradient recorded; nuts: BlackJAX NUTS with window "
        f"adaptation (chooses its own path lengths) (default {defaults.SAMPLER}: the most effective samples "
        "per gradient with the Laplace metric, benchmarks/results/samplers.md)",
    )
    parser.add_argument(
        "--metric", choices=defaults.METRICS, default=defaults.METRIC,
        help="laplace: sample in coordinates whitened by the Laplace (Gauss-Newton) covariance at the best "
        "chain start, a dense metric; diagonal: a diagonal metric only, adapted in warm-up "
        f"(default {defaults.METRIC}; both samplers)",
    )
    parser.add_argument(
        "--leapfrog-steps", type=int, default=None,
        help="leapfrog steps per proposal, hmc only (default: "
        + ", ".join(f"{n} with --metric {m}" for m, n in defaults.LEAPFROG_STEPS.items()) + ")",
    )
    parser.add_argument("--target-accept", type=float, default=defaults.TARGET_ACCEPTANCE,
                        help=f"dual-averaging target (default {defaults.TARGET_ACCEPTANCE})")
    parser.add_argument(
        "--observations", metavar="FILE.csv",
        help="your own observed positions instead of simulated ones: CSV with header t,body,x,y,z, "
        "one row per body per time (body = 0-based index; planar problems read x and y), times "
        "equally spaced t_k = k * t_1; sets --num-obs",
    )
    parser.add_argument(
        "--seed", type=seed, default=0,
        help="sets both --data-seed and --chain-seed (default 0; 0 to 2**32-1)",
    )
    parser.add_argument("--data-seed", type=seed, default=None, help="PRNG seed of the observation noise (default: --seed)")
    parser.add_argument(
        "--chain-seed", type=seed, default=None,
        help="PRNG seed of the chains' starting points (prior draws) and transitions (default: --seed)",
    )
    parser.add_argument(
        "--starts", choices=START_METHODS, default=defaults.START_METHOD,
        help="chain starts: 'tempered' (the default: best optima of a multi-start fit over growing time "
        "windows of the observations, jittered) or 'prior' (best of 16 prior draws per chain)",
    )
    parser.add_argument(
        "--fail-on-disagreement", action="store_true",
        help="exit with status 3 when the chains disagree (max R-hat > 1.05 or chains in different modes)",
    )
    parser.add_argument("--out", required=True, metavar="FILE", help="output file, .nc (ArviZ NetCDF) or .npz")
    parser.add_argument("--progress", choices=("auto", "on", "off"), default="auto", help="progress bar on stderr")
    parser.add_argument("--emulator", metavar="MODEL", help="use a model from 'nbody emulate train' as the forward "
                        "model: grid posterior over its inputs from --observed OUTPUT=VALUE (writes .npz)")
    parser.add_argument("--observed", action="append", default=[], metavar="OUTPUT=VALUE", help="with --emulator")
    parser.add_argument("--fix", action="append", default=[], metavar="INPUT=VALUE", help="with --emulator")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.emulator is not None:
        from .emulate import infer_with_emulator

        return infer_with_emulator(args.emulator, args.observed, args.fix, out=args.out)
    out = Path(args.out)
    if out.suffix not in (".nc", ".npz"):
        raise ValueError(f"--out must end in .nc or .npz, got {args.out!r}")
    if not out.parent.exists():
        raise ValueError(f"--out directory {str(out.parent)!r} does not exist")
    from nbody_core.infer import hmc, nuts
    from nbody_core.infer.hmc import validate_sampler_options

    if args.leapfrog_steps is None:
        args.leapfrog_steps = defaults.leapfrog_steps(args.metric)
    validate_sampler_options(
        num_samples=args.samples, num_warmup=args.warmup, num_integration_steps=args.leapfrog_steps,
        num_chains=args.chains, target_acceptance=args.target_accept,
    )
    if args.step_size == "auto" and args.warmup < 1:
        raise ValueError("--step-size auto needs --warmup >= 1 (adaptation happens during warm-up)")
    import jax
    import numpy as np
    from tqdm import tqdm

    from nbody_core.infer import inference, metric

    data_seed = args.seed if args.data_seed is None else args.data_seed
    chain_seed = args.seed if args.chain_seed is None else args.chain_seed
    # --seed S is exactly --data-seed S --chain-seed S.
    key_data = jax.random.split(jax.random.key(data_seed), 3)[0]
    key_init, key_chains = jax.random.split(jax.random.key(chain_seed), 3)[1:]
    observations = None
    if args.observations is not None:
        spec = inference.PROBLEMS[args.problem]
        observations = inference.read_observations_csv(
            args.observations, num_bodies=int(spec.build()[0].mass.shape[0]), axes=spec.observed_axes
        )
    problem = inference.make_problem(
        args.problem, params=args.params, noise=args.noise, num_obs=args.num_obs, key=key_data,
        observations=observations,
    )
    auto = args.step_size == "auto"
    options = dict(num_integration_steps=args.leapfrog_steps, step_size_jitter=defaults.STEP_SIZE_JITTER)
    chain_keys = jax.random.split(key_chains, args.chains)
    x0 = inference.initial_positions(problem, key_init, args.chains, method=args.starts)
    # The sampler runs in whitened coordinates u (theta = center + scale @ u) with the Laplace
    # metric; draws and recorded paths are mapped back to theta below.
    whitening = metric.whitening_for(problem, args.metric, x0)
    logdensity_fn = problem.logdensity_fn if whitening is None else whitening.logdensity_fn(problem.logdensity_fn)
    x0 = x0 if whitening is None else whitening.to_u(x0)
    show = args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
    total = args.warmup + args.samples
    chunk = max(1, math.ceil(args.samples / PROGRESS_CHUNKS))
    print(
        f"{problem.description}; inferring {', '.join(problem.parameter_names)} from "
        f"{problem.observations.size} observed coordinates (noise {problem.noise:g})",
        file=sys.stderr,
    )
    started = time.perf_counter()
    if args.sampler == "nuts":
        with tqdm(total=total, desc="NUTS (one compiled run)", unit="it", disable=not show, file=sys.stderr) as bar:
            result = nuts.nuts_sample(
                key_chains, logdensity_fn, x0, num_samples=args.samples, num_warmup=args.warmup,
                target_acceptance=args.target_accept,
            )
            jax.block_until_ready(result.position)
            bar.update(total)
    else:
        result = _run_hmc(args, logdensity_fn, chain_keys, x0, show, auto, options, total, chunk)
    result = metric.theta_result(whitening, result)
    elapsed = time.perf_counter() - started
    idata = inference.to_inference_data(
        result, problem, sampler="blackjax.nuts" if args.sampler == "nuts" else "nbody_core.infer.hmc"
    )
    diagnostics = inference.summary_diagnostics(idata)
    gradients = hmc.gradient_evaluations(result)
    min_ess = min(diagnostics["parameters"][name]["ess_bulk"] for name in problem.parameter_names)
    diagnostics.update(
        sampler=args.sampler, metric=args.metric, leapfrog_steps=args.leapfrog_steps,
        gradient_evaluations=gradients, min_ess_bulk_per_gradient=min_ess / gradients,
        wall_time_s=elapsed, seed=args.seed, data_seed=data_seed, chain_seed=chain_seed,
        step_size=np.asarray(result.step_size).tolist(),
        truth=dict(zip(problem.parameter_names, problem.truth.tolist())),
    )
    _print_summary(problem, diagnostics)
    from nbody_core.provenance import provenance

    if out.suffix == ".nc":
        idata.attrs["diagnostics"] = json.dumps(diagnostics)
        idata.attrs["provenance"] = json.dumps(provenance(getattr(args, "command_line", None)))
        tmp = out.with_name(out.name + ".tmp")
        idata.to_netcdf(str(tmp))
        tmp.replace(out)  # atomic: a reader never sees half a file
    else:
        from nbody_core.io import save_npz

        stats = idata.sample_stats
        save_npz(
            out,
            {
                "posterior": np.asarray(result.position),
                **{f"sample_stats_{name}": np.asarray(stats[name].values) for name in stats.data_vars},
                "observations": problem.observations,
                "observed_times": problem.observed_times,
            },
            {
                "parameter_names": list(problem.parameter_names), "problem": problem.name,
                "params": args.params, "noise": problem.noise, "num_obs": len(problem.observed_times),
                "leapfrog_steps": args.leapfrog_steps, "sampler": args.sampler, "metric": args.metric,
                "diagnostics": diagnostics,
                "arviz": "az.from_dict(posterior={n: posterior[..., i]}, sample_stats=...)",
                **provenance(getattr(args, "command_line", None)),
            },
        )
    print(f"wrote {out}", file=sys.stderr)
    if diagnostics["chains_disagree"]:
        # Also recorded in the file (diagnostics: chains_disagree, warning, mode_check).
        print(f"nbody infer: warning: {diagnostics['warning']}", file=sys.stderr)
        if args.fail_on_disagreement:
            return 3
    return 0


def _run_hmc(args, logdensity_fn, chain_keys, x0, show, auto, options, total, chunk):
    """Warm up and sample with the recorded-gradient HMC, chunk by chunk behind a progress bar."""
    import jax
    import numpy as np
    from tqdm import tqdm

    from nbody_core.infer import hmc

    with tqdm(total=total, desc="warm-up", unit="it", disable=not show, file=sys.stderr) as bar:
        warm = hmc.warmup_chains(
            chain_keys, x0, logdensity_fn=logdensity_fn, num_warmup=args.warmup,
            step_size=0.01 if auto else args.step_size, adapt_step_size=auto, adapt_mass_matrix=auto,
            target_acceptance=args.target_accept, **options,
        )
        jax.block_until_ready(warm.state)
        bar.update(args.warmup)
        bar.set_description("sampling")
        states, draws, infos = warm.state, [], []
        for index in range(math.ceil(args.samples / chunk)):
            states, chunk_draws, info = hmc.sample_chains_chunk(
                chain_keys, index, states, warm.step_size, warm.inverse_mass_matrix,
                logdensity_fn=logdensity_fn, num_steps=chunk, **options,
            )
            draws.append(jax.device_get(chunk_draws))
            infos.append(jax.device_get(info))
            bar.update(min(chunk, args.samples - index * chunk))
    join = lambda *xs: np.concatenate(xs, axis=1)[:, : args.samples]  # noqa: E731
    draws, info = jax.tree.map(join, *draws), jax.tree.map(join, *infos)
    return hmc.SampleResult(
        draws.position, draws.logdensity, info, warm.step_size, warm.inverse_mass_matrix, warm.info
    )


def _print_summary(problem, diagnostics) -> None:
    print(f"{'parameter':<10} {'truth':>10} {'mean':>10} {'sd':>9} {'ess_bulk':>9} {'r_hat':>7}")
    for name, truth in zip(problem.parameter_names, problem.truth):
        row = diagnostics["parameters"][name]
        print(
            f"{name:<10} {truth:>10.5f} {row['mean']:>10.5f} {row['sd']:>9.5f} "
            f"{row['ess_bulk']:>9.1f} {row['r_hat']:>7.3f}"
        )
    bfmi = ", ".join(f"{b:.2f}" for b in diagnostics["bfmi"])
    print(
        f"acceptance {diagnostics['acceptance_rate']:.3f}, divergences {diagnostics['divergences']}, "
        f"BFMI per chain [{bfmi}], {diagnostics['wall_time_s']:.1f} s; {diagnostics['sampler']}: "
        f"{diagnostics['gradient_evaluations']} gradients, min bulk ESS per gradient "
        f"{diagnostics['min_ess_bulk_per_gradient']:.2e}"
    )
