"""The HMC kernel that records every gradient it takes.

BlackJAX-style contract: ``init(position, logdensity_fn) -> HMCState`` and a kernel
``step(key, state, step_size, inverse_mass_matrix) -> (HMCState, HMCInfo)``. The state holds
what the next step needs; :class:`HMCInfo` holds diagnostics, including the whole leapfrog
path of each proposal (positions, momenta and the gradient at every leapfrog step), so a
``lax.scan`` over steps returns the traces for free. Chains run side by side with ``vmap``.
This module is the kernel alone; the warm-up (:mod:`nbody_core.infer.adaptation`) builds on
it, and :mod:`nbody_core.infer.hmc` puts the two together (``hmc.sample``).
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

__all__ = [
    "HMCState",
    "HMCInfo",
    "LogDensityFn",
    "init",
    "build_kernel",
    "as_pytree_fn",
    "sample_chunk",
    "SampleResult",
    "sample_chains_chunk",
    "validate_sampler_options",
    "gradient_evaluations",
]

LogDensityFn = Callable[[Array], Array]


class HMCState(NamedTuple):
    """What the next HMC step needs.

    Attributes:
        position: ``[d]`` current point in (unconstrained) parameter space.
        logdensity: scalar log density at ``position``.
        logdensity_grad: ``[d]`` gradient of the log density at ``position``.
    """

    position: Array
    logdensity: Array
    logdensity_grad: Array


class HMCInfo(NamedTuple):
    """Diagnostics of one HMC transition (one proposal), kept apart from the state.

    Attributes:
        momentum: ``[d]`` momentum drawn at the start of the transition.
        acceptance_rate: ``min(1, exp(-delta_H))``, the Metropolis acceptance probability.
        is_accepted: whether the proposal was accepted.
        is_divergent: ``delta_H`` exceeded the divergence threshold (or was not finite).
        energy: Hamiltonian of the state the chain holds after the transition (for BFMI).
        hamiltonian_error: ``H(end of path) - H(start)``; zero for exact dynamics.
        path_position: ``[L + 1, d]`` leapfrog positions, the start first.
        path_momentum: ``[L + 1, d]`` leapfrog momenta (full steps), the start first.
        path_gradient: ``[L + 1, d]`` gradient of the log density at every path position.
        path_logdensity: ``[L + 1]`` log density along the path.
        path_energy: ``[L + 1]`` Hamiltonian along the path.
        step_size: leapfrog step size used (after jitter).
    """

    momentum: Array
    acceptance_rate: Array
    is_accepted: Array
    is_divergent: Array
    energy: Array
    hamiltonian_error: Array
    path_position: Array
    path_momentum: Array
    path_gradient: Array
    path_logdensity: Array
    path_energy: Array
    step_size: Array


def init(position: Array, logdensity_fn: LogDensityFn) -> HMCState:
    """Evaluate the log density and its gradient at ``position`` (``[d]``)."""
    position = jnp.asarray(position)
    logdensity, grad = jax.value_and_grad(logdensity_fn)(position)
    return HMCState(position, logdensity, grad)


def _kinetic_energy(momentum, inverse_mass_matrix):
    return 0.5 * jnp.sum(inverse_mass_matrix * momentum**2)


def build_kernel(
    logdensity_fn: LogDensityFn,
    *,
    num_integration_steps: int,
    divergence_threshold: float = 1000.0,
    step_size_jitter: float = 0.0,
) -> Callable:
    """Build ``step(key, state, step_size, inverse_mass_matrix) -> (HMCState, HMCInfo)``.

    Args:
        logdensity_fn: ``[d] -> scalar`` log density (unnormalised), differentiable.
        num_integration_steps: leapfrog steps per proposal, ``L`` (static).
        divergence_threshold: ``delta_H`` above which a transition is flagged divergent
            (BlackJAX and Stan use 1000).
        step_size_jitter: each transition uses ``step_size * U(1 - j, 1 + j)``. A fixed path
            length ``L * step_size`` can be close to a period of the dynamics, so that every
            proposal returns near its start; randomising it breaks that resonance (Neal 2011,
            "MCMC using Hamiltonian dynamics", section 5.4.2.2). ``0 <= j < 1``.

    The kernel uses a diagonal mass matrix given by its inverse ``[d]`` (traced), and the
    velocity-Verlet (leapfrog) integrator with one gradient evaluation per step.
    """
    if isinstance(num_integration_steps, bool) or not isinstance(num_integration_steps, int) or num_integration_steps < 1:
        raise ValueError(f"num_integration_steps must be a positive integer, got {num_integration_steps!r}")
    if not 0.0 <= step_size_jitter < 1.0:
        raise ValueError(f"step_size_jitter must lie in [0, 1), got {step_size_jitter!r}")
    value_and_grad = jax.value_and_grad(logdensity_fn)

    def step(key, state: HMCState, step_size, inverse_mass_matrix):
        key_momentum, key_accept, key_jitter = jax.random.split(key, 3)
        d = state.position.shape[-1]
        if step_size_jitter:
            step_size = step_size * jax.random.uniform(
                key_jitter, (), state.position.dtype, 1.0 - step_size_jitter, 1.0 + step_size_jitter
            )
        momentum = jax.random.normal(key_momentum, (d,), state.position.dtype) / jnp.sqrt(inverse_mass_matrix)
        energy0 = -state.logdensity + _kinetic_energy(momentum, inverse_mass_matrix)

        def leapfrog(carry, _):
            position, p, logdensity, grad = carry
            p_half = p + 0.5 * step_size * grad
            position = position + step_size * inverse_mass_matrix * p_half
            logdensity, grad = value_and_grad(position)
            p = p_half + 0.5 * step_size * grad
            energy = -logdensity + _kinetic_energy(p, inverse_mass_matrix)
            return (position, p, logdensity, grad), (position, p, grad, logdensity, energy)

        carry0 = (state.position, momentum, state.logdensity, state.logdensity_grad)
        (position, p, logdensity, grad), path = lax.scan(
            leapfrog, carry0, None, length=num_integration_steps
        )
        path_position, path_momentum, path_gradient, path_logdensity, path_energy = (
            jnp.concatenate([start[None], rest])
            for start, rest in zip(
                (state.position, momentum, state.logdensity_grad, state.logdensity, energy0), path
            )
        )
        energy1 = path_energy[-1]
        delta = energy1 - energy0
        delta = jnp.where(jnp.isnan(delta), jnp.inf, delta)
        is_divergent = delta > divergence_threshold
        acceptance_rate = jnp.minimum(1.0, jnp.exp(-delta))
        is_accepted = jax.random.uniform(key_accept, (), state.position.dtype) < acceptance_rate
        proposal = HMCState(position, logdensity, grad)
        new_state = jax.tree.map(lambda a, b: jnp.where(is_accepted, a, b), proposal, state)
        info = HMCInfo(
            momentum=momentum,
            acceptance_rate=acceptance_rate,
            is_accepted=is_accepted,
            is_divergent=is_divergent,
            energy=jnp.where(is_accepted, energy1, energy0),
            hamiltonian_error=delta,
            path_position=path_position,
            path_momentum=path_momentum,
            path_gradient=path_gradient,
            path_logdensity=path_logdensity,
            path_energy=path_energy,
            step_size=jnp.asarray(step_size, state.position.dtype),
        )
        return new_state, info

    return step


def as_pytree_fn(logdensity_fn) -> jax.tree_util.Partial:
    """Wrap ``logdensity_fn`` as a :class:`jax.tree_util.Partial` (a pytree), so the jitted
    kernels take it as an ordinary argument: closures over data that are ``Partial``
    arguments recompile only when the wrapped function or the data's shapes change."""
    if isinstance(logdensity_fn, jax.tree_util.Partial):
        return logdensity_fn
    if not callable(logdensity_fn):
        raise ValueError(f"logdensity_fn must be callable, got {type(logdensity_fn).__name__}")
    return jax.tree_util.Partial(logdensity_fn)


