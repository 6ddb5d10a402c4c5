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

from functools import partial

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .forces import acceleration_function
from .potentials import get_potential
from .simulate import Trajectory, conserved_quantities, validate_run_options
from .state import ParticleState, PhysicsParams, resolve_params

__all__ = ["simulate_adaptive", "ADAPTIVE_INTEGRATORS"]

ADAPTIVE_INTEGRATORS = {
    "dopri8": "Dormand-Prince 8(7), adaptive steps, compensated summation (close encounters)",
    "ias15": "IAS15, 15th-order Gauss-Radau (Rein & Spiegel 2015), adaptive; nbody_core.ias15.simulate_ias15",
}

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


@partial(jax.jit, static_argnames=("acceleration_fn", "potential", "num_saves"))
def _dopri8(state, t_end, params, rtol, atol, max_steps, *, acceleration_fn, potential, num_saves):
    dtype = state.position.dtype
    mass = state.mass
    t0 = state.time
    save_times = t0 + t_end * jnp.arange(num_saves + 1, dtype=dtype) / num_saves

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

    def body(carry):
        (x, x_low, v, v_low, t, t_low, k1, h_free, index, accepted, rejected, saved_x, saved_v) = carry
        target = save_times[index]
        to_target = (target - t) - t_low
        lands = h_free >= to_target
        h = jnp.where(lands, to_target, h_free)
        increment_x, increment_v, error = attempt(x, v, k1, h)
        ok = (error <= 1.0) & jnp.isfinite(error)
        factor = jnp.where(
            jnp.isfinite(error),
            jnp.clip(_SAFETY * jnp.maximum(error, 1e-30) ** -_ERROR_EXPONENT, _FACTOR_MIN, _FACTOR_MAX),
            _FACTOR_MIN,
        )
        factor = jnp.where(ok, factor, jnp.minimum(factor, 1.0))
        new_x, new_x_low = _two_sum_add(x, x_low, increment_x)
        new_v, new_v_low = _two_sum_add(v, v_low, increment_v)
        new_t, new_t_low = _two_sum_add(t, t_low, h)
        new_t, new_t_low = jnp.where(lands, target, new_t), jnp.where(lands, 0.0, new_t_low)
        new_k1 = derivative(new_x, new_v)
        pick = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
        x, x_low, v, v_low = pick(new_x, x), pick(new_x_low, x_low), pick(new_v, v), pick(new_v_low, v_low)
        t, t_low = pick(new_t, t), pick(new_t_low, t_low)
        k1 = jax.tree.map(pick, new_k1, k1)
        # A step shortened to land on a save time does not shrink the free step size.
        h_free = jnp.where(ok & lands, jnp.maximum(h_free, h * factor), h * factor)
        saved = ok & lands
        saved_x = saved_x.at[index].set(jnp.where(saved, x, saved_x[index]))
        saved_v = saved_v.at[index].set(jnp.where(saved, v, saved_v[index]))
        index = index + saved.astype(index.dtype)
        return (x, x_low, v, v_low, t, t_low, k1, h_free, index,
                accepted + ok.astype(accepted.dtype), rejected + (~ok).astype(rejected.dtype), saved_x, saved_v)

    def cond(carry):
        index, accepted, rejected, h_free = carry[8], carry[9], carry[10], carry[7]
        return (index <= num_saves) & (accepted + rejected < max_steps) & (h_free > 0) & jnp.isfinite(h_free)

    x0, v0 = state.position, state.velocity
    k1 = derivative(x0, v0)
    # Initial step from Hairer, Norsett & Wanner (1993) II.4: h0 = 0.01 * |y| / |f(y)|.
    scale = atol + rtol * jnp.concatenate([jnp.abs(x0).ravel(), jnp.abs(v0).ravel()])
    y_norm = jnp.sqrt(jnp.mean((jnp.concatenate([x0.ravel(), v0.ravel()]) / scale) ** 2))
    f_norm = jnp.sqrt(jnp.mean((jnp.concatenate([k1[0].ravel(), k1[1].ravel()]) / scale) ** 2))
    h0 = jnp.where((y_norm > 1e-5) & (f_norm > 1e-5), 0.01 * y_norm / f_norm, 1e-6 * t_end)
    h0 = jnp.minimum(h0, t_end / num_saves).astype(dtype)
    saved_x = jnp.zeros((num_saves + 1,) + x0.shape, dtype).at[0].set(x0)
    saved_v = jnp.zeros((num_saves + 1,) + v0.shape, dtype).at[0].set(v0)
    zero = jnp.zeros((), dtype)
    count = jnp.zeros((), jnp.int32)
    carry = (x0, jnp.zeros_like(x0), v0, jnp.zeros_like(v0), t0, zero, k1, h0,
             jnp.ones((), jnp.int32), count, count, saved_x, saved_v)
    carry = lax.while_loop(cond, body, carry)
    index, accepted, rejected, saved_x, saved_v = carry[8], carry[9], carry[10], carry[11], carry[12]
    # Snapshots never reached (max_steps hit) are NaN, so they cannot pass for data.
    reached = jnp.arange(num_saves + 1) < index
    saved_x = jnp.where(reached[:, None, None], saved_x, jnp.nan)
    saved_v = jnp.where(reached[:, None, None], saved_v, jnp.nan)
    states = ParticleState(saved_x, saved_v, jnp.broadcast_to(mass, saved_x.shape[:2]), save_times, state.units)
    quantities = jax.vmap(lambda s: conserved_quantities(s, params, potential))(states)
    trajectory = Trajectory(
        time=save_times,
        position=saved_x,
        velocity=saved_v,
        mass=mass,
        energy=quantities.energy,
        linear_momentum=quantities.linear_momentum,
        angular_momentum=quantities.angular_momentum,
        units=state.units,
    )
    return trajectory, index, accepted, rejected


