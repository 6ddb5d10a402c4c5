"""Bayesian inference of physical parameters through the differentiable simulator.

An :class:`InferenceProblem` couples a few-body system with noisy observed positions made by
:func:`nbody_core.integrate.simulate` from a known truth and seed. Its ``logdensity_fn(theta)`` is a
Gaussian likelihood through the jitted simulation plus independent Normal priors on the
unconstrained parameters ``theta`` (log masses, optionally log G and one initial velocity
component), so ``jax.grad`` of it is exact. Sampling is in :mod:`nbody_core.infer.hmc`, the ArviZ
export and chain diagnostics in :mod:`nbody_core.infer.posterior` (re-exported here), the gradient
checks (autodiff vs central finite differences) in :mod:`nbody_core.lab.gradient_checks`.

Priors (stated, per problem, see :data:`PROBLEMS`):
    * ``log m_i ~ Normal(log m_nominal_i, 0.5)`` — the nominal masses are a deliberately
      imperfect catalogue guess (a factor e**0.5 ~ 1.65 is one prior standard deviation);
    * ``log G ~ Normal(0, 0.5)`` (N-body units, G = 1 nominal);
    * ``vx_k ~ Normal(vx_nominal, 0.1)`` for the initial x velocity of body ``k``.
Likelihood: each observed coordinate is ``Normal(simulated, noise)``, independent.
"""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

import nbody_core.defaults as defaults
from nbody_core.systems.initial_conditions import figure_eight, kepler, plummer
from .posterior import (
    LP_GAP_THRESHOLD as LP_GAP_THRESHOLD,
    R_HAT_THRESHOLD as R_HAT_THRESHOLD,
    mode_check as mode_check,
    summary_diagnostics as summary_diagnostics,
    to_inference_data as to_inference_data,
)
from nbody_core.integrate.simulate import simulate

from .problem import InferenceProblem as InferenceProblem
from nbody_core.physics.state import ParticleState, PhysicsParams, make_state
from nbody_core.registry import Registry

__all__ = [
    "InferenceProblem",
    "ProblemSpec",
    "PROBLEMS",
    "PARAMETER_SETS",
    "make_problem",
    "read_observations_csv",
    "scaling_problem",
    "initial_positions",
    "START_METHODS",
    "to_inference_data",
    "summary_diagnostics",
    "mode_check",
    "R_HAT_THRESHOLD",
    "LP_GAP_THRESHOLD",
    "MASS_PRIOR_STD",
    "LOG_G_PRIOR_STD",
    "VELOCITY_PRIOR_STD",
]

MASS_PRIOR_STD = 0.5
LOG_G_PRIOR_STD = 0.5
VELOCITY_PRIOR_STD = 0.1
_LOG_2PI = math.log(2.0 * math.pi)

# Which parameters can be inferred: the masses always, plus G and/or one velocity component.
PARAMETER_SETS: Registry[tuple[bool, bool]] = Registry("parameter set", {
    "masses": (False, False),
    "masses+G": (True, False),
    "masses+velocity": (False, True),
    "masses+G+velocity": (True, True),
})


@dataclasses.dataclass(frozen=True)
class ProblemSpec:
    """A named few-body system to infer from: how to build its truth and its observing run.

    Attributes:
        name: registry name.
        description: one line for users.
        build: ``() -> (ParticleState with the true masses, nominal masses [n])``.
        dt: simulation step, time units.
        t_end: time of the last observation, time units.
        default_noise: observation noise (length units) that suits the system.
        observed_axes: coordinates observed (planar systems: x and y).
        velocity_body: body whose initial x velocity is the optional velocity parameter.
    """

    name: str
    description: str
    build: Callable[[], tuple[ParticleState, np.ndarray]]
    dt: float
    t_end: float
    default_noise: float
    observed_axes: tuple[int, ...] = (0, 1)
    velocity_body: int = 0


def _perturbed_figure_eight():
    base = figure_eight()
    true_mass = np.array([1.1, 0.9, 1.0])
    return base._replace(mass=jnp.asarray(true_mass)), np.ones(3)


