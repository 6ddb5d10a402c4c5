"""Adaptive high-accuracy integration for close encounters: Dormand-Prince 8(7) with
compensated summation, in one jitted ``lax.while_loop``.

Fixed-step integrators fail on the Pythagorean problem, whose close encounters (down to
r ~ 4e-4 at t ~ 15.83) shrink the natural time step by seven orders of magnitude. The
8th-order Dormand-Prince pair (Prince & Dormand 1981, the tableau diffrax ships as
``diffrax.Dopri8``) follows them with an error-per-step controller. Plain Runge-Kutta
updates ``y += h * sum(b_i k_i)`` lose the low bits of every increment: near the closest
encounter one rounding of a position of size ~1 perturbs the pair energy by ~1e-9 of the
total, so diffrax's ``diffeqsolve`` stalls at a relative energy error of ~2e-9 however
small ``rtol`` is. Here position, velocity and time are carried with Kahan compensated
summation (as IAS15 does, Rein & Spiegel 2015), which removes that floor.
"""

from __future__ import annotations

import enum
from functools import partial
from typing import Callable, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from nbody_core.physics.diagnostics import total_energy
from nbody_core.physics.forces import acceleration_function
from .simulate import Trajectory, conserved_quantities, validate_run_options
from nbody_core.physics.state import ParticleState, PhysicsParams, resolve_params

__all__ = ["simulate_adaptive", "AdaptiveIntegrator", "ADAPTIVE_INTEGRATORS", "RESULTS"]


class AdaptiveIntegrator(NamedTuple):
    """Registry entry of an adaptive integrator (run by :func:`simulate_adaptive`).

    Attributes:
        name: registry key (``--integrator`` / ``integrator=`` value).
        description: one line for menus and ``--help``.
        color: plot colour, from the colour-blind-safe Okabe-Ito palette.
    """

    name: str
    description: str
    color: str


ADAPTIVE_INTEGRATORS: dict[str, AdaptiveIntegrator] = {
    "dopri8": AdaptiveIntegrator(
        "dopri8", "Dormand-Prince 8(7), adaptive steps, compensated summation (close encounters)", "#CC79A7"
    ),
    "ias15": AdaptiveIntegrator(
        "ias15", "IAS15, 15th-order Gauss-Radau (Rein & Spiegel 2015), adaptive; nbody_core.integrate.ias15.simulate_ias15",
        "#56B4E9",
    ),
}


class RESULTS(str, enum.Enum):
    """How an adaptive run ended (as diffrax's ``RESULTS``); ``.message`` says it in words.

    A ``str`` enumeration: ``RESULTS.successful == "successful"``.
    """

    successful = "successful"
    max_steps_reached = "max_steps_reached"
    step_size_underflow = "step_size_underflow"

    @property
    def message(self) -> str:
        return {
            "successful": "reached the end time",
            "max_steps_reached": "the cap on attempted steps (max_steps) was reached before the end time",
            "step_size_underflow": "the step size underflowed or the state became non-finite",
        }[self.value]


# Prince & Dormand (1981), J. Comp. Appl. Math. 7, 67: the 13-stage 8(7) pair. Taken from
# diffrax so the coefficients have one source; the 14th (FSAL) stage is the derivative at
# the new point, which we evaluate after acceptance instead.
_TABLEAU = diffrax.Dopri8.tableau
# Python floats, not NumPy float64 scalars: those are strongly typed and would promote a
# float32 run to float64.
_A = [tuple(float(a) for a in row) for row in _TABLEAU.a_lower[:12]]  # stages 2..13
_B = tuple(float(b) for b in _TABLEAU.b_sol[:13])
_B_ERROR = tuple(float(b) for b in _TABLEAU.b_error[:13])
_ERROR_EXPONENT = 1.0 / 8.0  # the embedded solution is 7th order: local error ~ h^8
_SAFETY = 0.9
_FACTOR_MIN, _FACTOR_MAX = 0.2, 10.0


def _two_sum_add(high, low, increment):
    """Kahan compensated ``high + low + increment`` -> new ``(high, low)``."""
    corrected = increment + low
    total = high + corrected
    return total, corrected - (total - high)


