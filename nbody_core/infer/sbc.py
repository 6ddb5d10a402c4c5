"""Simulation-based calibration (Talts et al. 2018, arXiv:1804.06788) of the inference problems.

For ``k = 1..K``: draw ``theta_k`` from the prior, simulate noisy observations from it with the
problem's own forward model and noise, sample the posterior given those observations with
:func:`nbody_core.infer.hmc.sample` (chains started by time-window tempered multi-start optimisation,
:func:`nbody_core.infer.starts.tempered_starts`, and run in coordinates whitened by the Laplace
covariance at the best start, i.e. with a dense metric, and :data:`WHITENED_INTEGRATION_STEPS`
leapfrog steps per transition, a quarter period of the whitened posterior), thin to ``L``
draws and record, per parameter, the rank of ``theta_k`` among them (0..L). If the sampler is
right, every rank is uniform on ``{0, ..., L}`` whatever the problem; a sampler that is
overconfident piles ranks at the ends, a biased one on one side, and chains stuck in a wrong
mode put the truth outside every draw (rank 0 or L, and far higher log density at the truth).

Everything after the first dataset reuses the compiled kernels: the observations are traced
leaves of ``problem.logdensity_fn`` (a ``jax.tree_util.Partial``), so a new dataset of the same
shape never recompiles.
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaincc

import nbody_core.defaults as defaults
from nbody_core.infer import hmc
from .inference import InferenceProblem, initial_positions, make_problem, mode_check
from .starts import laplace_scale, whitened_logdensity

__all__ = [
    "with_observations", "simulate_dataset", "sbc", "rank_uniformity_pvalue", "STUCK_LP_GAP",
    "WHITENED_INTEGRATION_STEPS",
]

# A draw's log density exceeds the posterior's typical one by ~ chi2_d / 2 (d = 3: mean 1.5,
# 99.9 % quantile 8.1); the truth is itself a posterior draw, so its log density sitting more
# than 20 nats above the best of L draws means the chains never reached the truth's mode.
STUCK_LP_GAP = 20.0

# Leapfrog steps per HMC transition in the Laplace-whitened coordinates. There the posterior is
# close to N(0, I), on which the exact Hamiltonian flow has period 2 pi and a trajectory of length
# T gives a next draw correlated cos(T) with the last. Dual averaging (target acceptance 0.8) sets
# the step to 0.6 .. 1.1 there (dataset 8 of the CI test, 4 chains x 10 keys), so 2 steps make
# T ~ 1.2 .. 2.1 ~ pi / 2, a quarter period: next draws nearly independent in the position and in
# its square. The former 10 steps made T ~ 6 .. 10, about one full period: proposals came back
# near their start (lag-1 autocorrelation 0.56 .. 0.80, bulk ESS 114 of 800 draws on dataset 8 of
# the CI test, 575 with 2 steps), and split R-hat of unimodal posteriors scattered up to 1.051,
# over the 1.05 bar, depending on the chains' random numbers alone. 2 steps: max 1.014 over
# 3 x 24 datasets, and 5x fewer gradients.
WHITENED_INTEGRATION_STEPS = defaults.LEAPFROG_STEPS["laplace"]


@jax.jit
def _logdensity_batch(fn, x):
    return jax.vmap(fn)(x)


def with_observations(problem: InferenceProblem, observations, *, truth=None) -> InferenceProblem:
    """The same problem (same compiled kernels) with new observations ``[K, n, a]`` (and
    optionally a new recorded ``truth [d]``)."""
    data = problem.logdensity_fn.args[0]._replace(observations=jnp.asarray(observations, problem.observations.dtype))
    P = jax.tree_util.Partial
    return dataclasses.replace(
        problem, observations=np.asarray(observations),
        truth=problem.truth if truth is None else np.asarray(truth),
        **{name: P(getattr(problem, name).func, data)
           for name in ("logdensity_fn", "log_likelihood_fn", "log_prior_fn", "predict_fn")},
    )


def simulate_dataset(problem: InferenceProblem, theta, key, *, noise: float | None = None) -> InferenceProblem:
    """Observations simulated from ``theta [d]`` plus Gaussian noise (``noise``, length units;
    default the problem's own, which is what the likelihood assumes).

    Returns:
        the problem with those observations and ``truth = theta``.
    """
    theta = jnp.asarray(theta, problem.observations.dtype)
    clean = problem.predict_fn(theta)
    sd = problem.noise if noise is None else float(noise)
    observed = clean + sd * jax.random.normal(key, clean.shape, clean.dtype)
    return with_observations(problem, observed, truth=theta)


def rank_uniformity_pvalue(ranks, num_ranks: int, num_bins: int) -> float:
    """Pearson chi-square p-value that ``ranks`` (integers in ``0..num_ranks - 1``) are uniform,
    with the ranks grouped into ``num_bins`` equal bins (``num_ranks`` must be a multiple)."""
    if num_ranks % num_bins:
        raise ValueError(f"num_ranks={num_ranks} must be a multiple of num_bins={num_bins}")
    counts = np.bincount(np.asarray(ranks) // (num_ranks // num_bins), minlength=num_bins)
    expected = len(ranks) / num_bins
    chi2 = float(np.sum((counts - expected) ** 2) / expected)
    # Chi-square survival with k = num_bins - 1 degrees of freedom: Q(k / 2, chi2 / 2) (scipy is
    # not a dependency of the core).
    return float(gammaincc((num_bins - 1) / 2.0, chi2 / 2.0))


def sbc(
    problem: InferenceProblem | None = None,
    *,
    num_datasets: int = 20,
    num_thinned: int = 19,
    num_bins: int = 4,
    num_chains: int = 2,
    num_samples: int = 200,
    num_warmup: int = 200,
    num_integration_steps: int | None = None,
    step_size: float = 0.01,
    key=None,
    data_noise: float | None = None,
    start_spread: float | None = None,
    max_tries: int | None = None,
    starts: str = defaults.START_METHOD,
    precondition: bool = True,
) -> dict:
    """Run SBC on ``problem`` (default: the triple-system masses, 4 observations, noise 0.02).

    Args:
        problem: the posterior to calibrate; only its prior, forward model and noise are used.
        num_datasets: ``K``, number of prior draws / simulated datasets.
        num_thinned: ``L``, draws kept per dataset (evenly spaced over all chains' draws, so
            roughly independent when ``num_chains * num_samples / L`` exceeds the
            autocorrelation time); ranks take ``L + 1`` values.
        num_bins: chi-square bins (``L + 1`` must be a multiple).
        num_chains, num_samples, num_warmup, step_size: sampler options
            (:func:`nbody_core.infer.hmc.sample`).
        num_integration_steps: leapfrog steps per transition; None (default) gives
            :data:`WHITENED_INTEGRATION_STEPS` when ``precondition`` (a quarter period of the
            whitened posterior) and 10 otherwise.
        key: PRNG key (default ``key(0)``): prior draws, data noise, starts and chains.
        data_noise: noise the data are simulated with (default: the likelihood's). A different
            value makes a deliberately wrong likelihood — SBC must then fail.
        start_spread: ``starts="prior"``: passed to :func:`initial_positions` as ``spread``
            (None: prior draws; 0.1 reproduces the former start near the prior mean).
        max_tries: ``starts="prior"``: prior draws per chain start, the best kept
            (:func:`initial_positions`; default 16).
        starts: ``"tempered"`` (default: time-window tempered multi-start optimisation,
            :func:`nbody_core.infer.starts.tempered_starts`) or ``"prior"`` (prior draws).
        precondition: sample in coordinates whitened by the Laplace (Gauss-Newton) covariance
            at the best start (:func:`nbody_core.infer.starts.laplace_scale`): a dense metric, so a
            thin correlated posterior ridge mixes within the draws (default True).

    Returns:
        dict with ``ranks [K, d]``, ``p_values`` (per parameter), ``stuck`` (dataset indices
        where :func:`mode_check` flags the chains or the truth's log density exceeds every
        draw's by more than :data:`STUCK_LP_GAP`), ``num_stuck``, ``truths [K, d]``,
        ``lp_gap`` (truth's log density minus the best draw's, per dataset), ``max_r_hat``
        (per dataset), ``divergences``, the sizes, and ``seconds`` (total, first dataset
        including compiles).
    """
    if (num_thinned + 1) % num_bins:
        raise ValueError(f"num_thinned + 1 = {num_thinned + 1} must be a multiple of num_bins = {num_bins}")
    if num_thinned > num_chains * num_samples:
        raise ValueError("num_thinned exceeds the number of draws")
    if num_integration_steps is None:
        num_integration_steps = defaults.leapfrog_steps("laplace" if precondition else "diagonal")
    problem = make_problem("triple", params="masses", num_obs=4, noise=0.02) if problem is None else problem
    key = jax.random.key(0) if key is None else key
    d = problem.num_parameters
    key_prior, key_runs = jax.random.split(key)
    truths = np.asarray(problem.prior_mean) + np.asarray(problem.prior_std) * np.asarray(
        jax.random.normal(key_prior, (num_datasets, d))
    )
    total = num_chains * num_samples
    keep = np.round(np.linspace(0, total - 1, num_thinned)).astype(int)
    ranks = np.zeros((num_datasets, d), dtype=int)
    lp_gap = np.zeros(num_datasets)
    max_r_hat = np.zeros(num_datasets)
    divergences = np.zeros(num_datasets, dtype=int)
    stuck = []
    start = time.perf_counter()
    first_s = math.nan
    for k in range(num_datasets):
        key_data, key_start, key_chain = jax.random.split(jax.random.fold_in(key_runs, k), 3)
        posterior = simulate_dataset(problem, truths[k], key_data, noise=data_noise)
        x0 = initial_positions(posterior, key_start, num_chains, spread=start_spread, max_tries=max_tries,
                               method=starts)
        logdensity_fn, center, scale = posterior.logdensity_fn, jnp.zeros(d), jnp.eye(d)
        if precondition:
            # Sample u with theta = center + L u, L the Laplace (Gauss-Newton) covariance's
            # Cholesky factor at the best start: HMC with a dense metric (nbody_core.infer.starts).
            lp0 = np.asarray(_logdensity_batch(posterior.logdensity_fn, x0))
            center = x0[int(np.argmax(lp0))]
            scale = laplace_scale(posterior, center)
            logdensity_fn = whitened_logdensity(posterior.logdensity_fn, center, scale)
            x0 = jnp.linalg.solve(scale, (x0 - center).T).T
        result = hmc.sample(
            key_chain, logdensity_fn, x0, num_samples=num_samples, num_warmup=num_warmup,
            num_integration_steps=num_integration_steps, step_size=step_size,
        )
        position = np.asarray(center + jnp.einsum("ij,csj->csi", scale, result.position))
        logdensity = np.asarray(result.logdensity)
        pooled = position.reshape(total, d)[keep]
        ranks[k] = np.sum(pooled < truths[k], axis=0)
        truth_lp = float(posterior.logdensity_fn(jnp.asarray(truths[k])))
        lp_gap[k] = truth_lp - float(logdensity.max())
        check = mode_check(position, logdensity, problem.parameter_names)
        max_r_hat[k] = check["max_r_hat"]
        divergences[k] = int(np.asarray(result.info.is_divergent).sum())
        if check["chains_disagree"] or not lp_gap[k] <= STUCK_LP_GAP:
            stuck.append(k)
        if k == 0:
            first_s = time.perf_counter() - start
    p_values = {
        name: rank_uniformity_pvalue(ranks[:, i], num_thinned + 1, num_bins)
        for i, name in enumerate(problem.parameter_names)
    }
    return {
        "ranks": ranks, "p_values": p_values, "stuck": stuck, "num_stuck": len(stuck), "truths": truths,
        "lp_gap": lp_gap, "max_r_hat": max_r_hat, "divergences": divergences,
        "num_datasets": num_datasets, "num_thinned": num_thinned, "num_bins": num_bins,
        "num_chains": num_chains, "num_samples": num_samples, "num_warmup": num_warmup,
        "seconds": time.perf_counter() - start, "first_dataset_s": first_s,
    }