@partial(jax.jit, static_argnames=("num_steps", "num_integration_steps"))
def _sample_chunk(
    key, state, step_size, inverse_mass_matrix, *, logdensity_fn, num_steps, num_integration_steps, step_size_jitter
):
    step_fn = build_kernel(logdensity_fn, num_integration_steps=num_integration_steps)

    def one(state, key):
        key_jitter, key_step = jax.random.split(key)
        eps = step_size * jax.random.uniform(
            key_jitter, (), state.position.dtype, 1 - step_size_jitter, 1 + step_size_jitter
        )
        state, info = step_fn(key_step, state, eps, inverse_mass_matrix)
        return state, (state, info)

    state, (states, info) = lax.scan(one, state, jax.random.split(key, num_steps))
    return state, states, info


def sample_chunk(
    key, state: HMCState, step_size, inverse_mass_matrix, *, logdensity_fn, num_steps, num_integration_steps,
    step_size_jitter=0.0,
):
    """Run ``num_steps`` transitions of one chain with a fixed step size and mass matrix.

    Returns:
        ``(final HMCState, HMCState stacked [num_steps, ...] (the draws), HMCInfo stacked
        [num_steps, ...])``.
    """
    return _sample_chunk(
        key, state, step_size, inverse_mass_matrix, logdensity_fn=as_pytree_fn(logdensity_fn),
        num_steps=num_steps, num_integration_steps=num_integration_steps,
        step_size_jitter=jnp.asarray(step_size_jitter, state.position.dtype),
    )