class _Carry(NamedTuple):
    """What the adaptive loop carries from one save interval (and one chunk) to the next."""

    x: jax.Array
    x_low: jax.Array  # Kahan compensation terms of x, v, t
    v: jax.Array
    v_low: jax.Array
    t: jax.Array
    t_low: jax.Array
    h_free: jax.Array  # the controller's step size (not shortened to land on a save time)
    accepted: jax.Array
    rejected: jax.Array
    max_error: jax.Array  # max |E - E0| / |E0| over every accepted step
    energy0: jax.Array


def _initial_step(x0, v0, k1, rtol, atol, span):
    """Hairer, Norsett & Wanner (1993) II.4: ``h0 = 0.01 |y| / |f(y)|``, at most ``span``."""
    scale = atol + rtol * jnp.concatenate([jnp.abs(x0).ravel(), jnp.abs(v0).ravel()])
    y_norm = jnp.sqrt(jnp.mean((jnp.concatenate([x0.ravel(), v0.ravel()]) / scale) ** 2))
    f_norm = jnp.sqrt(jnp.mean((jnp.concatenate([k1[0].ravel(), k1[1].ravel()]) / scale) ** 2))
    h0 = jnp.where((y_norm > 1e-5) & (f_norm > 1e-5), 0.01 * y_norm / f_norm, 1e-6 * span)
    return jnp.minimum(h0, span).astype(x0.dtype)