def _hierarchical_triple():
    # Inner binary (1.0 + 0.5, a = 0.5, e = 0.1) and an outer body of 0.3 on a circular orbit
    # of radius 3 about the binary's centre of mass.
    inner = kepler(1.0, 0.5, a=0.5, e=0.1)
    m_in, m_out, r_out = 1.5, 0.3, 3.0
    v_out = math.sqrt((m_in + m_out) / r_out)
    position = np.vstack([np.asarray(inner.position) - [m_out / (m_in + m_out) * r_out, 0, 0],
                          [[m_in / (m_in + m_out) * r_out, 0, 0]]])
    velocity = np.vstack([np.asarray(inner.velocity) - [0, m_out / (m_in + m_out) * v_out, 0],
                          [[0, m_in / (m_in + m_out) * v_out, 0]]])
    state = make_state(position, velocity, [1.0, 0.5, 0.3])
    return state, np.array([0.8, 0.8, 0.5])


def _star_two_planets():
    # A star with two heavy planets (Jupiter-to-brown-dwarf masses) on circular orbits at
    # a = 1 and 1.6; the planet-planet pull and the star's reflex motion carry the masses.
    masses = np.array([1.0, 0.012, 0.006])
    radii = (1.0, 1.6)
    position = [[0, 0, 0]] + [[r, 0, 0] for r in radii]
    velocity = [[0, 0, 0]] + [[0, math.sqrt((masses[0] + m) / r), 0] for m, r in zip(masses[1:], radii)]
    state = make_state(position, velocity, masses)
    com_v = np.sum(masses[:, None] * np.asarray(state.velocity), 0) / masses.sum()
    com_x = np.sum(masses[:, None] * np.asarray(state.position), 0) / masses.sum()
    state = state._replace(position=state.position - com_x, velocity=state.velocity - com_v)
    return state, np.array([1.0, 0.01, 0.01])


PROBLEMS: Registry[ProblemSpec] = Registry("problem", {
    spec.name: spec
    for spec in (
        ProblemSpec(
            "triple", "perturbed figure-eight: three bodies of masses 1.1, 0.9, 1.0 (nominal 1, 1, 1)",
            _perturbed_figure_eight, dt=0.02, t_end=2.0, default_noise=0.01, velocity_body=2,
        ),
        ProblemSpec(
            "hierarchical", "hierarchical triple: binary 1.0 + 0.5 (a = 0.5) with a 0.3 body at r = 3",
            _hierarchical_triple, dt=0.02, t_end=4.0, default_noise=0.01, velocity_body=2,
        ),
        ProblemSpec(
            "star_planets", "a star (1.0) with two planets (0.012 at a = 1, 0.006 at a = 1.6)",
            _star_two_planets, dt=0.05, t_end=6.0, default_noise=0.001, velocity_body=1,
        ),
    )
}, record_type=ProblemSpec)


class _Static(NamedTuple):
    """Static configuration of a log density: changing any of it recompiles."""

    mass_index: tuple[int, ...]
    infer_G: bool
    velocity_body: int | None
    num_steps: int
    save_every: int
    observed_axes: tuple[int, ...]


class _Data(NamedTuple):
    """Traced data of a log density: new values of the same shapes never recompile."""

    position: Array
    velocity: Array
    mass: Array
    G: Array
    dt: Array
    observations: Array
    noise: Array
    prior_mean: Array
    prior_std: Array


def _physical(static: _Static, theta, data: _Data):
    k = len(static.mass_index)
    mass = data.mass.at[jnp.asarray(static.mass_index)].set(jnp.exp(theta[:k]))
    G = jnp.exp(theta[k]) if static.infer_G else data.G
    velocity = data.velocity
    if static.velocity_body is not None:
        velocity = velocity.at[static.velocity_body, 0].set(theta[-1])
    return mass, G, velocity


