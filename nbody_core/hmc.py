"""Hamiltonian Monte Carlo that records every gradient it takes.

BlackJAX-style contract: ``init(position, logdensity_fn) -> HMCState`` and a kernel
``step(key, state, step_size, inverse_mass_matrix) -> (HMCState, HMCInfo)``. The state holds
what the next step needs; :class:`HMCInfo` holds diagnostics, including the whole leapfrog
path of each proposal (positions, momenta and the gradient at every leapfrog step), so a
``lax.scan`` over steps returns the traces for free. Chains run side by side with ``vmap``.
Step size is set by hand or adapted during warm-up by dual averaging (Hoffman & Gelman 2014,
JMLR 15, 1593, Algorithm 5).
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
    "DualAveragingState",
    "WarmupResult",
    "init",
    "build_kernel",
    "dual_averaging_init",
    "dual_averaging_update",
    "warmup",
    "sample_chunk",
    "sample",
    "SampleResult",
    "as_pytree_fn",
    "warmup_chains",
    "warmup_chains_in_blocks",
    "WarmupCarry",
    "warmup_schedule",
    "warmup_init",
    "warmup_block",
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


# ---------------------------------------------------------------------------------------------
# Dual averaging (Hoffman & Gelman 2014, Algorithm 5; constants as in the paper and in Stan)


class DualAveragingState(NamedTuple):
    """Dual-averaging iterate: ``log_step_size`` is used while adapting, ``log_step_size_avg`` after."""

    log_step_size: Array
    log_step_size_avg: Array
    iteration: Array
    average_error: Array
    mu: Array


DUAL_AVERAGING_GAMMA = 0.05
DUAL_AVERAGING_T0 = 10.0
DUAL_AVERAGING_KAPPA = 0.75


def dual_averaging_init(step_size) -> DualAveragingState:
    """Start adapting from ``step_size``; shrinkage target ``mu = log(10 step_size)``."""
    log_step = jnp.log(jnp.asarray(step_size, dtype=float))
    zero = jnp.zeros_like(log_step)
    return DualAveragingState(log_step, zero, zero, zero, jnp.log(10.0) + log_step)


def dual_averaging_update(state: DualAveragingState, acceptance_rate, target: float) -> DualAveragingState:
    """One update of Algorithm 5 given the transition's acceptance probability."""
    t = state.iteration + 1
    eta = 1.0 / (t + DUAL_AVERAGING_T0)
    average_error = (1 - eta) * state.average_error + eta * (target - acceptance_rate)
    log_step = state.mu - jnp.sqrt(t) / DUAL_AVERAGING_GAMMA * average_error
    weight = t ** (-DUAL_AVERAGING_KAPPA)
    log_step_avg = weight * log_step + (1 - weight) * state.log_step_size_avg
    return DualAveragingState(log_step, log_step_avg, t, average_error, state.mu)


class WarmupResult(NamedTuple):
    """End of warm-up for one chain: the state, tuned step size and inverse mass matrix, and
    the warm-up transitions' diagnostics (``HMCInfo`` stacked ``[num_warmup, ...]``)."""

    state: HMCState
    step_size: Array
    inverse_mass_matrix: Array
    info: HMCInfo


def _regularised_variance(count, m2):
    # Stan's regularisation of the windowed variance estimate toward 1e-3 (stan/mcmc/
    # windowed_adaptation): shrinks with the number of draws n as n / (n + 5).
    n = jnp.maximum(count, 2.0)
    variance = m2 / (n - 1.0)
    return (n / (n + 5.0)) * variance + 1e-3 * (5.0 / (n + 5.0))


def as_pytree_fn(logdensity_fn) -> jax.tree_util.Partial:
    """Wrap ``logdensity_fn`` as a :class:`jax.tree_util.Partial` (a pytree), so the jitted
    kernels take it as an ordinary argument: closures over data that are ``Partial``
    arguments recompile only when the wrapped function or the data's shapes change."""
    if isinstance(logdensity_fn, jax.tree_util.Partial):
        return logdensity_fn
    if not callable(logdensity_fn):
        raise ValueError(f"logdensity_fn must be callable, got {type(logdensity_fn).__name__}")
    return jax.tree_util.Partial(logdensity_fn)


# Warm-up schedule as fractions of num_warmup: (fraction, estimate the metric from this
# window's draws). A fast step-size-only window first (reach the typical set), two slow
# windows whose draws set the diagonal metric (the second, from draws made with the first
# estimate, is the better one), and a final fast window that re-tunes the step size for the
# final metric: Stan's schedule (Stan Reference Manual, "HMC algorithm parameters") in short.
WARMUP_WINDOWS = ((0.15, False), (0.25, True), (0.45, True), (0.15, False))


