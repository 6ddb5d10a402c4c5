"""Hamiltonian Monte Carlo that records every gradient it takes: warm-up, then draws.

``sample(key, logdensity_fn, initial_position, ...) -> SampleResult`` runs the warm-up of
:mod:`nbody_core.infer.adaptation` (dual averaging, Hoffman & Gelman 2014, JMLR 15, 1593,
Algorithm 5, and a windowed diagonal metric) and then the recorded-gradient kernel of
:mod:`nbody_core.infer.hmc_kernel` for every chain at once. The kernel's and the warm-up's
public names are re-exported here, so ``from nbody_core.infer import hmc`` is the one import a
user needs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import nbody_core.defaults as defaults
from .adaptation import (
    DualAveragingState as DualAveragingState,
    WarmupResult as WarmupResult,
    WarmupCarry as WarmupCarry,
    dual_averaging_init as dual_averaging_init,
    dual_averaging_update as dual_averaging_update,
    warmup as warmup,
    warmup_chains as warmup_chains,
    warmup_chains_in_blocks as warmup_chains_in_blocks,
    warmup_schedule as warmup_schedule,
    warmup_init as warmup_init,
    warmup_block as warmup_block,
    WARMUP_WINDOWS as WARMUP_WINDOWS,
    DUAL_AVERAGING_GAMMA as DUAL_AVERAGING_GAMMA,
    DUAL_AVERAGING_T0 as DUAL_AVERAGING_T0,
    DUAL_AVERAGING_KAPPA as DUAL_AVERAGING_KAPPA,
)
from . import adaptation as _adaptation, hmc_kernel as _hmc_kernel
from .hmc_kernel import (
    HMCState as HMCState,
    HMCInfo as HMCInfo,
    LogDensityFn as LogDensityFn,
    init as init,
    build_kernel as build_kernel,
    as_pytree_fn as as_pytree_fn,
    sample_chunk as sample_chunk,
    SampleResult as SampleResult,
    sample_chains_chunk as sample_chains_chunk,
    validate_sampler_options as validate_sampler_options,
    gradient_evaluations as gradient_evaluations,
)

# Everything the two modules export, plus sample: `from nbody_core.infer import hmc` is one import.
__all__ = ["sample", *_adaptation.__all__, *_hmc_kernel.__all__]

def sample(
    key,
    logdensity_fn: LogDensityFn,
    initial_position,
    *,
    num_samples: int,
    num_warmup: int = 0,
    num_integration_steps: int = defaults.LEAPFROG_STEPS["diagonal"],
    step_size=0.1,
    adapt_step_size: bool = True,
    adapt_mass_matrix: bool = True,
    target_acceptance: float = defaults.TARGET_ACCEPTANCE,
    step_size_jitter: float = defaults.STEP_SIZE_JITTER,
) -> SampleResult:
    """Warm up and sample several chains in parallel (``vmap`` over chains).

    Args:
        key: PRNG key; chain ``c`` uses ``split(key, chains)[c]``, so results are
            reproducible from the key.
        logdensity_fn: ``[d] -> scalar``; a ``jax.tree_util.Partial`` carrying its data
            avoids recompiling for new data of the same shapes.
        initial_position: ``[chains, d]`` starting points.
        num_samples: draws per chain after warm-up.
        num_warmup: warm-up transitions per chain (adaptation happens only there).
        num_integration_steps: leapfrog steps per proposal (default 10, the diagonal metric's:
            :data:`nbody_core.defaults.LEAPFROG_STEPS`; ``logdensity_fn`` in Laplace-whitened
            coordinates, :mod:`nbody_core.infer.metric`, wants 2).
        step_size: initial step size (adapted when ``adapt_step_size``) or the fixed one.
        target_acceptance: dual-averaging target.
        step_size_jitter: each transition's step is ``step_size * U(1 - j, 1 + j)``
            (see :func:`build_kernel`); 0 for a fixed step.

    Raises:
        ValueError: for non-positive counts, a non-positive step size or a bad shape.
    """
    initial_position = jnp.asarray(initial_position)
    validate_sampler_options(
        num_samples=num_samples, num_warmup=num_warmup, num_integration_steps=num_integration_steps,
        step_size=step_size, target_acceptance=target_acceptance, step_size_jitter=step_size_jitter,
    )
    if initial_position.ndim != 2:
        raise ValueError(f"initial_position must have shape [chains, d], got {initial_position.shape}")
    keys = jax.random.split(key, initial_position.shape[0])
    warm = warmup_chains(
        keys, initial_position, logdensity_fn=logdensity_fn, num_warmup=num_warmup,
        num_integration_steps=num_integration_steps, step_size=step_size,
        target_acceptance=target_acceptance, adapt_step_size=adapt_step_size,
        adapt_mass_matrix=adapt_mass_matrix, step_size_jitter=step_size_jitter,
    )
    _, draws, info = sample_chains_chunk(
        keys, 0, warm.state, warm.step_size, warm.inverse_mass_matrix, logdensity_fn=logdensity_fn,
        num_steps=num_samples, num_integration_steps=num_integration_steps, step_size_jitter=step_size_jitter,
    )
    return SampleResult(draws.position, draws.logdensity, info, warm.step_size, warm.inverse_mass_matrix, warm.info)