def _predict(static: _Static, theta, data: _Data):
    mass, G, velocity = _physical(static, theta, data)
    state = ParticleState(data.position, velocity, mass, jnp.zeros((), data.position.dtype))
    trajectory = simulate(
        state, dt=data.dt, num_steps=static.num_steps, save_every=static.save_every,
        params=PhysicsParams(G=G),
    )
    return trajectory.position[1:][..., jnp.asarray(static.observed_axes)]


@lru_cache(maxsize=None)
def _kernels(static: _Static):
    """Module-level (cached) functions of ``(data, theta)``: one compile per static config."""

    def predict(data, theta):
        return _predict(static, theta, data)

    def log_likelihood(data, theta):
        residual = (predict(data, theta) - data.observations) / data.noise
        return -0.5 * jnp.sum(residual**2) - residual.size * (jnp.log(data.noise) + 0.5 * _LOG_2PI)

    def log_prior(data, theta):
        z = (theta - data.prior_mean) / data.prior_std
        return jnp.sum(-0.5 * z**2 - jnp.log(data.prior_std) - 0.5 * _LOG_2PI)

    def logdensity(data, theta):
        return log_prior(data, theta) + log_likelihood(data, theta)

    return predict, log_likelihood, log_prior, logdensity


def _validate_noise_and_obs(noise, num_obs):
    if isinstance(num_obs, bool) or not isinstance(num_obs, (int, np.integer)) or num_obs < 1:
        raise ValueError(f"num_obs must be a positive integer, got {num_obs!r}")
    try:
        noise = float(noise)
    except (TypeError, ValueError):
        raise ValueError(f"noise must be a positive number, got {noise!r}") from None
    if not (noise > 0 and math.isfinite(noise)):
        raise ValueError(f"noise must be a positive finite number (length units), got {noise!r}")
    return noise, int(num_obs)


def _build(
    name, description, state, nominal_mass, *, mass_index, infer_G, velocity_body, dt, t_end,
    num_obs, noise, key, observed_axes,
) -> InferenceProblem:
    noise, num_obs = _validate_noise_and_obs(noise, num_obs)
    save_every = max(1, math.ceil(t_end / dt / num_obs - 1e-9))
    num_steps = save_every * num_obs
    dt = t_end / num_steps  # observations land on t_end exactly
    mass = np.asarray(state.mass)
    names = [f"log_m{i}" for i in mass_index]
    truth = [math.log(mass[i]) for i in mass_index]
    prior_mean = [math.log(nominal_mass[i]) for i in mass_index]
    prior_std = [MASS_PRIOR_STD] * len(mass_index)
    if infer_G:
        names.append("log_G")
        truth.append(0.0)
        prior_mean.append(0.0)
        prior_std.append(LOG_G_PRIOR_STD)
    if velocity_body is not None:
        names.append(f"vx{velocity_body}")
        vx = float(state.velocity[velocity_body, 0])
        truth.append(vx)
        prior_mean.append(vx + 0.05)  # a slightly-off catalogue value, 0.5 prior sd away
        prior_std.append(VELOCITY_PRIOR_STD)
    static = _Static(tuple(mass_index), bool(infer_G), velocity_body, num_steps, save_every, tuple(observed_axes))
    predict, log_likelihood, log_prior, logdensity = _kernels(static)
    f64 = state.position.dtype
    data = _Data(
        state.position, state.velocity, jnp.asarray(mass, f64), jnp.asarray(1.0, f64), jnp.asarray(dt, f64),
        jnp.zeros((num_obs, mass.size, len(observed_axes)), f64), jnp.asarray(noise, f64),
        jnp.asarray(prior_mean, f64), jnp.asarray(prior_std, f64),
    )
    truth = np.asarray(truth)
    clean = predict(data, jnp.asarray(truth))
    if not np.all(np.isfinite(np.asarray(clean))):
        raise ValueError(f"the {name!r} simulation is not finite at the true parameters")
    observations = clean + noise * jax.random.normal(key, clean.shape, f64)
    data = data._replace(observations=observations)
    P = jax.tree_util.Partial
    return InferenceProblem(
        name=name, description=description, parameter_names=tuple(names), truth=truth,
        prior_mean=np.asarray(prior_mean), prior_std=np.asarray(prior_std),
        observed_times=dt * save_every * np.arange(1, num_obs + 1), observations=np.asarray(observations),
        noise=noise, initial_state=state, logdensity_fn=P(logdensity, data),
        log_likelihood_fn=P(log_likelihood, data), log_prior_fn=P(log_prior, data), predict_fn=P(predict, data),
    )


