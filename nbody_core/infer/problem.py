"""The inference problem record: a posterior over physical parameters and what made it.

:class:`InferenceProblem` is what :func:`nbody_core.infer.inference.make_problem` builds and
what the samplers, the posterior export and the gradient checks read; ``physical_name`` /
``to_physical`` turn an unconstrained parameter (``log_m0``) into its physical one (``m0``).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from nbody_core.physics.state import ParticleState

__all__ = ["InferenceProblem", "physical_name", "to_physical"]


def physical_name(name: str) -> str:
    """``log_m0`` -> ``m0``: the name of a parameter in physical units."""
    return name[4:] if name.startswith("log_") else name


def to_physical(name: str, value):
    """The value of parameter ``name`` in physical units (``exp`` of a log parameter)."""
    return np.exp(value) if name.startswith("log_") else value


@dataclasses.dataclass(frozen=True, eq=False)
class InferenceProblem:
    """A posterior over physical parameters ``theta`` (unconstrained, ``[d]``).

    Attributes:
        name: problem name.
        description: one line for users.
        parameter_names: ``d`` names, e.g. ``("log_m0", "log_m1", "log_m2", "log_G", "vx2")``.
        truth: ``[d]`` true ``theta`` the data were made with.
        prior_mean, prior_std: ``[d]`` independent Normal priors on ``theta``.
        observed_times: ``[K]`` observation times, time units.
        observations: ``[K, n, a]`` noisy observed coordinates (``a`` observed axes), length units.
        noise: observation standard deviation, length units.
        initial_state: the true initial state (its velocity holds the true velocity parameter).
        logdensity_fn: ``theta [d] -> scalar`` log posterior (unnormalised by the evidence),
            a ``jax.tree_util.Partial`` carrying the data as traced leaves.
        log_likelihood_fn, log_prior_fn, predict_fn: the pieces, same calling convention
            (``predict_fn(theta) -> [K, n, a]``).
    """

    name: str
    description: str
    parameter_names: tuple[str, ...]
    truth: np.ndarray
    prior_mean: np.ndarray
    prior_std: np.ndarray
    observed_times: np.ndarray
    observations: np.ndarray
    noise: float
    initial_state: ParticleState
    logdensity_fn: Callable
    log_likelihood_fn: Callable
    log_prior_fn: Callable
    predict_fn: Callable

    @property
    def num_parameters(self) -> int:
        return len(self.parameter_names)

    def physical_truth(self) -> dict[str, float]:
        """True values in physical units: masses, G and the velocity component."""
        return {physical_name(n): to_physical(n, v) for n, v in zip(self.parameter_names, self.truth)}