def simulate_adaptive(
    state: ParticleState,
    *,
    t_end: float,
    num_saves: int = 100,
    params: PhysicsParams | None = None,
    rtol: float = 1e-13,
    atol: float = 1e-13,
    forces: str = "analytic",
    potential="newtonian",
    max_steps: int = 1_000_000,
) -> tuple[Trajectory, dict]:
    """Integrate for a duration ``t_end`` with adaptive Dormand-Prince 8(7) steps, saving
    ``num_saves + 1`` snapshots evenly spaced in time (the initial state first, the last
    exactly at ``state.time + t_end``; steps are shortened to land on each save time).

    Args:
        state: initial :class:`ParticleState` (float64 recommended: the default tolerances
            are meaningless in float32, where ``rtol`` should be >= 1e-6).
        t_end: duration, time units (traced: changing it does not recompile).
        num_saves: number of saved intervals (static).
        params: :class:`PhysicsParams` (traced); None takes G from ``state.units``.
        rtol, atol: per-step relative and absolute error tolerances (RMS norm over all
            position and velocity components). 1e-13 solves the Pythagorean problem to a
            relative energy error ~1e-11 (see tests/test_adaptive.py).
        forces: force method (``"analytic"`` or ``"autodiff"``).
        potential: pair potential name or :class:`PairPotential`.
        max_steps: cap on attempted steps (traced); snapshots not reached are NaN.

    Returns:
        ``(trajectory, stats)``: a :class:`Trajectory` and a dict with ``accepted_steps``,
        ``rejected_steps`` and ``result`` (``"successful"`` when it reached the end, else
        a message naming the failure).

    Raises:
        ValueError: for non-positive ``t_end``, tolerances or ``num_saves``.
    """
    params = resolve_params(state, params)
    validate_run_options(params=params, num_steps=num_saves)
    if not (np.isfinite(t_end) and t_end > 0):
        raise ValueError(f"t_end must be a positive finite number, got {t_end!r}")
    if num_saves < 1:
        raise ValueError(f"num_saves must be >= 1, got {num_saves!r}")
    if not (rtol > 0 and atol > 0):
        raise ValueError(f"rtol and atol must be positive, got rtol={rtol!r}, atol={atol!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
    potential = get_potential(potential)
    acceleration_fn = acceleration_function(forces, potential)
    dtype = state.position.dtype
    params = PhysicsParams(*(jnp.asarray(p, dtype) for p in params))
    trajectory, index, accepted, rejected = _dopri8(
        state._replace(time=jnp.asarray(state.time, dtype)),
        jnp.asarray(t_end, dtype),
        params,
        jnp.asarray(rtol, dtype),
        jnp.asarray(atol, dtype),
        jnp.asarray(max_steps, jnp.int32),
        acceleration_fn=_cached_acceleration(forces, potential, acceleration_fn),
        potential=potential,
        num_saves=int(num_saves),
    )
    index, accepted, rejected = int(index), int(accepted), int(rejected)
    if index > num_saves:
        result = "successful"
    elif accepted + rejected >= max_steps:
        result = f"max_steps ({max_steps}) reached at snapshot {index} of {num_saves}"
    else:
        result = f"step size underflow or non-finite state at snapshot {index} of {num_saves}"
    return trajectory, {"accepted_steps": accepted, "rejected_steps": rejected, "result": result}


_ACCELERATION_CACHE: dict = {}


def _cached_acceleration(forces, potential, acceleration_fn):
    # acceleration_function builds a new closure per call; a static jit argument must be
    # the same object each time or every call would recompile.
    return _ACCELERATION_CACHE.setdefault((forces, potential), acceleration_fn)
