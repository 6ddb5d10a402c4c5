"""What the chains say: ArviZ export, R-hat and a mode check.

:func:`to_inference_data` turns draws of :func:`nbody_core.infer.hmc.sample` or
:func:`nbody_core.infer.nuts.nuts_sample` into ArviZ ``InferenceData`` (posterior, log likelihood,
posterior predictive, prior, warm-up); :func:`mode_check` flags chains that disagree;
:func:`summary_diagnostics` gives the numbers the CLI and the dashboard report.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .problem import InferenceProblem, physical_name as physical_name, to_physical as to_physical

__all__ = [
    "LP_GAP_THRESHOLD",
    "R_HAT_THRESHOLD",
    "arviz",
    "mode_check",
    "physical_name",
    "summary_diagnostics",
    "to_inference_data",
    "to_physical",
]


_LOG_2PI = math.log(2.0 * math.pi)


def arviz():
    """The ``arviz`` module, imported on first use (it is slow to import)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # ArviZ 0.2x announces its 1.0 refactor
        import arviz

    return arviz


R_HAT_THRESHOLD = 1.05  # Vehtari et al. 2021 recommend 1.01 for final results; 1.05 flags gross failures
LP_GAP_THRESHOLD = 5.0  # chain mean log densities this many pooled within-chain sds apart: different modes