@partial(jax.jit, static_argnames=("acceleration_fn", "potential", "units"))
def _dopri8(start, mass, save_times, params, rtol, atol, max_steps, *, acceleration_fn, potential, units):
    """Integrate from ``start`` (a :class:`_Carry` at ``save_times[0]``) through
    ``save_times[1:]``, landing on and saving each; the carry goes on to the next chunk.

    Returns:
        ``(carry, index, saved_x, saved_v)``: snapshots ``< index`` were reached.
    """
    dtype = start.x.dtype
    num_saves = save_times.shape[0] - 1

    def derivative(x, v):
        return v, acceleration_fn(x, mass, params)

    def rms(error_x, error_v, scale_x, scale_v):
        squared = jnp.sum((error_x / scale_x) ** 2) + jnp.sum((error_v / scale_v) ** 2)
        return jnp.sqrt(squared / (error_x.size + error_v.size))

    def attempt(x, v, k1, h):
        kx, kv = [k1[0]], [k1[1]]
        for a_row in _A:  # autonomous system: the stage times (nodes c_i) are not needed
            xi = x + h * sum(a * k for a, k in zip(a_row, kx) if a != 0.0)
            vi = v + h * sum(a * k for a, k in zip(a_row, kv) if a != 0.0)
            dx, dv = derivative(xi, vi)
            kx.append(dx)
            kv.append(dv)
        increment_x = h * sum(b * k for b, k in zip(_B, kx) if b != 0.0)
        increment_v = h * sum(b * k for b, k in zip(_B, kv) if b != 0.0)
        error_x = h * sum(b * k for b, k in zip(_B_ERROR, kx) if b != 0.0)
        error_v = h * sum(b * k for b, k in zip(_B_ERROR, kv) if b != 0.0)
        scale_x = atol + rtol * jnp.maximum(jnp.abs(x), jnp.abs(x + increment_x))
        scale_v = atol + rtol * jnp.maximum(jnp.abs(v), jnp.abs(v + increment_v))
        return increment_x, increment_v, rms(error_x, error_v, scale_x, scale_v)

    def body(loop):
        c, k1, index, saved_x, saved_v = loop
        target = save_times[index]
        to_target = (target - c.t) - c.t_low
        lands = c.h_free >= to_target
        h = jnp.where(lands, to_target, c.h_free)
        increment_x, increment_v, error = attempt(c.x, c.v, k1, h)
        ok = (error <= 1.0) & jnp.isfinite(error)
        factor = jnp.where(
            jnp.isfinite(error),
            jnp.clip(_SAFETY * jnp.maximum(error, 1e-30) ** -_ERROR_EXPONENT, _FACTOR_MIN, _FACTOR_MAX),
            _FACTOR_MIN,
        )
        factor = jnp.where(ok, factor, jnp.minimum(factor, 1.0))
        new_x, new_x_low = _two_sum_add(c.x, c.x_low, increment_x)
        new_v, new_v_low = _two_sum_add(c.v, c.v_low, increment_v)
        new_t, new_t_low = _two_sum_add(c.t, c.t_low, h)
        # Landing puts the time exactly on the save time (no accumulated round-off).
        new_t, new_t_low = jnp.where(lands, target, new_t), jnp.where(lands, 0.0, new_t_low)
        new_k1 = derivative(new_x, new_v)
        energy = total_energy(ParticleState(new_x, new_v, mass, new_t, units), params, potential)
        energy_error = jnp.abs(energy - c.energy0) / jnp.abs(c.energy0)
        pick = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
        # A step shortened to land on a save time does not shrink the free step size.
        h_free = jnp.where(ok & lands, jnp.maximum(c.h_free, h * factor), h * factor)
        c = _Carry(
            pick(new_x, c.x), pick(new_x_low, c.x_low), pick(new_v, c.v), pick(new_v_low, c.v_low),
            pick(new_t, c.t), pick(new_t_low, c.t_low), h_free,
            c.accepted + ok.astype(c.accepted.dtype), c.rejected + (~ok).astype(c.rejected.dtype),
            jnp.where(ok, jnp.maximum(c.max_error, energy_error), c.max_error), c.energy0,
        )
        k1 = jax.tree.map(pick, new_k1, k1)
        saved = ok & lands
        saved_x = saved_x.at[index].set(jnp.where(saved, c.x, saved_x[index]))
        saved_v = saved_v.at[index].set(jnp.where(saved, c.v, saved_v[index]))
        return c, k1, index + saved.astype(index.dtype), saved_x, saved_v

    def cond(loop):
        c, index = loop[0], loop[2]
        return (
            (index <= num_saves) & (c.accepted + c.rejected < max_steps)
            & (c.h_free > 0) & jnp.isfinite(c.h_free)
        )

    k1 = derivative(start.x, start.v)
    # A first chunk starts with h_free = 0: pick the initial step here.
    span = save_times[1] - save_times[0]
    start = start._replace(
        h_free=jnp.where(start.h_free > 0, start.h_free, _initial_step(start.x, start.v, k1, rtol, atol, span))
    )
    saved_x = jnp.zeros((num_saves + 1,) + start.x.shape, dtype).at[0].set(start.x)
    saved_v = jnp.zeros((num_saves + 1,) + start.v.shape, dtype).at[0].set(start.v)
    loop = (start, k1, jnp.ones((), jnp.int32), saved_x, saved_v)
    carry, _, index, saved_x, saved_v = lax.while_loop(cond, body, loop)
    return carry, index, saved_x, saved_v