def make_problem(
    name: str = "triple", *, params: str = "masses", noise: float | None = None, num_obs: int = 20, key=None,
    t_end: float | None = None, dt: float | None = None, observations=None,
) -> InferenceProblem:
    """Build a named inference problem with data simulated from its truth (or your own data).

    Args:
        name: a key of :data:`PROBLEMS` (``"triple"``, ``"hierarchical"``, ``"star_planets"``).
        params: a key of :data:`PARAMETER_SETS`: ``"masses"`` (log mass of every body),
            ``"masses+G"`` (plus log G; G and the masses are degenerate for positions
            alone — only ``G m_i`` is constrained and only the prior bounds the ridge
            ``log G + log m_i = const``, so a diagonal-metric HMC mixes slowly along it and
            R-hat flags it: a lesson, not a bug),
            ``"masses+velocity"`` (plus the initial x velocity of one body) or all three.
        noise: observation standard deviation, length units (default: the problem's).
        num_obs: number of observation times, equally spaced in ``(0, t_end]``; every body's
            observed coordinates are seen at each.
        key: PRNG key of the observation noise (default ``jax.random.key(0)``).
        t_end: time of the last observation (default: the problem's), time units.
        dt: largest simulation step (default: the problem's); the step used divides the
            interval between observations evenly.
        observations: your own data instead of simulated ones: ``(times [K], positions [K, n,
            a])`` as :func:`read_observations_csv` returns; the times must be ``k * t_1``
            (``k = 1..K``) and fix ``num_obs`` and ``t_end`` (``truth`` then only records the
            problem's nominal system).

    Raises:
        ValueError: for an unknown problem or parameter set, or a bad noise / count.
    """
    spec = PROBLEMS.get(name)
    infer_G, infer_velocity = PARAMETER_SETS.get(params)
    for label, value in (("t_end", t_end), ("dt", dt)):
        if value is not None and not (isinstance(value, (int, float)) and 0 < value < math.inf):
            raise ValueError(f"{label} must be a positive finite number, got {value!r}")
    state, nominal = spec.build()
    if observations is not None:
        times, values = (np.asarray(a, dtype=np.float64) for a in observations)
        expected = (times.size, int(state.mass.shape[0]), len(spec.observed_axes))
        if times.ndim != 1 or values.shape != expected:
            raise ValueError(f"observations must be times [K] and positions {list(expected)}, got "
                             f"{list(times.shape)} and {list(values.shape)}")
        num_obs, t_end = times.size, float(times[-1])
        if not np.allclose(times, t_end * np.arange(1, num_obs + 1) / num_obs, rtol=1e-9, atol=0):
            raise ValueError("observation times must be equally spaced, t_k = k * t_1 for k = 1..K")
    problem = _build(
        spec.name, spec.description, state, nominal, mass_index=tuple(range(state.mass.shape[0])),
        infer_G=infer_G, velocity_body=spec.velocity_body if infer_velocity else None,
        dt=spec.dt if dt is None else dt, t_end=spec.t_end if t_end is None else t_end, num_obs=num_obs,
        noise=spec.default_noise if noise is None else noise,
        key=jax.random.key(0) if key is None else key, observed_axes=spec.observed_axes,
    )
    if observations is None:
        return problem
    data = problem.logdensity_fn.args[0]._replace(observations=jnp.asarray(values, problem.observations.dtype))
    P = jax.tree_util.Partial
    return dataclasses.replace(
        problem, observations=values, observed_times=times,
        **{name: P(getattr(problem, name).func, data)
           for name in ("logdensity_fn", "log_likelihood_fn", "log_prior_fn", "predict_fn")},
    )