def mode_check(position, logdensity, parameter_names: Sequence[str]) -> dict:
    """Do the chains agree? Split R-hat of every parameter plus a mode check on the log density.

    Chains sitting in different modes have mean log densities far apart compared with each
    chain's own spread (in a shared mode they differ by ~ sd / sqrt(ESS)); R-hat alone can
    miss it when the stuck chains happen to agree with each other (issue 12: 2 of 7 stuck
    datasets had R-hat <= 1.05).

    Args:
        position: ``[chains, draws, d]`` post-warm-up draws.
        logdensity: ``[chains, draws]`` log density of the draws.
        parameter_names: ``d`` names.

    Returns:
        dict with ``max_r_hat``, ``r_hat`` (per parameter), ``chain_mean_lp``, ``lp_gap_in_sd``
        (largest difference of chain mean log densities over the pooled within-chain sd),
        ``chains_disagree`` (``max_r_hat > 1.05`` or ``lp_gap_in_sd > 5``) and ``warning``
        (a sentence for users, or None).
    """
    az = arviz()
    position, logdensity = np.asarray(position), np.asarray(logdensity)
    chains = position.shape[0]
    if chains < 2 or position.shape[1] < 4:
        return {"max_r_hat": math.nan, "r_hat": {}, "chain_mean_lp": logdensity.mean(axis=1).tolist(),
                "lp_gap_in_sd": math.nan, "chains_disagree": False,
                "warning": "R-hat and the mode check need at least 2 chains of at least 4 draws"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r_hat = {name: float(az.rhat(position[..., i])) for i, name in enumerate(parameter_names)}
    finite_lp = np.where(np.isfinite(logdensity), logdensity, -np.inf)
    means = finite_lp.mean(axis=1)
    pooled_sd = float(np.sqrt(np.mean(np.var(logdensity, axis=1, ddof=1))))
    gap = float((means.max() - means.min()) / max(pooled_sd, 1e-12))
    max_r_hat = max(r_hat.values())
    disagree = bool(not np.isfinite(gap) or gap > LP_GAP_THRESHOLD or not max_r_hat <= R_HAT_THRESHOLD)
    warning = None
    if disagree:
        worst = max(r_hat, key=lambda k: r_hat[k] if np.isfinite(r_hat[k]) else np.inf)
        warning = (
            f"chains disagree: max R-hat {max_r_hat:.3g} ({worst}), chain mean log densities "
            f"{', '.join(f'{m:.4g}' for m in means)} differ by {gap:.3g} within-chain sd; "
            "some chains are likely stuck in a different mode: do not trust this posterior "
            "(run more chains, longer warm-up, or check the model)"
        )
    return {"max_r_hat": max_r_hat, "r_hat": r_hat, "chain_mean_lp": means.tolist(), "lp_gap_in_sd": gap,
            "chains_disagree": disagree, "warning": warning}


@jax.jit
def _pointwise(predict_fn, theta):
    return jax.vmap(predict_fn)(theta)


def _physical_variables(names, values) -> dict:
    """Physical masses (and G) beside their logs: ``m0 = exp(log_m0)``."""
    return {physical_name(n): np.exp(values[..., i]) for i, n in enumerate(names) if n.startswith("log_")}


def to_inference_data(result, problem: InferenceProblem, *, key=None, sampler: str = "nbody_core.infer.hmc"):
    """Export draws of :func:`nbody_core.infer.hmc.sample` (or :func:`nbody_core.infer.nuts.nuts_sample`) as ArviZ
    ``InferenceData``.

    Groups:
        ``posterior``: each parameter ``[chain, draw]`` and the physical values beside the
        logs (``m0 = exp(log_m0)``, ``G``); ``sample_stats``: ``lp``, ``acceptance_rate``,
        ``diverging``, ``energy``, ``energy_error``, ``step_size`` (the jittered step each
        transition used), ``n_steps``; ``log_likelihood``: pointwise ``positions [chain, draw,
        time, body, axis]`` (so ``az.loo`` / ``az.compare`` work); ``posterior_predictive``:
        simulated positions plus observation noise for every draw; ``prior``: as many draws
        from the prior; ``warmup_posterior`` / ``warmup_sample_stats``: the warm-up
        transitions; ``observed_data``: ``positions [time, body, axis]`` with the observation
        times as the ``time`` coordinate; ``constant_data``: ``true_<parameter>``.

    Args:
        result: a :class:`nbody_core.infer.hmc.SampleResult`.
        problem: the problem sampled.
        key: PRNG key of the predictive noise and the prior draws (default ``key(0)``).
        sampler: recorded in the attributes.
    """
    az = arviz()
    key = jax.random.key(0) if key is None else key
    key_noise, key_prior = jax.random.split(key)
    names = problem.parameter_names
    position = np.asarray(result.position)
    info = result.info
    chains, draws, d = position.shape
    # Pointwise predictions of every draw: one vmapped simulation per draw.
    prediction = np.asarray(_pointwise(problem.predict_fn, jnp.asarray(position.reshape(-1, d))))
    prediction = prediction.reshape((chains, draws) + prediction.shape[1:])
    observed = np.asarray(problem.observations)
    z = (observed - prediction) / problem.noise
    log_likelihood = -0.5 * z**2 - math.log(problem.noise) - 0.5 * _LOG_2PI
    predictive = prediction + problem.noise * np.asarray(jax.random.normal(key_noise, prediction.shape))
    prior = np.asarray(problem.prior_mean) + np.asarray(problem.prior_std) * np.asarray(
        jax.random.normal(key_prior, (chains, draws, d))
    )
    n_steps = np.asarray(getattr(info, "num_integration_steps", None)) if hasattr(info, "num_integration_steps") \
        else np.full((chains, draws), np.asarray(info.path_position).shape[2] - 1)
    sample_stats = {
        "lp": np.asarray(result.logdensity),
        "acceptance_rate": np.asarray(info.acceptance_rate),
        "diverging": np.asarray(info.is_divergent),
        "energy": np.asarray(info.energy),
        "energy_error": np.asarray(info.hamiltonian_error),
        "step_size": np.broadcast_to(np.asarray(info.step_size), (chains, draws)),
        "n_steps": n_steps,
    }
    groups = {}
    warm = result.warmup_info
    warm_position = warm_lp = None
    if hasattr(warm, "path_position") and np.asarray(warm.path_position).shape[1] > 0:  # HMC
        accepted = np.asarray(warm.is_accepted)
        path, path_lp = np.asarray(warm.path_position), np.asarray(warm.path_logdensity)
        warm_position = np.where(accepted[..., None], path[:, :, -1], path[:, :, 0])
        warm_lp = np.where(accepted, path_lp[:, :, -1], path_lp[:, :, 0])
    elif hasattr(warm, "position") and np.asarray(warm.position).shape[1] > 0:  # NUTS
        warm_position, warm_lp = np.asarray(warm.position), np.asarray(warm.logdensity)
    if warm_position is not None:
        groups["warmup_posterior"] = {
            **{n: warm_position[..., i] for i, n in enumerate(names)}, **_physical_variables(names, warm_position)
        }
        groups["warmup_sample_stats"] = {
            "lp": warm_lp, "acceptance_rate": np.asarray(warm.acceptance_rate),
            "diverging": np.asarray(warm.is_divergent), "step_size": np.asarray(warm.step_size),
        }
    axes = ["x", "y", "z"]
    coords = {"time": np.asarray(problem.observed_times), "body": np.arange(observed.shape[1]),
              "axis": axes[: observed.shape[-1]]}
    dims = {"positions": ["time", "body", "axis"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return az.from_dict(
            posterior={**{n: position[..., i] for i, n in enumerate(names)}, **_physical_variables(names, position)},
            sample_stats=sample_stats,
            log_likelihood={"positions": log_likelihood},
            posterior_predictive={"positions": predictive},
            prior={**{n: prior[..., i] for i, n in enumerate(names)}, **_physical_variables(names, prior)},
            observed_data={"positions": observed},
            constant_data={f"true_{n}": np.asarray(v) for n, v in zip(names, problem.truth)},
            coords=coords,
            dims=dims,
            save_warmup=bool(groups),
            **groups,
            attrs={"problem": problem.name, "noise": problem.noise, "sampler": sampler,
                   "parameter_names": ",".join(names)},
        )


def summary_diagnostics(idata) -> dict:
    """ArviZ diagnostics: per-parameter mean, sd, bulk/tail ESS, split R-hat, MCSE and the
    94 % HDI; per-chain BFMI; acceptance rate and divergence count; and the chains' agreement
    (:func:`mode_check`: ``mode_check``, plus its ``chains_disagree`` flag and ``warning``
    at the top level).

    R-hat needs at least two chains (with one chain ArviZ returns NaN, reported as such).
    """
    az = arviz()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # too-few-draws warnings during live updates
        summary = az.summary(idata, kind="all", round_to="none")
        bfmi = np.atleast_1d(az.bfmi(idata))
    stats = idata.sample_stats
    names = [n for n in str(idata.attrs.get("parameter_names", "")).split(",") if n] or list(idata.posterior.data_vars)
    position = np.stack([idata.posterior[n].values for n in names], axis=-1)
    agreement = mode_check(position, stats["lp"].values, names)
    return {
        "chains_disagree": agreement["chains_disagree"],
        "warning": agreement["warning"],
        "mode_check": agreement,
        "parameters": {
            name: {column: float(summary.loc[name, column]) for column in summary.columns}
            for name in summary.index
        },
        "bfmi": [float(b) for b in bfmi],
        "acceptance_rate": float(stats["acceptance_rate"].mean()),
        "divergences": int(stats["diverging"].sum()),
        "num_chains": int(stats.sizes["chain"]),
        "num_draws": int(stats.sizes["draw"]),
    }