def simulate_adaptive(
    state: ParticleState,
    *,
    t_end: float,
    num_saves: int = 100,
    params: PhysicsParams | None = None,
    rtol: float = 1e-13,
    atol: float = 1e-13,
    forces: str = "auto",
    potential="newtonian",
    max_steps: int = 1_000_000,
    integrator: str = "dopri8",
    chunks: int = 1,
    on_chunk: Callable[[int, Trajectory], None] | None = None,
    initial_dt: float | None = None,
) -> tuple[Trajectory, dict]:
    """Integrate to the END time ``t_end`` with adaptive Dormand-Prince 8(7) steps, saving
    ``num_saves + 1`` snapshots evenly spaced in time.

    A state at time 5 with ``t_end=6`` runs one time unit. Snapshot ``k`` is at
    ``state.time + k * (t_end - state.time) / num_saves`` exactly (the last exactly at
    ``t_end``): steps are shortened to land on each save time.

    Args:
        state: initial :class:`ParticleState` (float64 recommended: the default tolerances
            are meaningless in float32, where ``rtol`` should be >= 1e-6).
        t_end: end time, time units; later than ``state.time``.
        num_saves: number of saved intervals.
        params: :class:`PhysicsParams` (traced); None takes G from ``state.units``.
        rtol, atol: per-step relative and absolute error tolerances (RMS norm over all
            position and velocity components). 1e-13 solves the Pythagorean problem to a
            relative energy error ~1e-10 (see tests/nbody_core/test_adaptive.py).
        forces: force method (a name in :data:`~nbody_core.physics.forces.FORCE_METHODS`).
        potential: pair potential name or :class:`PairPotential`.
        max_steps: cap on attempted steps over the whole run; snapshots not reached are NaN.
        integrator: a name in :data:`ADAPTIVE_INTEGRATORS`: ``"dopri8"`` or ``"ias15"``
            (:func:`nbody_core.integrate.ias15.simulate_ias15` with its defaults: it takes no
            ``rtol``/``atol``, its step control is at machine precision, and runs in one
            call whatever ``chunks`` says).
        chunks: number of compiled calls the save intervals are cut into (equal chunks
            share a compilation); the integrator's state (step size, compensation terms)
            goes from one to the next, so the result equals one call.
        on_chunk: ``on_chunk(saves_done, piece)`` after each chunk, ``piece`` the
            :class:`Trajectory` of the snapshots that chunk reached (the initial one in the
            first).
        initial_dt: first step to try, time units (default: chosen from the state); pass a
            previous run's ``stats["next_dt"]`` to continue it without restarting step control.

    Returns:
        ``(trajectory, stats)``: a :class:`Trajectory` (its ``max_relative_energy_error``
        taken over every accepted step) and a dict with ``accepted_steps``,
        ``rejected_steps``, ``next_dt`` (the controller's step size at the end), ``result`` (a :class:`RESULTS` member) and ``message`` (the
        result in words, with where it stopped).

    Raises:
        ValueError: for an unknown integrator, an end time not after ``state.time``,
            non-positive tolerances or ``num_saves``.
    """
    if integrator not in ADAPTIVE_INTEGRATORS:
        raise ValueError(f"unknown adaptive integrator {integrator!r}; choose one of {sorted(ADAPTIVE_INTEGRATORS)}")
    params = resolve_params(state, params)
    validate_run_options(params=params, num_steps=num_saves)
    t0 = float(np.asarray(state.time))
    if not (np.isfinite(t_end) and t_end > t0):
        raise ValueError(
            f"t_end must be a positive finite end time later than state.time = {t0!r}, got {t_end!r}"
        )
    if num_saves < 1:
        raise ValueError(f"num_saves must be >= 1, got {num_saves!r}")
    if not (rtol > 0 and atol > 0):
        raise ValueError(f"rtol and atol must be positive, got rtol={rtol!r}, atol={atol!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
    if initial_dt is not None and not (np.isfinite(initial_dt) and initial_dt > 0):
        raise ValueError(f"initial_dt must be a positive finite number, got {initial_dt!r}")
    acceleration_fn = acceleration_function(forces, potential)  # a hashable record
    potential = acceleration_fn.potential
    if integrator == "ias15":
        return _run_ias15(state, t_end, num_saves, params, acceleration_fn, max_steps, on_chunk, initial_dt)
    dtype = state.position.dtype
    params = PhysicsParams(*(jnp.asarray(p, dtype) for p in params))
    # Save times by multiplication from t0, the last exactly t_end.
    save_times = t0 + (t_end - t0) * (np.arange(num_saves + 1) / num_saves)
    save_times[-1] = t_end
    save_times = save_times.astype(dtype)
    zero = jnp.zeros((), dtype)
    count = jnp.zeros((), jnp.int32)
    carry = _Carry(
        state.position, jnp.zeros_like(state.position), state.velocity, jnp.zeros_like(state.velocity),
        jnp.asarray(save_times[0]), zero, jnp.asarray(0.0 if initial_dt is None else initial_dt, dtype),
        count, count, zero,
        total_energy(state, params, potential),
    )
    size = -(-num_saves // max(1, min(chunks, num_saves)))
    def snapshots(x, v, times, max_error) -> Trajectory:
        states = ParticleState(x, v, jnp.broadcast_to(state.mass, x.shape[:2]), times, state.units)
        quantities = jax.vmap(lambda s: conserved_quantities(s, params, potential))(states)
        return Trajectory(
            time=jnp.asarray(times), position=x, velocity=v, mass=state.mass, energy=quantities.energy,
            linear_momentum=quantities.linear_momentum, angular_momentum=quantities.angular_momentum,
            max_relative_energy_error=max_error, units=state.units,
        )

    xs, vs, reached = [], [], 0
    for begin in range(0, num_saves, size):
        end = min(begin + size, num_saves)
        carry, index, saved_x, saved_v = _dopri8(
            carry, state.mass, save_times[begin:end + 1], params, jnp.asarray(rtol, dtype),
            jnp.asarray(atol, dtype), jnp.asarray(max_steps, jnp.int32),
            acceleration_fn=acceleration_fn, potential=potential, units=state.units,
        )
        index = int(index)
        first = 0 if begin == 0 else 1  # a later chunk's first snapshot is the previous last
        xs.append(saved_x[first:])
        vs.append(saved_v[first:])
        reached = begin + index - 1  # save intervals completed
        if on_chunk is not None:
            on_chunk(reached, snapshots(
                saved_x[first:index], saved_v[first:index], save_times[begin + first:reached + 1], carry.max_error
            ))
        if reached < end:
            break
    saved_x, saved_v = jnp.concatenate(xs), jnp.concatenate(vs)
    pad = num_saves + 1 - saved_x.shape[0]
    if pad:
        saved_x = jnp.concatenate([saved_x, jnp.zeros((pad,) + saved_x.shape[1:], dtype)])
        saved_v = jnp.concatenate([saved_v, jnp.zeros((pad,) + saved_v.shape[1:], dtype)])
    # Snapshots never reached (max_steps hit) are NaN, so they cannot pass for data.
    unreached = (np.arange(num_saves + 1) > reached)[:, None, None]
    saved_x = jnp.where(unreached, jnp.nan, saved_x)
    saved_v = jnp.where(unreached, jnp.nan, saved_v)
    accepted, rejected = int(carry.accepted), int(carry.rejected)
    if reached >= num_saves:
        result, where = RESULTS.successful, ""
    elif accepted + rejected >= max_steps:
        result, where = RESULTS.max_steps_reached, f"max_steps ({max_steps}) reached"
    else:
        result, where = RESULTS.step_size_underflow, "step size underflow or non-finite state"
    max_error = carry.max_error if result is RESULTS.successful else jnp.asarray(jnp.nan, dtype)
    trajectory = snapshots(saved_x, saved_v, save_times, max_error)
    message = result.message if not where else f"{where} at snapshot {reached + 1} of {num_saves}: {result.message}"
    return trajectory, {"accepted_steps": accepted, "rejected_steps": rejected, "result": result, "message": message,
                        "next_dt": float(carry.h_free)}


_IAS15_RESULTS = {"successful": RESULTS.successful, "max_steps": RESULTS.max_steps_reached,
                  "failed": RESULTS.step_size_underflow}


def _run_ias15(state, t_end, num_saves, params, acceleration_fn, max_steps, on_chunk, initial_dt=None):
    """``simulate_adaptive(integrator="ias15")``: one call of :func:`simulate_ias15`, its
    statistics in this module's terms."""
    from .ias15 import simulate_ias15

    trajectory, stats = simulate_ias15(
        state, t_end=t_end, num_saves=num_saves, params=params, forces=acceleration_fn.method,
        potential=acceleration_fn.potential, max_steps=max_steps, initial_dt=initial_dt,
    )
    result = _IAS15_RESULTS[stats["status"]]
    max_error = stats["max_relative_energy_error"] if result is RESULTS.successful else float("nan")
    trajectory = trajectory._replace(
        max_relative_energy_error=jnp.asarray(max_error, state.position.dtype)
    )
    if on_chunk is not None and result is RESULTS.successful:
        on_chunk(num_saves, trajectory)
    message = result.message if result is RESULTS.successful else f"{stats['result']}: {result.message}"
    return trajectory, {
        "accepted_steps": stats["accepted_steps"], "rejected_steps": stats["rejected_steps"],
        "result": result, "message": message, "next_dt": stats["next_dt"],
    }
