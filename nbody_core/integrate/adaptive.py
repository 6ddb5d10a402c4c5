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

Interface: :func:`solve_dopri8` is the ``dopri8`` record's solver in
:data:`~nbody_core.integrate.integrators.INTEGRATORS`; call it through
:func:`nbody_core.solve` (``solve(state, t_end=..., integrator="dopri8", rtol=...)``).
"""

from __future__ import annotations

import functools
import math
from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from nbody_core.physics.diagnostics import total_energy
from nbody_core.physics.forces import Acceleration
from nbody_core.physics.state import ParticleState, PhysicsParams
from .adjoint import ADJOINTS, is_traced, loop_of, result_code
from .options import check_positive_number
from .solution import RESULTS, Solution, Stats
from .trajectory import Trajectory, conserved_quantities, empty_piece

__all__ = ["solve_dopri8", "DEFAULT_RTOL", "DEFAULT_ATOL"]

#: Default per-step tolerances: 1e-13 solves the Pythagorean problem to a relative energy
#: error ~1e-10 (tests/nbody_core/test_adaptive.py). Meaningless in float32 (use >= 1e-6).
DEFAULT_RTOL = DEFAULT_ATOL = 1e-13


# Prince & Dormand (1981), J. Comp. Appl. Math. 7, 67: the 13-stage 8(7) pair. Taken from
# diffrax so the coefficients have one source (imported when a run is first traced, so that
# listing the integrators does not import diffrax); the 14th (FSAL) stage is the derivative
# at the new point, which we evaluate after acceptance instead.
@functools.cache
def _tableau() -> tuple[list[tuple[float, ...]], tuple[float, ...], tuple[float, ...]]:
    """``(a rows of stages 2..13, b, b_error)`` as Python floats (NumPy float64 scalars are
    strongly typed and would promote a float32 run to float64)."""
    import diffrax

    tableau = diffrax.Dopri8.tableau
    return (
        [tuple(float(a) for a in row) for row in tableau.a_lower[:12]],
        tuple(float(b) for b in tableau.b_sol[:13]),
        tuple(float(b) for b in tableau.b_error[:13]),
    )


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


class _Loop(NamedTuple):
    """The adaptive loop's whole state between two compiled calls: a call that stops after
    its share of steps hands this to the next, which goes on as if nothing happened."""

    carry: _Carry
    k1: tuple  # the derivative at (carry.x, carry.v): FSAL, carried, never recomputed
    # The field shadows tuple.index (never called on a _Loop), hence the ignore.
    index: jax.Array  # type: ignore[assignment]  # the next save time to land on (snapshots < index were reached)
    saved_x: jax.Array
    saved_v: jax.Array


def _derivative(acceleration_fn, mass, params):
    def derivative(x, v):
        return v, acceleration_fn(x, mass, params)
    return derivative


@partial(jax.jit, static_argnames=("acceleration_fn",))
def _dopri8_start(start, mass, save_times, params, rtol, atol, *, acceleration_fn) -> _Loop:
    """The loop at ``save_times[0]`` from ``start`` (a :class:`_Carry`): the first derivative,
    the initial step when ``start.h_free`` is 0, and the saved snapshots with the first."""
    dtype = start.x.dtype
    num_saves = save_times.shape[0] - 1
    k1 = _derivative(acceleration_fn, mass, params)(start.x, start.v)
    # A first chunk starts with h_free = 0: pick the initial step here.
    span = save_times[1] - save_times[0]
    # Step-size control is not differentiated (nbody_core/integrate/adjoint.py).
    h_free = lax.stop_gradient(start.h_free)
    start = start._replace(h_free=jnp.where(
        h_free > 0, h_free, lax.stop_gradient(_initial_step(start.x, start.v, k1, rtol, atol, span))))
    saved_x = jnp.zeros((num_saves + 1,) + start.x.shape, dtype).at[0].set(start.x)
    saved_v = jnp.zeros((num_saves + 1,) + start.v.shape, dtype).at[0].set(start.v)
    return _Loop(start, k1, jnp.ones((), jnp.int32), saved_x, saved_v)


@partial(jax.jit, static_argnames=("acceleration_fn", "potential", "units"))
def _dopri8(loop, mass, save_times, params, rtol, atol, max_steps, *, acceleration_fn, potential, units) -> _Loop:
    """Go on from ``loop`` (:func:`_dopri8_start`, or a previous call) through
    ``save_times[1:]``, landing on and saving each, until they are all reached or
    ``max_steps`` steps (accepted + rejected, counted over the whole run; traced, so any cap
    reuses this compilation) were attempted.

    Returns:
        The :class:`_Loop` to go on from: snapshots ``< index`` were reached.
    """
    cond, body = _dopri8_loop(mass, save_times, params, rtol, atol, max_steps, acceleration_fn=acceleration_fn,
                              potential=potential, units=units)
    return _Loop(*lax.while_loop(cond, body, tuple(loop)))


def _dopri8_loop(mass, save_times, params, rtol, atol, max_steps, *, acceleration_fn, potential, units,
                 compact=False):
    """``(cond, body)`` of the adaptive loop over a :class:`_Loop` tuple (call inside ``jit``).

    ``compact``: the 12 stages in a ``fori_loop`` over the tableau as arrays (one force
    evaluation in the program, not 12: under a transformation, which copies the step several
    times, that cuts the compile time ~Nx); the stage sums then run in another order, so the
    result differs from the unrolled stages (the eager runs) by round-off."""
    num_saves = save_times.shape[0] - 1

    derivative = _derivative(acceleration_fn, mass, params)

    def rms(error_x, error_v, scale_x, scale_v):
        squared = jnp.sum((error_x / scale_x) ** 2) + jnp.sum((error_v / scale_v) ** 2)
        return jnp.sqrt(squared / (error_x.size + error_v.size))

    a_rows, b_sol, b_error = _tableau()

    def attempt(x, v, k1, h):
        kx, kv = [k1[0]], [k1[1]]
        for a_row in a_rows:  # autonomous system: the stage times (nodes c_i) are not needed
            xi = x + h * sum(a * k for a, k in zip(a_row, kx) if a != 0.0)
            vi = v + h * sum(a * k for a, k in zip(a_row, kv) if a != 0.0)
            dx, dv = derivative(xi, vi)
            kx.append(dx)
            kv.append(dv)
        increment_x = h * sum(b * k for b, k in zip(b_sol, kx) if b != 0.0)
        increment_v = h * sum(b * k for b, k in zip(b_sol, kv) if b != 0.0)
        error_x = h * sum(b * k for b, k in zip(b_error, kx) if b != 0.0)
        error_v = h * sum(b * k for b, k in zip(b_error, kv) if b != 0.0)
        scale_x = atol + rtol * jnp.maximum(jnp.abs(x), jnp.abs(x + increment_x))
        scale_v = atol + rtol * jnp.maximum(jnp.abs(v), jnp.abs(v + increment_v))
        # The error picks the next step: not differentiated (nbody_core/integrate/adjoint.py).
        error = rms(*lax.stop_gradient((error_x, error_v, scale_x, scale_v)))
        return increment_x, increment_v, error

    if compact:
        stages = len(a_rows) + 1
        a_matrix = np.zeros((stages, stages))
        for i, row in enumerate(a_rows):
            a_matrix[i + 1, :len(row)] = row
        a_matrix, b_sol_array, b_error_array = (
            jnp.asarray(m, save_times.dtype) for m in (a_matrix, b_sol, b_error))

        def attempt(x, v, k1, h):  # noqa: F811 (the compact form of the same step)
            kx = jnp.zeros((stages,) + x.shape, x.dtype).at[0].set(k1[0])
            kv = jnp.zeros((stages,) + v.shape, v.dtype).at[0].set(k1[1])

            def stage(i, ks):
                kx, kv = ks
                a = a_matrix[i]
                dx, dv = derivative(x + h * jnp.tensordot(a, kx, 1), v + h * jnp.tensordot(a, kv, 1))
                return kx.at[i].set(dx), kv.at[i].set(dv)

            kx, kv = lax.fori_loop(1, stages, stage, (kx, kv))
            increment_x, increment_v = h * jnp.tensordot(b_sol_array, kx, 1), h * jnp.tensordot(b_sol_array, kv, 1)
            error_x, error_v = h * jnp.tensordot(b_error_array, kx, 1), h * jnp.tensordot(b_error_array, kv, 1)
            scale_x = atol + rtol * jnp.maximum(jnp.abs(x), jnp.abs(x + increment_x))
            scale_v = atol + rtol * jnp.maximum(jnp.abs(v), jnp.abs(v + increment_v))
            error = rms(*lax.stop_gradient((error_x, error_v, scale_x, scale_v)))
            return increment_x, increment_v, error

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

    return cond, body


@partial(jax.jit, static_argnames=("acceleration_fn", "potential", "units", "max_steps", "adjoint"))
def _dopri8_traced(carry, mass, save_times, params, rtol, atol, *, acceleration_fn, potential, units, max_steps,
                   adjoint) -> _Loop:
    """The whole run as one pure function (under a JAX transformation), its loop chosen by
    ``adjoint`` (:func:`~nbody_core.integrate.adjoint.loop_of`)."""
    loop = _dopri8_start(carry, mass, save_times, params, rtol, atol, acceleration_fn=acceleration_fn)
    cond, body = _dopri8_loop(mass, save_times, params, rtol, atol, max_steps, acceleration_fn=acceleration_fn,
                              potential=potential, units=units, compact=True)
    return _Loop(*loop_of(adjoint, max_steps)(cond, body, tuple(loop)))


def _snapshots(state, params, potential, x, v, times, max_error) -> Trajectory:
    states = ParticleState(x, v, jnp.broadcast_to(state.mass, x.shape[:2]), times, state.units)
    quantities = jax.vmap(lambda s: conserved_quantities(s, params, potential))(states)
    return Trajectory(
        time=jnp.asarray(times), position=x, velocity=v, mass=state.mass, energy=quantities.energy,
        linear_momentum=quantities.linear_momentum, angular_momentum=quantities.angular_momentum,
        max_relative_energy_error=max_error, units=state.units,
    )


def _solve_traced(state, carry, save_times, params, tolerances, *, acceleration, max_steps, adjoint) -> Solution:
    """:func:`solve_dopri8` under a JAX transformation: one pure function, traced outputs."""
    potential = acceleration.potential
    num_saves = save_times.shape[0] - 1
    loop = _dopri8_traced(carry, state.mass, save_times, params, *tolerances, acceleration_fn=acceleration,
                          potential=potential, units=state.units, max_steps=max_steps, adjoint=adjoint)
    c, index = loop.carry, loop.index
    unreached = (jnp.arange(num_saves + 1) >= index)[:, None, None]  # NaN: they cannot pass for data
    attempted = c.accepted + c.rejected
    code = result_code(reached_end=index > num_saves, steps_exhausted=attempted >= max_steps,
                       finite=jnp.all(jnp.isfinite(c.x)) & jnp.all(jnp.isfinite(c.v)))
    max_error = jnp.where(code == int(RESULTS.successful), c.max_error, jnp.nan)
    trajectory = _snapshots(state, params, potential, jnp.where(unreached, jnp.nan, loop.saved_x),
                            jnp.where(unreached, jnp.nan, loop.saved_v), save_times, max_error)
    stats = Stats(num_steps=attempted, num_accepted_steps=c.accepted, num_rejected_steps=c.rejected,
                  num_saves_reached=index - 1, next_dt=c.h_free, max_steps=max_steps)
    return Solution(trajectory, stats, code)


def solve_dopri8(
    state: ParticleState,
    *,
    save_times: np.ndarray,
    params: PhysicsParams,
    acceleration: Acceleration,
    max_steps: int,
    dt: float | None = None,
    chunks: int = 1,
    on_chunk: Callable[[int, Trajectory], None] | None = None,
    steps_per_call: int | None = None,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    adjoint: str = "direct",
) -> Solution:
    """Integrate through ``save_times`` with adaptive Dormand-Prince 8(7) steps (the
    ``dopri8`` solver; :func:`nbody_core.solve` validates the common options first).

    Steps are shortened to land exactly on each save time; the free step size is kept.

    Args:
        state: initial :class:`ParticleState` (float64 recommended: the default tolerances
            are meaningless in float32, where ``rtol`` should be >= 1e-6).
        save_times: ``[k + 1]`` float64 times, ``state.time`` first, strictly increasing.
        params: validated :class:`PhysicsParams` (traced).
        acceleration: the :class:`~nbody_core.physics.forces.Acceleration` record.
        max_steps: cap on attempted steps over the whole run; snapshots not reached are NaN.
        dt: first step to try, time units (None: chosen from the state, Hairer, Norsett &
            Wanner 1993 II.4); pass a previous run's ``stats.next_dt`` to continue it
            without restarting step control.
        chunks: number of compiled calls the save intervals are cut into (equal chunks
            share a compilation); the integrator's state (step size, compensation terms)
            goes from one to the next, so the result equals one call.
        on_chunk: ``on_chunk(saves_done, piece)`` after each compiled call, ``piece`` the
            :class:`Trajectory` of the snapshots that call reached (the initial one in the
            first; none when the call ended between two save times). An exception raised
            there stops the run.
        steps_per_call: at most this many attempted steps per compiled call (None: no
            bound); the next call goes on from the loop's whole state (step size,
            compensation terms, FSAL derivative), so the result is bit-identical to one
            call. The cap is traced: any value reuses the compilation.
        rtol, atol: per-step relative and absolute error tolerances (RMS norm over all
            position and velocity components).
        adjoint: under a JAX transformation (a traced state, params or ``dt``), the loop the
            run is one pure function of: ``"direct"`` (every transformation) or ``"forward"``
            (no reverse mode; stops at the end under ``vmap``); see
            :mod:`nbody_core.integrate.adjoint`. Unused otherwise.

    Returns:
        A :class:`Solution` whose trajectory's ``max_relative_energy_error`` is taken over
        every accepted step (NaN unless the run reached its end); under a transformation its
        stats and result code are traced arrays.
    """
    rtol, atol = check_positive_number("rtol", rtol), check_positive_number("atol", atol)
    if adjoint not in ADJOINTS:
        raise ValueError(f"adjoint must be one of {ADJOINTS}, got {adjoint!r}")
    potential = acceleration.potential
    dtype = state.position.dtype
    params = PhysicsParams(*(jnp.asarray(p, dtype) for p in params))
    num_saves = len(save_times) - 1
    if isinstance(save_times, jax.core.Tracer):  # from a traced state.time (solve)
        save_times = save_times.astype(dtype)
    else:
        save_times = np.asarray(save_times, np.float64).astype(dtype)
    zero = jnp.zeros((), dtype)
    count = jnp.zeros((), jnp.int32)
    carry = _Carry(
        state.position, jnp.zeros_like(state.position), state.velocity, jnp.zeros_like(state.velocity),
        jnp.asarray(save_times[0]), zero, jnp.asarray(0.0 if dt is None else dt, dtype),
        count, count, zero,
        total_energy(state, params, potential),
    )
    size = -(-num_saves // max(1, min(chunks, num_saves)))
    snapshots = partial(_snapshots, state, params, potential)
    tolerances = jnp.asarray(rtol, dtype), jnp.asarray(atol, dtype)
    if is_traced(state, params, dt):  # one pure function: chunks give the same result anyway
        return _solve_traced(state, carry, save_times, params, tolerances, acceleration=acceleration,
                             max_steps=max_steps, adjoint=adjoint)
    xs, vs, reached, attempted = [], [], 0, 0
    for begin in range(0, num_saves, size):
        end = min(begin + size, num_saves)
        times = save_times[begin:end + 1]
        loop = _dopri8_start(carry, state.mass, times, params, *tolerances, acceleration_fn=acceleration)
        first = shown = 0 if begin == 0 else 1  # a later chunk's first snapshot is the previous last
        while True:  # calls of at most steps_per_call steps, each going on from the last
            cap = max_steps if steps_per_call is None else min(max_steps, attempted + steps_per_call)
            loop = _dopri8(loop, state.mass, times, params, *tolerances, np.asarray(cap, np.int32),
                           acceleration_fn=acceleration, potential=potential, units=state.units)
            carry, index = loop.carry, int(loop.index)
            attempted = int(carry.accepted) + int(carry.rejected)
            h_free = float(carry.h_free)
            reached = begin + index - 1  # save intervals completed
            going_on = index <= end - begin and attempted < max_steps and h_free > 0 and math.isfinite(h_free)
            if on_chunk is not None:
                on_chunk(reached, snapshots(
                    loop.saved_x[shown:index], loop.saved_v[shown:index], save_times[begin + shown:reached + 1],
                    carry.max_error,
                ) if index > shown else empty_piece(state))
                shown = index
            if not going_on:
                break
        xs.append(loop.saved_x[first:])
        vs.append(loop.saved_v[first:])
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
        result = RESULTS.successful
    elif accepted + rejected >= max_steps:
        result = RESULTS.max_steps_reached
    elif not (np.isfinite(np.asarray(carry.x)).all() and np.isfinite(np.asarray(carry.v)).all()):
        result = RESULTS.nonfinite
    else:
        result = RESULTS.step_size_underflow
    max_error = carry.max_error if result is RESULTS.successful else jnp.asarray(jnp.nan, dtype)
    stats = Stats(
        num_steps=accepted + rejected, num_accepted_steps=accepted, num_rejected_steps=rejected,
        num_saves_reached=reached, next_dt=float(carry.h_free), max_steps=max_steps,
    )
    return Solution(snapshots(saved_x, saved_v, save_times, max_error), stats, result)
