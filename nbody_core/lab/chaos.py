"""Twin runs: a system beside a copy perturbed by ``delta``, and the fitted Lyapunov time.

The pair is one batch of two systems run by ``jax.vmap`` over the core's one integration
loop (:func:`nbody_core.integrate.simulate.integration_loop`, the same machinery ensembles use), so
both copies take exactly the same steps. The separation of the copies against time shows
chaos: in a chaotic system it grows exponentially, ``d(t) ~ d0 exp(t / t_L)``, until it
saturates at the size of the system; in a regular one (a Kepler orbit) it grows linearly
(the perturbed orbit has a slightly different period, so the phase drifts at a constant rate).
:func:`fit_lyapunov_time` tells the two apart (see :func:`growth_is_exponential`): a regular
orbit is reported as such, never with a Lyapunov time.

Pure functions over pytrees; no Panel.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nbody_core.physics.diagnostics import total_energy
from nbody_core.integrate.options import validate_run_options
from nbody_core.integrate.simulate import cast_run_inputs, integration_loop, make_clock, run_config, segments
from nbody_core.physics.state import ParticleState, PhysicsParams, resolve_params

__all__ = ["TwinRun", "LyapunovFit", "perturb", "twin_run", "phase_space_separation", "fit_lyapunov_time",
           "growth_is_exponential"]

#: Saturation: the fit stops where the separation first reaches this fraction of the
#: system's initial RMS size (positions about the centre of mass). Past it the two copies
#: are no longer "nearby" and the growth is no longer exponential.
DEFAULT_SATURATION_FRACTION = 0.1


class LyapunovFit(NamedTuple):
    """Least-squares fit ``log d(t) = log d0 + lambda t`` over ``[t_start, t_stop]``, and
    whether that exponential describes the growth at all.

    Attributes:
        exponent: ``lambda``, 1 / time units (the fitted slope; the largest Lyapunov exponent
            estimate only when ``regular`` is False).
        lyapunov_time: ``1 / lambda``, time units; ``inf`` when ``lambda <= 0`` or the orbit
            is regular (no exponential growth detected: a number would be meaningless).
        t_start, t_stop: the fitted window, time units.
        num_points: snapshots inside the window.
        regular: True when a power law ``d ~ t^p`` fits the growth better than an
            exponential (:func:`growth_is_exponential`): a regular orbit.
        power: ``p`` of that power-law fit (about 1 for a regular orbit's linear drift).
        residual_exponential, residual_power: mean squared residuals of ``log d`` of the two
            fits over the window (of the separation's running maximum).
    """

    exponent: float
    lyapunov_time: float
    t_start: float
    t_stop: float
    num_points: int
    regular: bool = False
    power: float = float("nan")
    residual_exponential: float = float("nan")
    residual_power: float = float("nan")


class TwinRun(NamedTuple):
    """A system and its perturbed copy, saved at the same snapshots.

    Attributes:
        time: ``[S]`` snapshot times, time units.
        position: ``[2, S, n, 3]`` positions of (original, copy), length units.
        velocity: ``[2, S, n, 3]`` velocities, length / time units.
        energy: ``[2, S]`` total energies, energy units.
        separation: ``[S]`` phase-space separation of the copies (:func:`phase_space_separation`).
        delta: the initial perturbation, length units (or velocity units for a velocity coordinate).
        fit: the :class:`LyapunovFit` of ``separation``.
    """

    time: np.ndarray
    position: np.ndarray
    velocity: np.ndarray
    energy: np.ndarray
    separation: np.ndarray
    delta: float
    fit: LyapunovFit


def perturb(state: ParticleState, delta: float, *, body: int = 0, coordinate: int = 0,
            velocity: bool = False) -> ParticleState:
    """A copy of ``state`` with ``delta`` added to one coordinate of one body.

    Args:
        state: the original system, ``[n, 3]`` positions and velocities.
        delta: the perturbation, length units (velocity units with ``velocity``).
        body: index of the perturbed body, ``0 <= body < n``.
        coordinate: 0, 1 or 2 for x, y, z.
        velocity: perturb the velocity instead of the position.

    Raises:
        ValueError: for a body or coordinate out of range, or a non-finite delta.
    """
    n = state.num_bodies
    if not 0 <= int(body) < n:
        raise ValueError(f"body must be in [0, {n - 1}], got {body}")
    if int(coordinate) not in (0, 1, 2):
        raise ValueError(f"coordinate must be 0, 1 or 2 (x, y, z), got {coordinate}")
    if not np.isfinite(delta):
        raise ValueError(f"delta must be finite, got {delta}")
    if velocity:
        return state._replace(velocity=state.velocity.at[body, coordinate].add(delta))
    return state._replace(position=state.position.at[body, coordinate].add(delta))


def phase_space_separation(position, velocity):
    """Euclidean distance between the two copies in phase space, over all bodies.

    Args:
        position: ``[2, S, n, 3]``, length units.
        velocity: ``[2, S, n, 3]``, length / time units (N-body units make the two comparable).

    Returns:
        ``[S]`` ``sqrt(sum |dx|^2 + |dv|^2)``.
    """
    dx = position[0] - position[1]
    dv = velocity[0] - velocity[1]
    return jnp.sqrt(jnp.sum(dx * dx, axis=(-2, -1)) + jnp.sum(dv * dv, axis=(-2, -1)))


def _observe(particles, params, potential):
    return particles.position, particles.velocity, total_energy(particles, params, potential)


def _pair_loop(start, clock, params, *, config, num_saves, save_every, remainder, first):
    """One segment of the pair's loop (vmapped): ``(carry, saved)``, the carry going on to the
    next segment (``first``: ``start`` is the stacked pair of states)."""
    def one(state):
        return integration_loop(state, clock, params, config=config, num_saves=num_saves,
                                save_every=save_every, remainder=remainder, first=first, observe=_observe)

    return jax.vmap(one)(start)


_pair_loop_jit = jax.jit(_pair_loop, static_argnames=("config", "num_saves", "save_every", "remainder", "first"))


def growth_is_exponential(time, separation, *, t0: float) -> tuple[bool, float, float, float]:
    """Does a separation curve grow exponentially, or as a power of time?

    Criterion: over the given snapshots, fit ``log D`` by least squares both against ``t``
    (exponential, ``D ~ exp(lambda t)``) and against ``log(t - t0)`` (power law,
    ``D ~ (t - t0)^p``), where ``D`` is the running maximum of the separation (a regular
    orbit's separation swings with the orbital phase, from pericentre to apocentre; its
    envelope grows steadily). Both models have two parameters, so their mean squared
    residuals compare directly: growth is exponential when the exponential's is smaller.
    Measured on the Chaos tab's systems (delta 1e-6 to 1e-12): Kepler e = 0, 0.5, 0.9 and the
    figure-eight fit the power law 3x to 400x better (p = 1.01-1.55); the Pythagorean
    problem and a 32-body Plummer sphere fit the exponential 1.5x to 11x better.

    Args:
        time: ``[S]`` times, time units, all later than ``t0``.
        separation: ``[S]`` positive separations.
        t0: when the perturbation was made (the power law's origin), time units.

    Returns:
        ``(exponential, p, residual_exponential, residual_power)``.
    """
    time = np.asarray(time, dtype=float)
    envelope = np.log(np.maximum.accumulate(np.asarray(separation, dtype=float)))
    exp_fit, exp_rss, *_ = np.polyfit(time, envelope, 1, full=True)
    pow_fit, pow_rss, *_ = np.polyfit(np.log(time - t0), envelope, 1, full=True)
    # polyfit returns an empty residual array when the fit is exact (two points, or a flat curve).
    exp_ms = float(exp_rss[0]) / time.size if exp_rss.size else 0.0
    pow_ms = float(pow_rss[0]) / time.size if pow_rss.size else 0.0
    return exp_ms < pow_ms, float(pow_fit[0]), exp_ms, pow_ms


def fit_lyapunov_time(time, separation, *, saturation: float, t_min: float = 0.0) -> LyapunovFit:
    """Fit the exponential-growth window of a separation curve, or report a regular orbit.

    The window runs from the first snapshot at or after ``t_min`` to the last one before the
    separation first reaches ``saturation``; ``log d`` is fitted by least squares against
    ``t`` over it (every snapshot weighted alike). :func:`growth_is_exponential` then decides
    whether that exponential describes the growth; when it does not (a power law fits
    better), the fit is marked ``regular`` and its Lyapunov time is ``inf``.

    Args:
        time: ``[S]`` times, time units.
        separation: ``[S]`` separations (positive).
        saturation: separation at which growth is no longer exponential (same units).
        t_min: start of the window (skip an initial transient), time units.

    Raises:
        ValueError: when fewer than 3 finite snapshots lie in the window.
    """
    time = np.asarray(time, dtype=float)
    separation = np.asarray(separation, dtype=float)
    start = int(np.searchsorted(time, t_min))
    saturated = np.nonzero(~(separation[start:] < saturation))[0]  # NaN counts as saturated
    stop = start + (int(saturated[0]) if saturated.size else separation.size - start)
    t, d = time[start:stop], separation[start:stop]
    keep = d > 0
    t, d = t[keep], d[keep]
    if t.size < 3:
        raise ValueError(
            f"only {t.size} snapshots before the separation saturates at {saturation:g}: "
            "save more often or use a smaller delta"
        )
    exponent, _ = np.polyfit(t, np.log(d), 1)
    later = t > time[0]  # the power law's log(t - t0) needs t > t0
    if later.sum() >= 3:
        exponential, power, res_exp, res_pow = growth_is_exponential(t[later], d[later], t0=float(time[0]))
    else:
        exponential, power, res_exp, res_pow = True, float("nan"), float("nan"), float("nan")
    regular = not (exponential and exponent > 0)
    lyapunov_time = float("inf") if regular else float(1.0 / exponent)
    return LyapunovFit(float(exponent), lyapunov_time, float(t[0]), float(t[-1]), int(t.size),
                       bool(regular), power, res_exp, res_pow)


def twin_run(
    state: ParticleState,
    *,
    delta: float = 1e-9,
    dt: float,
    num_steps: int,
    save_every: int = 1,
    params: PhysicsParams | None = None,
    integrator: str = "yoshida4",
    forces: str = "tiled",
    body: int = 0,
    coordinate: int = 0,
    velocity: bool = False,
    saturation_fraction: float = DEFAULT_SATURATION_FRACTION,
    t_min: float = 0.0,
    chunks: int = 1,
    on_chunk: Callable[[int], None] | None = None,
) -> TwinRun:
    """Run ``state`` beside a copy perturbed by ``delta`` and fit the Lyapunov time.

    The pair is stacked on a leading axis and ``jax.vmap`` runs the core's one integration
    loop over it (one compilation, both copies in one batch).

    Args:
        state: ``[n, 3]`` initial system.
        delta: perturbation of one coordinate (:func:`perturb`); keep it well above the
            float64 resolution of the coordinate (~1e-16 of its size).
        dt, num_steps, save_every: fixed step (time units), steps, steps between saves.
        params: physics parameters (softening etc.), defaults from the state's units.
        integrator, forces: as for :func:`nbody_core.integrate.simulate.simulate`.
        body, coordinate, velocity: which coordinate is perturbed.
        saturation_fraction: the fit window ends where the separation reaches this fraction
            of the initial RMS size about the centre of mass.
        t_min: start of the fit window, time units.
        chunks: compiled calls the run is cut into (equal ones share a compilation; the
            loop's carry goes from one to the next, so the result equals one call).
        on_chunk: ``on_chunk(steps_done)`` after each call; an exception raised there stops
            the run (a caller's stop check between bounded calls).

    Returns:
        A :class:`TwinRun` (NumPy arrays).
    """
    params = resolve_params(state, params)
    validate_run_options(dt=dt, num_steps=num_steps, save_every=save_every, params=params)
    config = run_config(integrator, forces)
    copy = perturb(state, delta, body=body, coordinate=coordinate, velocity=velocity)
    pair = jax.tree.map(lambda a, b: jnp.stack([jnp.asarray(a), jnp.asarray(b)]), state, copy)
    dtype = state.position.dtype
    dt_arr, params = cast_run_inputs(state, dt, params)
    clock = make_clock(jnp.asarray(state.time, dtype), dt_arr, num_steps)
    num_saves, remainder = divmod(num_steps, save_every)
    carry, pieces, done = pair, [], 0
    for index, (blocks, extra) in enumerate(segments(num_saves, remainder, chunks)):
        carry, saved = _pair_loop_jit(
            # A NumPy scalar where the field says Array: jit takes it as an argument like an Array.
            carry, clock._replace(first_step=np.asarray(done, clock.total.dtype)),  # type: ignore[arg-type]
            params, config=config,
            num_saves=blocks, save_every=save_every, remainder=extra, first=index == 0,
        )
        pieces.append(saved)
        done += blocks * save_every + extra
        if on_chunk is not None:
            jax.block_until_ready(carry)
            on_chunk(done)
    position, velocity_, energy = (np.concatenate([np.asarray(piece[k]) for piece in pieces], axis=1)
                                   for k in range(3))
    steps = np.arange(num_saves + 1) * save_every
    if remainder:
        steps = np.append(steps, num_steps)
    time = float(state.time) + steps * float(dt)
    separation = np.asarray(phase_space_separation(position, velocity_))
    centred = np.asarray(state.position) - np.average(
        np.asarray(state.position), axis=0, weights=np.asarray(state.mass)
    )
    size = float(np.sqrt(np.mean(np.sum(centred**2, axis=-1))))
    fit = fit_lyapunov_time(time, separation, saturation=saturation_fraction * size, t_min=t_min)
    return TwinRun(time, position, velocity_, energy, separation, float(delta), fit)