class SampleResult(NamedTuple):
    """Draws of several chains.

    Attributes:
        position: ``[chains, num_samples, d]`` draws.
        logdensity: ``[chains, num_samples]`` log density at the draws.
        info: :class:`HMCInfo` with leading axes ``[chains, num_samples]``.
        step_size: ``[chains]`` step sizes used after warm-up.
        inverse_mass_matrix: ``[chains, d]`` diagonal inverse mass matrices.
        warmup_info: :class:`HMCInfo` of the warm-up, ``[chains, num_warmup, ...]``.
    """

    position: Array
    logdensity: Array
    info: HMCInfo
    step_size: Array
    inverse_mass_matrix: Array
    warmup_info: HMCInfo


def sample_chains_chunk(
    chain_keys, chunk_index, states: HMCState, step_size, inverse_mass_matrix, *, logdensity_fn,
    num_steps: int, num_integration_steps: int, step_size_jitter=0.0,
):
    """:func:`sample_chunk` for every chain at once (``vmap``), the ``chunk_index``-th chunk.

    Chain ``c`` uses ``fold_in(fold_in(chain_keys[c], 1), chunk_index)``, so a run cut into
    chunks (a progress bar, a live view) is reproducible from the seed.

    Returns:
        ``(states [chains], draws: HMCState [chains, num_steps], info: HMCInfo [chains, num_steps, ...])``.
    """
    logdensity_fn = as_pytree_fn(logdensity_fn)
    return jax.vmap(
        lambda k, state, eps, im: sample_chunk(
            jax.random.fold_in(jax.random.fold_in(k, 1), chunk_index), state, eps, im,
            logdensity_fn=logdensity_fn, num_steps=num_steps, num_integration_steps=num_integration_steps,
            step_size_jitter=step_size_jitter,
        )
    )(chain_keys, states, step_size, inverse_mass_matrix)


def validate_sampler_options(
    *, num_samples=None, num_warmup=None, num_integration_steps=None, step_size=None, target_acceptance=None,
    num_chains=None, step_size_jitter=None,
) -> None:
    """Eager checks with clear messages for the sampler's options."""

    def count(name, value, minimum):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")

    if num_samples is not None:
        count("num_samples", num_samples, 1)
    if num_warmup is not None:
        count("num_warmup", num_warmup, 0)
    if num_integration_steps is not None:
        count("num_integration_steps", num_integration_steps, 1)
    if num_chains is not None:
        count("num_chains", num_chains, 1)
    if step_size is not None:
        value = float(step_size)
        if not (value > 0 and value < float("inf")):
            raise ValueError(f"step_size must be a positive finite number, got {step_size!r}")
    if target_acceptance is not None and not 0 < float(target_acceptance) < 1:
        raise ValueError(f"target_acceptance must lie in (0, 1), got {target_acceptance!r}")


def gradient_evaluations(result: SampleResult) -> int:
    """Gradient evaluations of the post-warm-up transitions of every chain (one per leapfrog
    step; HMC's recorded paths hold ``L + 1`` points of which the first is the reused start;
    NUTS (:mod:`nbody_core.infer.nuts`) reports its own ``num_integration_steps``)."""
    info = result.info
    steps = getattr(info, "num_integration_steps", None)
    if steps is not None:
        return int(np.sum(np.asarray(steps)))
    chains, draws, points = np.asarray(info.path_position).shape[:3]
    return int(chains * draws * (points - 1))
