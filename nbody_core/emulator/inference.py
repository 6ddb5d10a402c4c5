"""Inference with an emulator as the forward model, checked against the simulator itself.

Contract: :func:`emulator_posterior` turns observed summaries of *one* simulation (say the
10/50/90 % Lagrangian radii of a Plummer sphere) into a grid posterior over the emulator's
inputs (say softening and virial ratio), with a uniform prior over the box the emulator was
trained on (log-uniform for log-spaced sweeps) and the Gaussian likelihood
``y_obs ~ N(mean(theta), Sigma(theta))`` the emulator predicts, with
``Sigma_ij = sd_i sd_j correlation_ij`` — its sd is the member-to-member scatter, exactly the
spread of one realisation's summaries, and the correlation that of the scatter (the 10 % and
50 % Lagrangian radii correlate at ~0.5; a diagonal Gaussian counts their shared information
twice and gave 87 % coverage of 95 % intervals). :func:`simulator_posterior` builds the same
posterior from the simulator (a synthetic likelihood, Wood 2010: at each grid point, the mean
and the full sample covariance of the summaries over ``replicas`` fresh members run with
``run_ensemble``), so the two can be compared (:func:`compare_posteriors`). :func:`simulate_at` runs the simulator at given
parameters with the spec of the ensemble the emulator was trained on.

Grids are used instead of MCMC because the emulator's inputs are one to three swept
parameters: a grid is exact up to its spacing and needs no tuning.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Mapping, NamedTuple

import numpy as np

from nbody_core.ensembles import EnsembleSpec, Sweep, run_ensemble
from .model import Emulator

__all__ = ["GridPosterior", "training_spec", "simulate_at", "emulator_posterior", "simulator_posterior",
           "compare_posteriors", "MAX_GRID_POINTS", "gaussian_log_likelihood", "synthetic_log_likelihood",
           "COVARIANCES"]

#: Likelihood covariances: the full one (default) or its diagonal (for comparison only).
COVARIANCES = ("full", "diagonal")

#: Cap on the number of grid points of a posterior (G^P).
MAX_GRID_POINTS = 250_000


class GridPosterior(NamedTuple):
    """A posterior on a grid over the inferred inputs.

    Attributes:
        names: inferred input names (P').
        grids: per inferred input, ``[G]`` raw values (log-spaced for log inputs).
        log_posterior: ``[G] * P'`` normalised log posterior mass per grid cell.
        mean, sd: ``[P']`` posterior mean and sd (raw units).
        interval: ``[P', 2]`` central 95 % credible interval from each marginal.
        marginals: per inferred input, ``[G]`` probability mass.
        seconds: wall time to build it.
        forward_evaluations: forward-model evaluations (emulator calls or simulations).
    """

    names: tuple
    grids: tuple
    log_posterior: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    interval: np.ndarray
    marginals: tuple
    seconds: float
    forward_evaluations: int


def training_spec(emulator: Emulator) -> EnsembleSpec:
    """The :class:`EnsembleSpec` of the ensemble the emulator was trained on."""
    return EnsembleSpec.from_dict(emulator.header["ensemble"]["spec"])


def _with_values(spec: EnsembleSpec, values: Mapping[str, float]) -> EnsembleSpec:
    return replace(spec, **{name: float(value) for name, value in values.items()})


def simulate_at(emulator: Emulator, values: Mapping[str, float], *, num_members: int = 8, seed: int = 1,
                chunk_size: int | None = None) -> np.ndarray:
    """Run ``num_members`` fresh members of the training ensemble's system at ``values``.

    Args:
        values: every input of the emulator -> value (raw units).
        num_members: replicas (they differ by initial-condition seed).
        seed: root seed (pick one unlike the training ensemble's to get unseen members).

    Returns:
        ``[num_members, S]`` the emulator's outputs as simulated.
    """
    emulator.predict_named(values)  # names checked the same way
    spec = replace(training_spec(emulator), sweeps=(), num_members=num_members, design="grid", seed=seed,
                   save_trajectories=False)
    result = run_ensemble(_with_values(spec, values), chunk_size=chunk_size)
    return np.column_stack([result.summaries[name] for name in emulator.output_names])


def _grid(emulator: Emulator, names, grid_points: int):
    low, high = emulator.input_box
    grids = []
    for name in names:
        k = emulator.input_names.index(name)
        if emulator.input_log[k]:
            grids.append(np.geomspace(low[k], high[k], grid_points))
        else:
            grids.append(np.linspace(low[k], high[k], grid_points))
    return grids


def _check(emulator: Emulator, observed: Mapping[str, float], fixed: Mapping[str, float] | None, grid_points: int):
    fixed = dict(fixed or {})
    if not observed:
        raise ValueError(f"give at least one observed output, e.g. {emulator.output_names[0]}=VALUE")
    for name, value in observed.items():
        if name not in emulator.output_names:
            raise ValueError(f"{name!r} is not an output of this emulator; it predicts {list(emulator.output_names)}")
        if not math.isfinite(float(value)):
            raise ValueError(f"observed {name} must be finite, got {value!r}")
    for name in fixed:
        if name not in emulator.input_names:
            raise ValueError(f"{name!r} is not an input of this emulator; it takes {list(emulator.input_names)}")
    names = tuple(n for n in emulator.input_names if n not in fixed)
    if not names:
        raise ValueError("every input is fixed: nothing left to infer")
    if isinstance(grid_points, bool) or not isinstance(grid_points, (int, np.integer)) or grid_points < 3:
        raise ValueError(f"grid_points must be an integer >= 3, got {grid_points!r}")
    if grid_points ** len(names) > MAX_GRID_POINTS:
        raise ValueError(f"{grid_points}^{len(names)} grid points exceed the cap of {MAX_GRID_POINTS}")
    return fixed, names


def _summarise(names, grids, log_like, seconds, evaluations) -> GridPosterior:
    shape = tuple(len(g) for g in grids)
    log_post = log_like.reshape(shape)
    log_post = log_post - np.max(log_post)
    mass = np.exp(log_post)
    mass /= mass.sum()
    means, sds, intervals, marginals = [], [], [], []
    for k, grid in enumerate(grids):
        marginal = mass.sum(axis=tuple(j for j in range(len(grids)) if j != k))
        mean = float(np.sum(marginal * grid))
        means.append(mean)
        sds.append(float(np.sqrt(np.sum(marginal * (grid - mean) ** 2))))
        cdf = np.cumsum(marginal)
        intervals.append((float(np.interp(0.025, cdf, grid)), float(np.interp(0.975, cdf, grid))))
        marginals.append(marginal)
    return GridPosterior(tuple(names), tuple(grids), np.log(np.maximum(mass, 1e-300)), np.asarray(means),
                         np.asarray(sds), np.asarray(intervals), tuple(marginals), seconds, evaluations)


def gaussian_log_likelihood(mean, covariance, observed) -> np.ndarray:
    """Multivariate normal log density (constant dropped) at many points.

    Args:
        mean: ``[G, O]`` predicted means.
        covariance: ``[G, O, O]`` (or ``[O, O]``) covariances, symmetric positive definite.
        observed: ``[O]`` the observation.

    Returns:
        ``[G]``: ``-0.5 r^T Sigma^-1 r - 0.5 log det Sigma`` with ``r = observed - mean``.
    """
    mean = np.asarray(mean, dtype=float)
    covariance = np.broadcast_to(np.asarray(covariance, dtype=float), mean.shape + mean.shape[-1:])
    factor = np.linalg.cholesky(covariance)
    residual = np.asarray(observed, dtype=float) - mean
    whitened = np.linalg.solve(factor, residual[..., None])[..., 0]
    log_det = 2 * np.sum(np.log(np.diagonal(factor, axis1=-2, axis2=-1)), axis=-1)
    return -0.5 * np.sum(whitened**2, axis=-1) - 0.5 * log_det


def synthetic_log_likelihood(replicas, observed, *, covariance: str = "full") -> np.ndarray:
    """Wood's (2010) synthetic likelihood from simulated replicas at each grid point.

    Args:
        replicas: ``[R, G, O]`` simulated summaries, R replicas at each of G points.
        observed: ``[O]``.
        covariance: ``"full"`` (the sample covariance, Wood's) or ``"diagonal"``.

    Returns:
        ``[G]`` log likelihood of the Gaussian with the replicas' mean and covariance.
    """
    replicas = np.asarray(replicas, dtype=float)
    count, _, size = replicas.shape
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
    if covariance == "full" and count < size + 2:
        raise ValueError(f"{count} replicas cannot estimate a {size} x {size} covariance; use at least {size + 2}")
    mean = replicas.mean(axis=0)
    residual = replicas - mean
    cov = np.einsum("rgi,rgj->gij", residual, residual) / (count - 1)
    if covariance == "diagonal":
        cov = cov * np.eye(size)
    # A summary constant over the replicas (e.g. at a box corner) gets a tiny variance, not 0.
    cov = cov + 1e-24 * np.eye(size)
    return gaussian_log_likelihood(mean, cov, observed)


def emulator_posterior(emulator: Emulator, observed: Mapping[str, float], *, fixed: Mapping[str, float] | None = None,
                       grid_points: int = 101, covariance: str = "full") -> GridPosterior:
    """Grid posterior over the emulator's inputs given observed summaries.

    Args:
        observed: output name -> observed value (any subset of the outputs).
        fixed: input name -> value for inputs held fixed (the rest are inferred).
        grid_points: points per inferred input (spacing: log for log-spaced sweeps).
        covariance: ``"full"`` (predicted sds with the emulator's ``correlation``) or
            ``"diagonal"`` (the sds alone: overconfident when summaries correlate).
    """
    started = time.perf_counter()
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
    fixed, names = _check(emulator, observed, fixed, grid_points)
    grids = _grid(emulator, names, grid_points)
    mesh = np.meshgrid(*grids, indexing="ij")
    points = np.empty((mesh[0].size, len(emulator.input_names)))
    for k, name in enumerate(emulator.input_names):
        points[:, k] = fixed[name] if name in fixed else mesh[names.index(name)].ravel()
    mean, sd = emulator.predict(points)
    columns = [emulator.output_names.index(n) for n in observed]
    correlation = np.asarray(emulator.correlation, dtype=float)[np.ix_(columns, columns)]
    if covariance == "diagonal":
        correlation = np.eye(len(columns))
    sd = sd[:, columns]
    cov = sd[:, :, None] * sd[:, None, :] * correlation
    log_like = gaussian_log_likelihood(mean[:, columns], cov, np.asarray([float(v) for v in observed.values()]))
    return _summarise(names, grids, log_like, time.perf_counter() - started, points.shape[0])


def simulator_posterior(emulator: Emulator, observed: Mapping[str, float], *, fixed: Mapping[str, float] | None = None,
                        grid_points: int = 11, replicas: int = 32, seed: int = 2,
                        chunk_size: int | None = None, covariance: str = "full") -> GridPosterior:
    """The same posterior with the simulator as forward model (synthetic likelihood).

    At each of ``grid_points^P'`` grid points, ``replicas`` fresh members (the training
    ensemble's spec, ``seed`` for the initial conditions) give the mean and the full sample
    covariance of the observed summaries; the likelihood is Gaussian with those (Wood 2010,
    "Statistical inference for noisy nonlinear ecological dynamic systems";
    :func:`synthetic_log_likelihood`). Costs ``grid_points^P' * replicas`` simulations, in
    one vmapped ``run_ensemble`` call.
    """
    started = time.perf_counter()
    fixed, names = _check(emulator, observed, fixed, grid_points)
    if isinstance(replicas, bool) or not isinstance(replicas, (int, np.integer)) or replicas < 4:
        raise ValueError(f"replicas must be an integer >= 4 (a sd from fewer is noise), got {replicas!r}")
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
    if covariance == "full" and replicas < len(observed) + 2:
        raise ValueError(f"{replicas} replicas cannot estimate the covariance of {len(observed)} observed "
                         f"summaries; use at least {len(observed) + 2}")
    grids = _grid(emulator, names, grid_points)
    size = grid_points ** len(names)
    sweeps = tuple(Sweep(name, values=tuple(float(v) for v in grid)) for name, grid in zip(names, grids))
    spec = replace(_with_values(training_spec(emulator), fixed), sweeps=sweeps, num_members=size * replicas,
                   design="grid", seed=seed, save_trajectories=False)
    result = run_ensemble(spec, chunk_size=chunk_size)
    columns = list(observed)
    values = np.column_stack([result.summaries[n] for n in columns])  # [size * replicas, O]
    # Member i runs grid point i mod size (grid design); rows are in itertools.product order.
    per_point = values.reshape(replicas, size, len(columns))
    log_like = synthetic_log_likelihood(per_point, np.asarray([float(v) for v in observed.values()]),
                                        covariance=covariance)
    return _summarise(names, grids, log_like, time.perf_counter() - started, size * replicas)


def compare_posteriors(emulated: GridPosterior, simulated: GridPosterior) -> dict:
    """Per inferred input: both means and sds, the mean difference in units of the simulator
    posterior's sd, whether the 95 % intervals overlap, and the speed-up."""
    out = {"inputs": {}, "speedup": simulated.seconds / max(emulated.seconds, 1e-12)}
    for k, name in enumerate(simulated.names):
        j = emulated.names.index(name)
        lo_a, hi_a = emulated.interval[j]
        lo_b, hi_b = simulated.interval[k]
        out["inputs"][name] = {
            "emulator_mean": float(emulated.mean[j]), "emulator_sd": float(emulated.sd[j]),
            "simulator_mean": float(simulated.mean[k]), "simulator_sd": float(simulated.sd[k]),
            "difference_in_sd": float(abs(emulated.mean[j] - simulated.mean[k]) / max(simulated.sd[k], 1e-300)),
            "intervals_overlap": bool(lo_a <= hi_b and lo_b <= hi_a),
            "emulator_interval": [float(lo_a), float(hi_a)],
            "simulator_interval": [float(lo_b), float(hi_b)],
        }
    out["emulator_seconds"] = emulated.seconds
    out["simulator_seconds"] = simulated.seconds
    return out