def read_observations_csv(path, *, num_bodies: int, axes: Sequence[int] = (0, 1)):
    """Read observed positions from a CSV with header ``t,body,x,y,z`` (one row per body per
    time; ``body`` is the 0-based index; only the columns of ``axes`` are used, the others may
    be empty). Returns ``(times [K], positions [K, num_bodies, len(axes)])``.

    Raises:
        ValueError: naming the row, for a missing column, a non-number, a body out of range, or
            a time that does not list every body exactly once.
    """
    import csv

    names = ("x", "y", "z")
    rows: dict[float, dict[int, list[float]]] = {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"t", "body"} | {names[a] for a in axes}
        if reader.fieldnames is None or not missing <= {f.strip() for f in reader.fieldnames}:
            raise ValueError(f"observations CSV needs the columns t, body, {', '.join(names[a] for a in axes)}")
        for line, row in enumerate(reader, start=2):
            row = {k.strip(): v for k, v in row.items() if k is not None}
            try:
                t, body = float(row["t"]), int(row["body"])
                values = [float(row[names[a]]) for a in axes]
            except (TypeError, ValueError):
                raise ValueError(f"observations CSV line {line}: not a number") from None
            if not (0 <= body < num_bodies) or not all(map(math.isfinite, [t, *values])):
                raise ValueError(f"observations CSV line {line}: body must be in 0..{num_bodies - 1} and values finite")
            if body in rows.setdefault(t, {}):
                raise ValueError(f"observations CSV line {line}: body {body} twice at t = {t}")
            rows[t][body] = values
    if not rows:
        raise ValueError("observations CSV has no rows")
    times = np.array(sorted(rows))
    for t in times:
        if len(rows[t]) != num_bodies:
            raise ValueError(f"observations CSV: t = {t} lists {len(rows[t])} of {num_bodies} bodies")
    return times, np.array([[rows[t][b] for b in range(num_bodies)] for t in times])


def scaling_problem(
    num_parameters: int, *, num_bodies: int = 128, num_steps: int = 20, dt: float = 0.005,
    num_obs: int = 4, noise: float = 0.01, key=None,
) -> InferenceProblem:
    """A Plummer cluster whose first ``num_parameters`` log masses are inferred.

    The simulation (``num_bodies``, ``num_steps``) stays the same whatever ``d`` is, so the
    cost of one log density is fixed and the gradient's cost can be compared across ``d``.
    """
    if isinstance(num_parameters, bool) or not isinstance(num_parameters, (int, np.integer)) or not 1 <= num_parameters <= num_bodies:
        raise ValueError(f"num_parameters must be an integer in [1, num_bodies={num_bodies}], got {num_parameters!r}")
    state = plummer(jax.random.key(7), num_bodies)
    nominal = np.asarray(state.mass)
    # Truth: masses scattered 20 % about the nominal equal masses (reproducible).
    factors = np.exp(0.2 * np.asarray(jax.random.normal(jax.random.key(8), (num_bodies,))))
    state = state._replace(mass=state.mass * factors)
    return _build(
        "cluster", f"Plummer cluster of {num_bodies} bodies, {num_parameters} masses inferred",
        state, nominal, mass_index=tuple(range(int(num_parameters))), infer_G=False, velocity_body=None,
        dt=dt, t_end=dt * num_steps, num_obs=num_obs, noise=noise,
        key=jax.random.key(0) if key is None else key, observed_axes=(0, 1, 2),
    )


#: How :func:`initial_positions` picks chain starts: ``"tempered"``
#: (:func:`nbody_core.infer.starts.tempered_starts`: time-window tempered multi-start
#: optimisation; the default, :data:`nbody_core.defaults.START_METHOD`) or ``"prior"`` (best of a
#: few prior draws per chain).
START_METHODS = ("tempered", "prior")
#: Prior draws per chain of ``method="prior"`` when ``max_tries`` is not given.
PRIOR_TRIES = 16


