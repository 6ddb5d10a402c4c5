"""The sampler's metric: diagonal, or dense from the Laplace covariance by whitening.

Contract: ``whitening_for(problem, metric, starts)`` returns None for ``"diagonal"`` (sample
``theta`` itself) or, for ``"laplace"``, a :class:`Whitening` ``(center, scale)``: sampling ``u``
under :meth:`Whitening.logdensity_fn` with ``theta = center + scale @ u`` is HMC (or NUTS) on
``theta`` with the dense inverse mass matrix ``scale @ scale.T``, the Laplace (Gauss-Newton)
covariance at the best chain start. :meth:`Whitening.to_theta` and :func:`theta_info` map draws
and recorded leapfrog paths back, so a caller sees ``theta`` whatever the metric.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

import nbody_core.defaults as defaults
from .hmc_kernel import HMCInfo, SampleResult
from .starts import laplace_scale, whitened_logdensity

__all__ = ["Whitening", "whitening_for", "theta_info", "theta_result", "METRICS"]

METRICS = defaults.METRICS


@jax.jit
def _logdensity_batch(fn, x):
    return jax.vmap(fn)(x)


class Whitening(NamedTuple):
    """``theta = center + scale @ u``.

    Attributes:
        center: ``[d]`` the best chain start (highest log density).
        scale: ``[d, d]`` lower Cholesky factor of the Laplace covariance at ``center``.
    """

    center: Array
    scale: Array

    def logdensity_fn(self, logdensity_fn) -> jax.tree_util.Partial:
        """``u -> logdensity_fn(center + scale @ u)`` (center and scale traced: new data do not
        recompile)."""
        return whitened_logdensity(logdensity_fn, self.center, self.scale)

    def to_u(self, theta) -> Array:
        """Whitened coordinates of ``theta [..., d]``."""
        theta = jnp.asarray(theta)
        flat = theta.reshape(-1, theta.shape[-1]) - self.center
        return jax.scipy.linalg.solve_triangular(self.scale, flat.T, lower=True).T.reshape(theta.shape)

    def to_theta(self, u) -> Array:
        """``center + scale @ u`` for ``u [..., d]``."""
        return self.center + jnp.einsum("ij,...j->...i", self.scale, jnp.asarray(u))

    def covector_to_theta(self, g) -> Array:
        """A gradient or momentum in ``u`` as one in ``theta``: ``scale^-T g`` (the chain rule:
        ``grad_u = scale^T grad_theta``)."""
        g = jnp.asarray(g)
        flat = g.reshape(-1, g.shape[-1])
        out = jax.scipy.linalg.solve_triangular(self.scale.T, flat.T, lower=False).T
        return out.reshape(g.shape)


def whitening_for(problem, metric: str, starts) -> Whitening | None:
    """The coordinates to sample ``problem`` in with ``metric``.

    Args:
        problem: an :class:`~nbody_core.infer.problem.InferenceProblem`.
        metric: ``"laplace"`` or ``"diagonal"`` (:data:`nbody_core.defaults.METRICS`).
        starts: ``[chains, d]`` chain starts; the Laplace covariance is taken at the best.

    Returns:
        None for ``"diagonal"``; a :class:`Whitening` for ``"laplace"``.

    Raises:
        ValueError: for an unknown metric, or a Laplace covariance that is not positive
            definite and finite at the best start.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {list(METRICS)}")
    if metric == "diagonal":
        return None
    starts = jnp.asarray(starts)
    lp = np.asarray(_logdensity_batch(problem.logdensity_fn, starts))
    center = starts[int(np.argmax(np.where(np.isfinite(lp), lp, -np.inf)))]
    scale = laplace_scale(problem, center)
    if not bool(jnp.all(jnp.isfinite(scale))):
        raise ValueError("the Laplace covariance at the best chain start is not positive definite; "
                         "use metric='diagonal'")
    return Whitening(center, scale)


def theta_info(whitening: Whitening | None, info: HMCInfo) -> HMCInfo:
    """``info`` of transitions sampled in ``u`` (any leading axes) with its paths, momenta and
    gradients in ``theta``; energies, log densities and acceptances are the same in both."""
    if whitening is None:
        return info
    return info._replace(
        momentum=whitening.covector_to_theta(info.momentum),
        path_position=whitening.to_theta(info.path_position),
        path_momentum=whitening.covector_to_theta(info.path_momentum),
        path_gradient=whitening.covector_to_theta(info.path_gradient),
    )


def theta_result(whitening: Whitening | None, result: SampleResult) -> SampleResult:
    """A :class:`~nbody_core.infer.hmc_kernel.SampleResult` of HMC or NUTS sampled in ``u``
    with its draws, warm-up positions and (HMC) recorded paths in ``theta``. The step size and
    inverse mass matrix stay those of ``u``, the coordinates they were adapted in."""
    if whitening is None:
        return result

    def warm_to_theta(warm):
        if isinstance(warm, HMCInfo):
            return theta_info(whitening, warm)
        return warm._replace(position=whitening.to_theta(warm.position))  # NUTS: its positions

    info = theta_info(whitening, result.info) if isinstance(result.info, HMCInfo) else result.info
    return result._replace(position=whitening.to_theta(result.position), info=info,
                           warmup_info=warm_to_theta(result.warmup_info))