class WarmupCarry(NamedTuple):
    """The adaptation state of one chain between warm-up transitions (a pytree): a warm-up
    cut into blocks carries it from one compiled call to the next.

    Attributes:
        state: the chain's :class:`HMCState`.
        da: dual-averaging state of the current window.
        next_step_size: step size the next window starts from.
        inverse_mass: ``[d]`` diagonal inverse mass matrix in use.
        count, mean, m2: Welford running variance of the current window's draws.
    """

    state: HMCState
    da: DualAveragingState
    next_step_size: Array
    inverse_mass: Array
    count: Array
    mean: Array
    m2: Array


def warmup_schedule(num_warmup: int, *, adapt_mass_matrix: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:data:`WARMUP_WINDOWS` as per-iteration flags ``(window_start, window_end,
    metric_window)``, each ``[num_warmup]`` bool: one scan (one copy of the kernel to
    compile) runs every window. Without ``adapt_mass_matrix`` (or under 40 iterations) the
    warm-up is one step-size window."""
    if adapt_mass_matrix and num_warmup >= 40:
        lengths = [int(f * num_warmup) for f, _ in WARMUP_WINDOWS]
        lengths[-1] = num_warmup - sum(lengths[:-1])
        windows = [(length, update) for length, (_, update) in zip(lengths, WARMUP_WINDOWS)]
    else:
        windows = [(num_warmup, False)]
    window_start, window_end, metric_window = (np.zeros(num_warmup, bool) for _ in range(3))
    offset = 0
    for length, update_metric in windows:
        window_start[offset] = True
        window_end[offset + length - 1] = True
        metric_window[offset : offset + length] = update_metric
        offset += length
    return window_start, window_end, metric_window


def warmup_init(position, *, logdensity_fn: LogDensityFn, step_size) -> WarmupCarry:
    """The :class:`WarmupCarry` of one chain before its first warm-up transition."""
    state = init(position, logdensity_fn)
    dtype = state.position.dtype
    d = state.position.shape[-1]
    step_size = jnp.asarray(step_size, dtype)
    zeros = jnp.zeros((d,), dtype)
    return WarmupCarry(
        state, dual_averaging_init(step_size), step_size, jnp.ones((d,), dtype), jnp.zeros((), dtype), zeros, zeros
    )


def warmup_block(
    carry: WarmupCarry, xs, *, logdensity_fn: LogDensityFn, num_integration_steps: int, step_size,
    target_acceptance=0.8, adapt_step_size: bool = True, step_size_jitter=0.0,
) -> tuple[WarmupCarry, HMCInfo]:
    """Warm-up transitions of one chain from ``carry`` (one ``lax.scan``; call in ``jit``).

    Args:
        carry: :class:`WarmupCarry` so far.
        xs: ``(keys [k], window_start [k], window_end [k], metric_window [k])``: this
            block's slice of the per-iteration keys and of :func:`warmup_schedule`.
        step_size: the initial (or fixed) step size.
        Others: see :func:`_warmup`.

    Returns:
        ``(carry, HMCInfo stacked [k, ...])``; blocks run one after another give the
        carry and transitions of one uncut scan.
    """
    step_fn = build_kernel(logdensity_fn, num_integration_steps=num_integration_steps)
    dtype = carry.state.position.dtype
    step_size = jnp.asarray(step_size, dtype)
    step_size_jitter = jnp.asarray(step_size_jitter, dtype)

    def one(carry: WarmupCarry, xs):
        key, start, end, collect = xs
        da = jax.tree.map(
            lambda fresh, old: jnp.where(start, fresh, old), dual_averaging_init(carry.next_step_size), carry.da
        )
        key_jitter, key_step = jax.random.split(key)
        eps = jnp.exp(da.log_step_size) if adapt_step_size else step_size
        eps = eps * jax.random.uniform(key_jitter, (), dtype, 1 - step_size_jitter, 1 + step_size_jitter)
        state, info = step_fn(key_step, carry.state, eps, carry.inverse_mass)
        # A divergent transition counts as acceptance 0, so the step shrinks after it.
        accept = jnp.where(info.is_divergent, 0.0, info.acceptance_rate)
        da = dual_averaging_update(da, accept, target_acceptance)
        # Welford running variance of this window's draws.
        count = carry.count + collect
        delta = state.position - carry.mean
        mean = jnp.where(collect, carry.mean + delta / jnp.maximum(count, 1), carry.mean)
        m2 = jnp.where(collect, carry.m2 + delta * (state.position - mean), carry.m2)
        window_step = jnp.exp(da.log_step_size_avg) if adapt_step_size else step_size
        new_inverse_mass = _regularised_variance(count, m2)
        update = end & collect
        # Rescale the step to the new metric so adaptation restarts near a sensible value.
        rescale = jnp.sqrt(jnp.mean(carry.inverse_mass / new_inverse_mass)) if adapt_step_size else 1.0
        inverse_mass = jnp.where(update, new_inverse_mass, carry.inverse_mass)
        next_step_size = jnp.where(end, jnp.where(update, window_step * rescale, window_step), carry.next_step_size)
        reset = lambda x: jnp.where(end, jnp.zeros_like(x), x)  # noqa: E731
        carry = WarmupCarry(state, da, next_step_size, inverse_mass, reset(count), reset(mean), reset(m2))
        return carry, info

    return lax.scan(one, carry, xs)


@partial(
    jax.jit,
    static_argnames=("num_warmup", "num_integration_steps", "adapt_step_size", "adapt_mass_matrix"),
)
def _warmup(
    key,
    position,
    *,
    logdensity_fn: LogDensityFn,
    num_warmup: int,
    num_integration_steps: int,
    step_size,
    target_acceptance=0.8,
    adapt_step_size: bool = True,
    adapt_mass_matrix: bool = True,
    step_size_jitter=0.0,
) -> WarmupResult:
    """Warm up one chain (vmap for several): dual-averaging step size and, optionally, a
    diagonal mass matrix.

    With ``adapt_mass_matrix`` (and ``num_warmup >= 40``) warm-up follows
    :data:`WARMUP_WINDOWS`; each new metric is the regularised variance of a window's draws
    and restarts dual averaging. Without ``adapt_step_size`` the step size stays as given.
    :func:`warmup_chains_in_blocks` runs the same transitions as bounded compiled calls.

    Args:
        key: PRNG key.
        position: ``[d]`` starting point.
        num_warmup: warm-up transitions (static); 0 returns the inputs unchanged.
        step_size: initial (or fixed) leapfrog step size.
        target_acceptance: dual-averaging target for the mean acceptance probability.
        step_size_jitter: see :func:`build_kernel`.
    """
    carry0 = warmup_init(position, logdensity_fn=logdensity_fn, step_size=step_size)
    if num_warmup == 0:
        step_fn = build_kernel(logdensity_fn, num_integration_steps=num_integration_steps)
        state, step_size = carry0.state, carry0.next_step_size
        empty = jax.eval_shape(lambda k: step_fn(k, state, step_size, carry0.inverse_mass)[1], key)
        info = jax.tree.map(lambda s: jnp.zeros((0,) + s.shape, s.dtype), empty)
        return WarmupResult(state, step_size, carry0.inverse_mass, info)
    flags = warmup_schedule(num_warmup, adapt_mass_matrix=adapt_mass_matrix)
    xs = (jax.random.split(key, num_warmup), *(jnp.asarray(flag) for flag in flags))
    carry, info = warmup_block(
        carry0, xs, logdensity_fn=logdensity_fn, num_integration_steps=num_integration_steps,
        step_size=step_size, target_acceptance=target_acceptance, adapt_step_size=adapt_step_size,
        step_size_jitter=step_size_jitter,
    )
    return WarmupResult(carry.state, carry.next_step_size, carry.inverse_mass, info)


def warmup(key, position, *, logdensity_fn, **options) -> WarmupResult:
    """Warm up one chain; see :func:`_warmup` for the options (vmap for several chains)."""
    return _warmup(key, position, logdensity_fn=as_pytree_fn(logdensity_fn), **options)


warmup.__doc__ = _warmup.__doc__


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


def sample(
    key,
    logdensity_fn: LogDensityFn,
    initial_position,
    *,
    num_samples: int,
    num_warmup: int = 0,
    num_integration_steps: int = 10,
    step_size=0.1,
    adapt_step_size: bool = True,
    adapt_mass_matrix: bool = True,
    target_acceptance: float = 0.8,
    step_size_jitter: float = 0.2,
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
        num_integration_steps: leapfrog steps per proposal.
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


def warmup_chains(chain_keys, initial_position, *, logdensity_fn, **options) -> WarmupResult:
    """:func:`warmup` for every chain at once (``vmap``); ``chain_keys`` ``[chains]``,
    ``initial_position`` ``[chains, d]``; returns a :class:`WarmupResult` with a leading
    chain axis. Chain ``c`` uses ``fold_in(chain_keys[c], 0)``."""
    logdensity_fn = as_pytree_fn(logdensity_fn)
    return jax.vmap(
        lambda k, x: warmup(jax.random.fold_in(k, 0), x, logdensity_fn=logdensity_fn, **options)
    )(chain_keys, jnp.asarray(initial_position))


@partial(jax.jit, static_argnames=("num_warmup",))
def _warmup_chains_init(chain_keys, initial_position, logdensity_fn, step_size, *, num_warmup):
    carry = jax.vmap(lambda x: warmup_init(x, logdensity_fn=logdensity_fn, step_size=step_size))(initial_position)
    # The keys of warmup(fold_in(chain_key, 0), ...): split(key, num_warmup), one per transition.
    keys = jax.vmap(lambda k: jax.random.split(jax.random.fold_in(k, 0), num_warmup))(chain_keys)
    return carry, keys


@partial(jax.jit, static_argnames=("num_integration_steps", "adapt_step_size"))
def _warmup_chains_block(carry, xs, logdensity_fn, step_size, target_acceptance, step_size_jitter, *,
                         num_integration_steps, adapt_step_size):
    keys, *flags = xs  # keys [chains, k]; the schedule's flags [k], shared by every chain
    return jax.vmap(
        lambda c, k: warmup_block(
            c, (k, *flags), logdensity_fn=logdensity_fn, num_integration_steps=num_integration_steps,
            step_size=step_size, target_acceptance=target_acceptance, adapt_step_size=adapt_step_size,
            step_size_jitter=step_size_jitter,
        )
    )(carry, keys)


def warmup_chains_in_blocks(
    chain_keys, initial_position, *, logdensity_fn, num_warmup: int, block_size: int, num_integration_steps: int,
    step_size, target_acceptance=0.8, adapt_step_size: bool = True, adapt_mass_matrix: bool = True,
    step_size_jitter=0.0, before_block: Callable[[int], None] | None = None,
) -> WarmupResult:
    """:func:`warmup_chains` as compiled calls of at most ``block_size`` transitions each,
    the :class:`WarmupCarry` (chain state and adaptation state) carried from one to the
    next: the same keys, schedule and transitions, so the result is bit-identical to the
    uncut warm-up, and a caller can stop between blocks.

    Args:
        chain_keys: ``[chains]`` keys (chain ``c`` uses ``fold_in(chain_keys[c], 0)``).
        initial_position: ``[chains, d]``.
        num_warmup: transitions per chain.
        block_size: transitions per compiled call (the last block may be shorter: at most
            two compilations).
        before_block: called as ``before_block(transitions_done)`` before each block; raise
            there to stop the warm-up.
        Others: see :func:`_warmup`.

    Returns:
        :class:`WarmupResult` with a leading chain axis (``info`` ``[chains, num_warmup, ...]``).
    """
    validate_sampler_options(num_warmup=num_warmup, num_integration_steps=num_integration_steps, step_size=step_size)
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    options = dict(num_integration_steps=num_integration_steps, adapt_step_size=adapt_step_size)
    if num_warmup == 0:
        return warmup_chains(chain_keys, initial_position, logdensity_fn=logdensity_fn, num_warmup=0,
                             step_size=step_size, target_acceptance=target_acceptance,
                             adapt_mass_matrix=adapt_mass_matrix, step_size_jitter=step_size_jitter, **options)
    logdensity_fn = as_pytree_fn(logdensity_fn)
    initial_position = jnp.asarray(initial_position)
    dtype = initial_position.dtype
    step_size, target, jitter = (jnp.asarray(x, dtype) for x in (step_size, target_acceptance, step_size_jitter))
    carry, keys = _warmup_chains_init(chain_keys, initial_position, logdensity_fn, step_size, num_warmup=num_warmup)
    flags = warmup_schedule(num_warmup, adapt_mass_matrix=adapt_mass_matrix)
    infos = []
    for done in range(0, num_warmup, int(block_size)):
        if before_block is not None:
            before_block(done)
        piece = slice(done, min(done + int(block_size), num_warmup))
        xs = (keys[:, piece], *(jnp.asarray(flag[piece]) for flag in flags))
        carry, info = _warmup_chains_block(carry, xs, logdensity_fn, step_size, target, jitter, **options)
        infos.append(jax.block_until_ready(info))
    info = infos[0] if len(infos) == 1 else jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=1), *infos)
    return WarmupResult(carry.state, carry.next_step_size, carry.inverse_mass, info)


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
    NUTS (:mod:`nbody_core.nuts`) reports its own ``num_integration_steps``)."""
    info = result.info
    if hasattr(info, "num_integration_steps"):
        return int(np.sum(np.asarray(info.num_integration_steps)))
    chains, draws, points = np.asarray(info.path_position).shape[:3]
    return int(chains * draws * (points - 1))
