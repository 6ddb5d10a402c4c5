"""Chain starts by time-window tempered multi-start optimisation (issue 12).

``tempered_starts(problem, key, num_chains) -> [num_chains, d]``: many prior draws are each
optimised (Levenberg-Marquardt: the log posterior is a weighted least-squares objective) on it with the observations of a growing time
window: the first quarter of the observing arc, then the first half, three quarters, then all
of it, each fit warm-starting the next. Early observations pin the parameters roughly while the orbit has not
yet diverged, so the later, sharply multimodal likelihood of a chaotic orbit is entered near
its right mode ("time-window tempering", the usual cure for multimodality in chaotic ODE
inference). Between windows the worse half of the optima is replaced by jittered copies of the
better half (two local posterior sds of the window just fitted), a particle-filter step that
searches the region still consistent with the data seen so far. The chains then start at the best optima: every distinct optimum whose log density
is within :data:`START_LP_GAP` nats of the best gets chains (round robin), each start jittered
by about one local posterior standard deviation, so chains in genuinely comparable modes stay
visible to R-hat and :func:`nbody_core.infer.posterior.mode_check`.

Pure JAX; the compiled fit is shared by every problem of the same shapes (the data
are traced leaves of the problem's ``jax.tree_util.Partial`` functions).
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["tempered_starts", "laplace_scale", "whitened_logdensity", "TEMPERING_WINDOWS", "START_LP_GAP"]

#: Fractions of the observing arc fitted in turn (each stage warm-starts the next).
TEMPERING_WINDOWS = (0.25, 0.5, 0.75, 1.0)
#: Optima more than this many nats below the best get no chain: a mode log(10) nats down holds
#: ~10 % of the best's posterior mass (for comparable widths), and a chain started in a mode
#: stays there (HMC does not cross between these modes), so with 4 chains a mode with a chain
#: is weighted 25 %: more than 2.5x too much below this gap. (On the t in (0, 2] SBC, 5 nats let
#: chains start in side modes 4-5 nats down, ~1 % of the mass, and R-hat flagged the dataset.)
START_LP_GAP = math.log(10.0)
#: Two optima closer than this (in prior standard deviations, every coordinate) are one mode.
_SAME_MODE = 1e-2


def _stage_weights(observed_times, windows):
    """``[S, K]`` 0/1 weights of the observations inside each window (at least the first one);
    repeated windows (few observations) are dropped."""
    times = np.asarray(observed_times, dtype=float)
    stages = []
    for fraction in windows:
        w = (times <= fraction * times[-1] * (1 + 1e-9)).astype(float)
        w[0] = 1.0
        if not stages or not np.array_equal(stages[-1], w):
            stages.append(w)
    return np.stack(stages)


@partial(jax.jit, static_argnames=("num_steps",))
def _fit_stage(predict_fn, observations, noise, prior_mean, prior_std, x0, weights, *, num_steps):
    """Levenberg-Marquardt on ``-(log prior + weighted log likelihood)`` (a weighted least
    squares problem) from every start in ``x0 [M, d]``, observation ``k`` weighted by
    ``weights[k]``.

    Returns:
        ``(optima [M, d], objective [M], precision [M, d])``: the objective at each optimum
        (``inf`` where not finite) and the diagonal of its Gauss-Newton (Fisher) precision.
    """

    def residuals(theta):
        return ((predict_fn(theta) - observations) / noise).reshape(observations.shape[0], -1)

    def objective(theta):
        z = (theta - prior_mean) / prior_std
        value = 0.5 * jnp.sum(weights[:, None] * residuals(theta) ** 2) + 0.5 * jnp.sum(z**2)
        return jnp.where(jnp.isfinite(value), value, jnp.inf)

    def normal_equations(x):
        jacobian = jax.jacrev(residuals)(x)  # [K, m, d]: reverse mode (the simulation's custom VJP)
        wj = weights[:, None, None] * jacobian
        normal = jnp.einsum("kmi,kmj->ij", wj, jacobian) + jnp.diag(1.0 / prior_std**2)
        gradient = jnp.einsum("kmi,km->i", wj, residuals(x)) + (x - prior_mean) / prior_std**2
        return normal, gradient

    def fit_one(x):
        def step(carry, _):
            x, damping = carry
            normal, gradient = normal_equations(x)
            damped = normal + damping * jnp.diag(jnp.diagonal(normal))
            candidate = x - jnp.linalg.solve(damped, gradient)
            better = (objective(candidate) < objective(x)) & jnp.all(jnp.isfinite(candidate))
            return (jnp.where(better, candidate, x), jnp.where(better, damping / 3, damping * 4)), None

        (x, _), _ = lax.scan(step, (x, jnp.asarray(1e-2, x.dtype)), None, length=num_steps)
        normal, _ = normal_equations(x)
        return x, objective(x), jnp.diagonal(normal)

    return jax.vmap(fit_one)(x0)


@jax.jit
def _logdensity_batch(logdensity_fn, x):
    return jax.vmap(logdensity_fn)(x)


def _local_sd(precision, prior_std):
    """``1 / sqrt(precision)`` (Gauss-Newton), the prior sd where that is not finite."""
    ok = np.isfinite(precision) & (precision > 0)
    return np.where(ok, 1.0 / np.sqrt(np.where(ok, precision, 1.0)), prior_std)


def tempered_starts(
    problem, key, num_chains: int, *, num_starts: int = 32, num_steps: int = 20, windows=TEMPERING_WINDOWS,
):
    """Chain starting points ``[num_chains, d]`` at the best optima of a tempered multi-start fit.

    Args:
        problem: an :class:`nbody_core.infer.inference.InferenceProblem`.
        key: PRNG key (prior draws and jitter).
        num_chains: number of chains.
        num_starts: prior draws optimised (``M``).
        num_steps: Levenberg-Marquardt iterations per time window (each: one Jacobian by
            reverse mode, a ``d x d`` solve, a step kept only if it lowers the objective).
        windows: fractions of the observing arc fitted in turn, the last 1.0.

    Returns:
        ``[num_chains, d]`` starts, each with a finite log density.

    Raises:
        ValueError: for a bad count or window list, or when no optimum has a finite log density.
    """
    for label, value in (("num_chains", num_chains), ("num_starts", num_starts), ("num_steps", num_steps)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    windows = tuple(float(w) for w in windows)
    if not windows or windows[-1] != 1.0 or any(not 0 < w <= 1 for w in windows):
        raise ValueError(f"windows must be fractions in (0, 1] ending with 1.0, got {windows!r}")
    data = problem.logdensity_fn.args[0]
    dtype = data.observations.dtype
    mean, std = np.asarray(problem.prior_mean), np.asarray(problem.prior_std)
    key_draws, key_jitter = jax.random.split(key)
    x0 = jnp.asarray(mean + std * np.asarray(jax.random.normal(key_draws, (int(num_starts), mean.size))), dtype)
    stages = _stage_weights(problem.observed_times, windows)
    key_refill, key_jitter = jax.random.split(key_jitter)
    fit = partial(_fit_stage, problem.predict_fn, data.observations, data.noise, jnp.asarray(mean, dtype),
                  jnp.asarray(std, dtype), num_steps=int(num_steps))
    x = x0
    for index, weights in enumerate(stages):
        optima, value, precision = (np.asarray(a) for a in fit(x, jnp.asarray(weights, dtype)))
        if index == len(stages) - 1:
            break
        # Between windows, like a particle filter: the worse half of the starts is replaced by
        # the better half jittered by two local posterior sds of this window's fit, so the next,
        # longer window searches around the optima that fit the data so far.
        order = np.argsort(np.where(np.isfinite(value), value, np.inf))
        keep = order[: max(1, len(order) // 2)]
        refill = keep[np.arange(len(order) - len(keep)) % len(keep)]
        jitter = np.asarray(jax.random.normal(jax.random.fold_in(key_refill, index), (len(refill), mean.size)))
        sd = _local_sd(precision[refill], std)
        x = jnp.asarray(np.concatenate([optima[keep], optima[refill] + 2.0 * sd * jitter]), dtype)
    values = np.asarray(_logdensity_batch(problem.logdensity_fn, jnp.asarray(optima, dtype)))
    finite = np.isfinite(values) & np.all(np.isfinite(optima), axis=1)
    if not finite.any():
        raise ValueError("no optimum with a finite log density: the simulation blows up everywhere tried")
    order = [i for i in np.argsort(-np.where(finite, values, -np.inf)) if finite[i]]
    best = values[order[0]]
    modes = []
    for i in order:
        if values[i] < best - START_LP_GAP:
            break
        if all(np.any(np.abs(optima[i] - optima[j]) > _SAME_MODE * std) for j in modes):
            modes.append(i)
    # About one local posterior sd (from the Fisher precision; at most one prior sd): chains
    # start apart, so R-hat still compares independent runs, but inside the mode's basin.
    local_sd = _local_sd(precision, std)
    noise = np.asarray(jax.random.normal(key_jitter, (int(num_chains), mean.size)))
    chosen = np.asarray([modes[c % len(modes)] for c in range(int(num_chains))])
    starts = optima[chosen] + local_sd[chosen] * noise
    lp = np.asarray(_logdensity_batch(problem.logdensity_fn, jnp.asarray(starts, dtype)))
    starts = np.where(np.isfinite(lp)[:, None], starts, optima[chosen])  # jitter off where not finite
    return jnp.asarray(starts, dtype)


@jax.jit
def _gauss_newton_precision(predict_fn, observations, noise, prior_std, theta):
    """Dense Gauss-Newton (Fisher) precision ``[d, d]`` of the log posterior at ``theta``."""
    jacobian = jax.jacrev(lambda p: ((predict_fn(p) - observations) / noise).ravel())(theta)
    return jacobian.T @ jacobian + jnp.diag(1.0 / prior_std**2)


def laplace_scale(problem, theta):
    """Cholesky factor ``L [d, d]`` of the Laplace (Gauss-Newton) covariance at ``theta``.

    Sampling ``u`` with ``theta = center + L u`` (:func:`whitened_logdensity`) is HMC with the
    dense mass matrix ``L L^T``: on the triple-system masses observed over t in (0, 2] the
    posterior is a thin ridge (correlations of the masses) along which a diagonal metric
    mixes too slowly for R-hat (chain means 3 within-chain sds apart after 200 draws).
    """
    data = problem.logdensity_fn.args[0]
    dtype = data.observations.dtype
    precision = _gauss_newton_precision(problem.predict_fn, data.observations, data.noise,
                                        jnp.asarray(problem.prior_std, dtype), jnp.asarray(theta, dtype))
    return jnp.linalg.cholesky(jnp.linalg.inv(precision))


def _whitened(logdensity_fn, center, scale, u):
    return logdensity_fn(center + scale @ u)


def whitened_logdensity(logdensity_fn, center, scale):
    """``u -> logdensity_fn(center + scale @ u)`` as a :class:`jax.tree_util.Partial` (center
    and scale are traced leaves: a new dataset does not recompile the sampler)."""
    return jax.tree_util.Partial(_whitened, logdensity_fn, jnp.asarray(center), jnp.asarray(scale))
