"""Exact Gaussian-process regression in JAX: the baseline the network has to beat.

Contract: :func:`fit_gp` fits one GP per output column (ARD squared-exponential kernel plus
a noise term; hyperparameters maximise the log marginal likelihood with Adam) and returns a
:class:`GPModel`; :func:`gp_predict` gives the predictive mean and the standard deviation of
a *new observation* (latent variance plus noise) at new inputs. Inputs and outputs are
expected normalised (zero mean, unit variance per column).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["GPModel", "fit_gp", "gp_predict", "gp_log_marginal_likelihood"]

# Jitter added to the kernel diagonal: keeps the Cholesky factor finite when the learned
# noise is tiny (1e-6 of unit output variance is far below any summary's scatter).
_JITTER = 1e-6


class GPModel(NamedTuple):
    """A fitted GP, one per output (leading axis S).

    Attributes:
        x_train: ``[n, P]`` normalised training inputs.
        log_lengthscale: ``[S, P]``; log_signal: ``[S]`` log signal variance;
        log_noise: ``[S]`` log noise variance.
        alpha: ``[S, n]`` ``K^-1 y``; cholesky: ``[S, n, n]`` lower factor of ``K``.
    """

    x_train: jax.Array
    log_lengthscale: jax.Array
    log_signal: jax.Array
    log_noise: jax.Array
    alpha: jax.Array
    cholesky: jax.Array


def _kernel(xa, xb, log_lengthscale, log_signal):
    scaled_a = xa / jnp.exp(log_lengthscale)
    scaled_b = xb / jnp.exp(log_lengthscale)
    sq = jnp.sum((scaled_a[:, None, :] - scaled_b[None, :, :]) ** 2, axis=-1)
    return jnp.exp(log_signal) * jnp.exp(-0.5 * sq)


def gp_log_marginal_likelihood(hyper, x, y):
    """log p(y | x, hyper) for one output: ``hyper = (log_lengthscale [P], log_signal,
    log_noise)``, ``x [n, P]``, ``y [n]``."""
    log_lengthscale, log_signal, log_noise = hyper
    n = x.shape[0]
    k = _kernel(x, x, log_lengthscale, log_signal) + (jnp.exp(log_noise) + _JITTER) * jnp.eye(n)
    chol = jnp.linalg.cholesky(k)
    alpha = jax.scipy.linalg.cho_solve((chol, True), y)
    return -0.5 * y @ alpha - jnp.sum(jnp.log(jnp.diag(chol))) - 0.5 * n * jnp.log(2 * jnp.pi)


def fit_gp(x, y, *, num_steps: int = 150, learning_rate: float = 0.1, max_fit_points: int = 128,
           seed: int = 0) -> GPModel:
    """Fit one GP per output column of ``y``.

    Hyperparameters are fitted on at most ``max_fit_points`` rows (an exact GP costs
    O(n^3) per step: 256 rows x 300 steps took ~3 min on two loaded cores; 128 rows pin
    down a handful of length scales), then the GP conditions on every row.

    Args:
        x: ``[n, P]`` normalised inputs; y: ``[n, S]`` normalised outputs.
        num_steps: Adam steps on the negative log marginal likelihood.
        seed: picks the hyperparameter-fit subset.
    """
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    n, p = x.shape
    rows = np.arange(n)
    if n > max_fit_points:
        rows = np.sort(np.random.Generator(np.random.PCG64(seed)).choice(n, max_fit_points, replace=False))
    x_fit, y_fit = x[rows], y[rows]
    init = (jnp.zeros((y.shape[1], p)), jnp.zeros(y.shape[1]), jnp.full(y.shape[1], jnp.log(0.1)))

    def loss(hyper):
        per_output = jax.vmap(gp_log_marginal_likelihood, in_axes=((0, 0, 0), None, 1))(hyper, x_fit, y_fit)
        return -jnp.sum(per_output) / x_fit.shape[0]

    optimizer = optax.adam(learning_rate)

    @jax.jit
    def run(hyper):
        def step(carry, _):
            hyper, state = carry
            value, grads = jax.value_and_grad(loss)(hyper)
            updates, state = optimizer.update(grads, state)
            return (optax.apply_updates(hyper, updates), state), value

        (hyper, _), _ = jax.lax.scan(step, (hyper, optimizer.init(hyper)), None, length=num_steps)
        return hyper

    log_lengthscale, log_signal, log_noise = run(init)
    # Keep the noise above the jitter scale: a GP that "explains" noisy summaries exactly
    # would claim zero scatter.
    log_noise = jnp.maximum(log_noise, jnp.log(1e-4))
    return _condition(x, y, log_lengthscale, log_signal, log_noise)


@jax.jit
def _condition(x, y, log_lengthscale, log_signal, log_noise):
    def one(ls, sig, noise, column):
        k = _kernel(x, x, ls, sig) + (jnp.exp(noise) + _JITTER) * jnp.eye(x.shape[0])
        chol = jnp.linalg.cholesky(k)
        return jax.scipy.linalg.cho_solve((chol, True), column), chol

    alpha, chol = jax.vmap(one, in_axes=(0, 0, 0, 1))(log_lengthscale, log_signal, log_noise, y)
    return GPModel(x, log_lengthscale, log_signal, log_noise, alpha, chol)


@jax.jit
def gp_predict(model: GPModel, x):
    """Predictive mean and sd of a new observation: ``x [B, P]`` -> ``([B, S], [B, S])``."""

    def one(ls, sig, noise, alpha, chol):
        k_star = _kernel(x, model.x_train, ls, sig)  # [B, n]
        mean = k_star @ alpha
        v = jax.scipy.linalg.solve_triangular(chol, k_star.T, lower=True)
        var = jnp.exp(sig) - jnp.sum(v**2, axis=0) + jnp.exp(noise)
        return mean, jnp.sqrt(jnp.maximum(var, jnp.exp(noise)))

    mean, sd = jax.vmap(one)(model.log_lengthscale, model.log_signal, model.log_noise, model.alpha, model.cholesky)
    return mean.T, sd.T