def initial_positions(
    problem: InferenceProblem, key, num_chains: int, *, spread: float | None = None, max_tries: int | None = None,
    method: str = defaults.START_METHOD,
) -> Array:
    """Chain starting points ``[num_chains, d]``: by default at the optima of a tempered fit.

    ``method="tempered"`` (the default, as in ``nbody infer``, the Inference tab and SBC) starts
    the chains at the best optima of a time-window tempered multi-start fit
    (:func:`nbody_core.infer.starts.tempered_starts`), each jittered by a local posterior sd: on
    the triple-system masses observed over t in (0, 2], prior-drawn starts left 6 of 16
    simulated datasets' chains stuck, 4 in wrong modes (issue 12). Chains still start at
    independent points, and every optimum within ``START_LP_GAP`` nats of the best gets chains,
    so R-hat and :func:`mode_check` still see comparable modes. It costs a multi-start fit
    (about 25 s on 2 CPU cores for the triple, mostly compiling; the compiled fit is reused).

    ``method="prior"`` draws each chain's start from the prior (the best of ``max_tries``
    draws): wider than the posterior by construction, which is what split R-hat needs to detect
    chains that have not mixed (Gelman & Rubin 1992; Vehtari et al. 2021), but a chaotic orbit's
    likelihood has many modes and prior starts land chains in wrong ones (above). It was the
    default before this release (CHANGELOG.md). Starting all chains near the prior mean
    (``spread=0.1``) left 7 of 28 simulated datasets stuck in a wrong mode (issue 12).

    Args:
        problem: the posterior.
        key: PRNG key.
        num_chains: number of chains.
        spread: ``method="prior"`` only: None (default) draws from the prior; a number instead
            jitters the prior mean by ``spread`` prior standard deviations (not overdispersed:
            for experiments only).
        method: ``"tempered"`` (default) or ``"prior"``; see :data:`START_METHODS`.
        max_tries: ``method="prior"`` only: prior draws per chain (default
            :data:`PRIOR_TRIES`); the one with the highest log density is kept. A random
            multi-start: every chain starts at its own independent prior draws, but not in a
            region where the simulation blows up or the likelihood is hopeless (pure prior
            draws there left NUTS at its maximum tree depth for minutes).

    Raises:
        ValueError: for a bad ``num_chains`` or ``method``, ``spread`` or ``max_tries`` given with
            ``method="tempered"``, or no finite draw among ``max_tries`` for a chain.
    """
    if isinstance(num_chains, bool) or not isinstance(num_chains, (int, np.integer)) or num_chains < 1:
        raise ValueError(f"num_chains must be a positive integer, got {num_chains!r}")
    if method not in START_METHODS:
        raise ValueError(f"method must be one of {START_METHODS}, got {method!r}")
    if method == "tempered":
        if spread is not None or max_tries is not None:
            raise ValueError("spread and max_tries apply to method='prior'; the tempered starts (the default "
                             "method) take neither")
        from .starts import tempered_starts

        return tempered_starts(problem, key, int(num_chains))
    max_tries = PRIOR_TRIES if max_tries is None else max_tries
    mean, std = jnp.asarray(problem.prior_mean), jnp.asarray(problem.prior_std)
    if spread is not None:
        noise = jax.random.normal(key, (int(num_chains), problem.num_parameters))
        return mean + spread * std * noise
    candidates = mean + std * jax.random.normal(key, (int(max_tries), int(num_chains), problem.num_parameters))
    values = np.asarray(_logdensity_batch(problem.logdensity_fn, candidates.reshape(-1, problem.num_parameters)))
    finite = np.isfinite(values.reshape(int(max_tries), int(num_chains)))
    if not finite.any(axis=0).all():
        raise ValueError(f"no prior draw with a finite log density in {max_tries} tries for some chain")
    best = np.argmax(np.where(finite, values.reshape(int(max_tries), int(num_chains)), -np.inf), axis=0)
    return candidates[jnp.asarray(best), jnp.arange(int(num_chains))]


@jax.jit
def _logdensity_batch(fn, x):
    return jax.vmap(fn)(x)
