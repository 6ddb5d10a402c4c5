"""HMC warm-up: dual-averaging step size and a windowed diagonal metric, in one scan or in
blocks.

Contract: :func:`warmup` adapts one chain (vmap for several; :func:`warmup_chains` does) in
one compiled scan; :func:`warmup_chains_in_blocks` runs the same transitions as compiled
blocks carrying a :class:`WarmupCarry` (chain and adaptation state), so a caller can stop
between blocks. Dual averaging is Hoffman & Gelman 2014, JMLR 15, 1593, Algorithm 5; the
window schedule is Stan's in short. Built on :mod:`nbody_core.infer.hmc_kernel`, which
re-exports these names.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

import nbody_core.defaults as defaults
from .hmc_kernel import HMCInfo, HMCState, LogDensityFn, as_pytree_fn, build_kernel, init, validate_sampler_options

__all__ = [
    "DualAveragingState",
    "WarmupResult",
    "WarmupCarry",
    "dual_averaging_init",
    "dual_averaging_update",
    "warmup",
    "warmup_chains",
    "warmup_chains_in_blocks",
    "warmup_schedule",
    "warmup_init",
    "warmup_block",
    "WARMUP_WINDOWS",
    "DUAL_AVERAGING_GAMMA",
    "DUAL_AVERAGING_T0",
    "DUAL_AVERAGING_KAPPA",
]


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
    """Start adapting from ``step_size`` (scalar, the parameters' units per unit of
    fictitious time); shrinkage target ``mu = log(10 step_size)``."""
    log_step = jnp.log(jnp.asarray(step_size, dtype=float))
    zero = jnp.zeros_like(log_step)
    return DualAveragingState(log_step, zero, zero, zero, jnp.log(10.0) + log_step)


def dual_averaging_update(state: DualAveragingState, acceptance_rate, target: float) -> DualAveragingState:
    """One update of Algorithm 5.

    Args:
        state: the iterate so far (scalar fields).
        acceptance_rate: scalar acceptance probability of the transition just made, in [0, 1].
        target: the mean acceptance probability aimed at (0.8 by default in :func:`warmup`).
    """
    t = state.iteration + 1
    eta = 1.0 / (t + DUAL_AVERAGING_T0)
    average_error = (1 - eta) * state.average_error + eta * (target - acceptance_rate)
    log_step = state.mu - jnp.sqrt(t) / DUAL_AVERAGING_GAMMA * average_error
    weight = t ** (-DUAL_AVERAGING_KAPPA)
    log_step_avg = weight * log_step + (1 - weight) * state.log_step_size_avg
    return DualAveragingState(log_step, log_step_avg, t, average_error, state.mu)


class WarmupResult(NamedTuple):
    """End of warm-up for one chain (a leading ``[chains]`` axis on every field from
    :func:`warmup_chains`).

    Attributes:
        state: the chain's :class:`HMCState` after warm-up (position ``[d]``).
        step_size: scalar tuned leapfrog step size.
        inverse_mass_matrix: ``[d]`` diagonal inverse mass matrix (variance of each parameter,
            its units squared).
        info: the warm-up transitions' diagnostics, ``HMCInfo`` stacked ``[num_warmup, ...]``.
    """

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
        count, mean, m2: Welford running variance of the current window's draws: scalar
            count, ``[d]`` mean and ``[d]`` sum of squared deviations.
    """

    state: HMCState
    da: DualAveragingState
    next_step_size: Array
    inverse_mass: Array
    count: Array  # type: ignore[assignment]  # shadows tuple.count, never called on this state
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
    """The :class:`WarmupCarry` of one chain before its first warm-up transition.

    Args:
        position: ``[d]`` starting point of the chain.
        logdensity_fn: log density of a ``[d]`` position (scalar).
        step_size: scalar initial leapfrog step size.
    """
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
    target_acceptance=defaults.TARGET_ACCEPTANCE, adapt_step_size: bool = True, step_size_jitter=0.0,
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
    target_acceptance=defaults.TARGET_ACCEPTANCE,
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
        logdensity_fn: log density of a ``[d]`` position (scalar).
        num_warmup: warm-up transitions (static); 0 returns the inputs unchanged.
        num_integration_steps: leapfrog steps per transition (static).
        step_size: scalar initial (or fixed) leapfrog step size.
        target_acceptance: dual-averaging target for the mean acceptance probability.
        adapt_step_size, adapt_mass_matrix: what to adapt (static).
        step_size_jitter: see :func:`build_kernel`.

    Returns:
        :class:`WarmupResult`.
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
    step_size, target_acceptance=defaults.TARGET_ACCEPTANCE, adapt_step_size: bool = True, adapt_mass_matrix: bool = True,
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
