"""Whole trajectories in one compiled ``lax.scan``, and ``advance`` for interactive use.

Static configuration (integrator, force method, potential, step counts, save cadence) is
compiled in; ``dt``, ``params`` and every leaf of the state are traced, so changing them
never recompiles. ``simulate`` saves every ``save_every``-th step with its conserved
quantities; runtime trouble (non-finite values) is reported through the returned arrays,
see :func:`first_nonfinite_index`.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from .diagnostics import angular_momentum, linear_momentum, total_energy
from .forces import acceleration_function
from .integrators import get_integrator
from .potentials import NEWTONIAN, PairPotential, get_potential
from .state import ParticleState, PhysicsParams, register_units_pytree, resolve_params

__all__ = [
    "Trajectory",
    "ConservedQuantities",
    "simulate",
    "advance",
    "conserved_quantities",
    "steps_for_duration",
    "first_nonfinite_index",
    "validate_run_options",
]


class ConservedQuantities(NamedTuple):
    """Energy ``[...]``, linear momentum ``[..., 3]`` and angular momentum ``[..., 3]``."""

    energy: Array
    linear_momentum: Array
    angular_momentum: Array


class Trajectory(NamedTuple):
    """Saved snapshots of one run, the initial state first.

    Attributes:
        time: ``[T]`` times, time units.
        position: ``[T, n, 3]`` positions, length units.
        velocity: ``[T, n, 3]`` velocities, length / time units.
        mass: ``[n]`` masses, mass units.
        energy: ``[T]`` total energy, energy units.
        linear_momentum: ``[T, 3]``.
        angular_momentum: ``[T, 3]``.
        units: the state's unit system (static pytree metadata, not a leaf).
    """

    time: Array
    position: Array
    velocity: Array
    mass: Array
    energy: Array
    linear_momentum: Array
    angular_momentum: Array
    units: str = "nbody"

    @property
    def final_state(self) -> ParticleState:
        return ParticleState(self.position[-1], self.velocity[-1], self.mass, self.time[-1], self.units)

    @property
    def relative_energy_error(self) -> Array:
        """``[T]`` ``|E - E0| / |E0|``."""
        return jnp.abs(self.energy - self.energy[0]) / jnp.abs(self.energy[0])


register_units_pytree(Trajectory)


def conserved_quantities(
    state: ParticleState, params: PhysicsParams | None = None, potential: str | PairPotential = NEWTONIAN
) -> ConservedQuantities:
    """Energy, linear and angular momentum of one state (jit/vmap friendly); ``params=None``
    takes G from the state's unit system."""
    params = resolve_params(state, params)
    return ConservedQuantities(
        total_energy(state, params, potential), linear_momentum(state), angular_momentum(state)
    )


# Loop counters are int32 when x64 is off; one call never runs more steps than this.
MAX_STEPS = 2**31 - 1


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def validate_run_options(*, dt=None, num_steps=None, save_every=None, params=None) -> None:
    """Eager checks with clear messages; traced values (inside jit/grad) pass through."""
    if dt is not None and _is_concrete(dt):
        try:
            dt_value = float(np.asarray(dt, dtype=float))
        except (TypeError, ValueError):
            raise ValueError(f"dt must be a positive finite number, got {dt!r}") from None
        if not math.isfinite(dt_value) or dt_value <= 0:
            raise ValueError(f"dt must be a positive finite number, got {dt_value!r}")
    if num_steps is not None and _is_concrete(num_steps):
        if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or num_steps < 0:
            raise ValueError(f"num_steps must be a non-negative integer, got {num_steps!r}")
        if num_steps > MAX_STEPS:
            raise ValueError(f"num_steps {num_steps} exceeds the limit of {MAX_STEPS} steps per call")
    if save_every is not None:
        if isinstance(save_every, bool) or not isinstance(save_every, (int, np.integer)) or save_every < 1:
            raise ValueError(f"save_every must be a positive integer, got {save_every!r}")
    if params is not None:
        for field, value in zip(PhysicsParams._fields, params):
            if not _is_concrete(value):
                continue
            arr = np.asarray(value, dtype=float)
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{field} must be finite, got {value!r}")
        if _is_concrete(params.softening) and np.any(np.asarray(params.softening) < 0):
            raise ValueError(f"softening must be >= 0, got {params.softening!r}")
        if _is_concrete(params.G) and np.any(np.asarray(params.G) <= 0):
            raise ValueError(f"G must be positive, got {params.G!r}")
        if _is_concrete(params.screening_length) and np.any(np.asarray(params.screening_length) <= 0):
            raise ValueError(f"screening_length must be positive, got {params.screening_length!r}")


def steps_for_duration(t_end: float, dt: float) -> tuple[int, float]:
    """Number of uniform steps that land exactly on ``t_end``, and the step that does it.

    The step is ``t_end / ceil(t_end / dt)`` <= ``dt``: uniform steps keep a symplectic
    integrator symplectic, which a short final step would not.
    """
    validate_run_options(dt=dt)
    if not math.isfinite(t_end) or t_end <= 0:
        raise ValueError(f"t_end must be a positive finite number, got {t_end!r}")
    ratio = t_end / dt
    if not math.isfinite(ratio) or ratio > MAX_STEPS:
        raise ValueError(
            f"t_end / dt = {ratio:.3g} steps exceeds the limit of {MAX_STEPS}; use a larger dt or a shorter t_end"
        )
    num_steps = max(1, math.ceil(ratio - 1e-9))
    return num_steps, t_end / num_steps


def _cast(state: ParticleState, dt, params: PhysicsParams):
    # Strongly typed arrays of the state's dtype: a Python float (weakly typed) and a
    # jnp.float64 would otherwise be two jit signatures, i.e. a needless recompilation.
    # Concrete values become NumPy arrays (always NumPy, so one signature), which costs no
    # eager device dispatch per value (~0.05 ms each: most of an interactive frame's overhead).
    dtype = state.position.dtype

    def cast(value):
        if isinstance(value, jax.core.Tracer):  # inside jit / grad
            return value if value.dtype == dtype else value.astype(dtype)
        return np.asarray(value, dtype)

    return cast(dt), PhysicsParams(*(cast(p) for p in params))


def _step_function(integrator: str, forces: str, potential):
    acceleration_fn = acceleration_function(forces, potential)
    return acceleration_fn, get_integrator(integrator).make_step(acceleration_fn)


@partial(
    jax.jit,
    static_argnames=("integrator", "forces", "potential", "num_saves", "save_every", "remainder"),
)
def _simulate(state, dt, params, *, integrator, forces, potential, num_saves, save_every, remainder):
    dt, params = _cast(state, dt, params)
    acceleration_fn, step_fn = _step_function(integrator, forces, potential)

    def run_steps(carry, count):
        return lax.fori_loop(0, count, lambda _, c: step_fn(*c, dt, params), carry)

    def save_block(carry, _):
        carry = run_steps(carry, save_every)
        state = carry[0]
        return carry, (state, conserved_quantities(state, params, potential))

    carry = (state, acceleration_fn(state.position, state.mass, params))
    first = (state, conserved_quantities(state, params, potential))
    carry, saved = lax.scan(save_block, carry, None, length=num_saves)
    blocks = [jax.tree.map(lambda x: x[None], first), saved]
    if remainder:
        carry = run_steps(carry, remainder)
        last = carry[0]
        blocks.append(jax.tree.map(lambda x: x[None], (last, conserved_quantities(last, params, potential))))
    states, quantities = jax.tree.map(lambda *xs: jnp.concatenate(xs), *blocks)
    return Trajectory(
        time=states.time,
        position=states.position,
        velocity=states.velocity,
        mass=state.mass,
        energy=quantities.energy,
        linear_momentum=quantities.linear_momentum,
        angular_momentum=quantities.angular_momentum,
        units=state.units,
    )


def simulate(
    state: ParticleState,
    *,
    dt,
    num_steps: int,
    save_every: int = 1,
    params: PhysicsParams | None = None,
    integrator: str = "leapfrog",
    forces: str = "tiled",
    potential: str | PairPotential = "newtonian",
) -> Trajectory:
    """Integrate ``num_steps`` fixed steps in one compiled scan, saving every ``save_every``.

    Args:
        state: initial :class:`ParticleState` (its dtype sets the computation's dtype).
        dt: step, time units (traced: changing it does not recompile).
        num_steps: number of steps (static).
        save_every: save cadence (static); the last step is always saved.
        params: :class:`PhysicsParams` (traced); None takes G from ``state.units`` (G = 1 in
            N-body units, 39.48 in AU, Msun and years). Explicit params whose G contradicts
            a physical unit system of the state raise ``ValueError``.
        integrator: ``"euler"``, ``"leapfrog"``, ``"yoshida4"`` or ``"rk4"``.
        forces: a method of :data:`~nbody_core.forces.FORCE_METHODS`: ``"tiled"`` (default:
            the fast hand-coded kernel, Newtonian only), ``"tiled_custom_vjp"`` (same, with a
            hand-coded reverse pass: fastest gradients), ``"analytic"``, ``"autodiff"`` or
            ``"autodiff_tiled"`` (any potential).
        potential: pair potential name or :class:`PairPotential`.

    Returns:
        :class:`Trajectory` with ``1 + ceil(num_steps / save_every)`` snapshots.
    """
    if dt is None:
        raise ValueError("dt is required: a positive finite time step")
    params = resolve_params(state, params)
    validate_run_options(dt=dt, num_steps=num_steps, save_every=save_every, params=params)
    get_integrator(integrator)
    potential = get_potential(potential)
    acceleration_function(forces, potential)  # validates the method/potential pair eagerly
    dt, params = _cast(state, dt, params)  # one signature for float / np.float64 / jnp inputs
    return _simulate(
        state,
        dt,
        params,
        integrator=integrator,
        forces=forces,
        potential=potential,
        num_saves=num_steps // save_every,
        save_every=save_every,
        remainder=num_steps % save_every,
    )


@partial(jax.jit, static_argnames=("integrator", "forces", "potential"))
def _advance(state, num_steps, dt, params, *, integrator, forces, potential):
    dt, params = _cast(state, dt, params)
    acceleration_fn, step_fn = _step_function(integrator, forces, potential)
    carry = (state, acceleration_fn(state.position, state.mass, params))
    state, _ = lax.fori_loop(0, num_steps, lambda _, c: step_fn(*c, dt, params), carry)
    return state


def advance(
    state: ParticleState,
    num_steps: int,
    *,
    dt,
    params: PhysicsParams | None = None,
    integrator: str = "leapfrog",
    forces: str = "tiled",
    potential: str | PairPotential = "newtonian",
) -> ParticleState:
    """Advance ``state`` by ``num_steps`` steps and return the new state (interactive use).

    ``num_steps``, ``dt`` and ``params`` are all traced: a frame loop that changes steps
    per frame, dt or softening never recompiles. Not reverse-differentiable in
    ``num_steps``-dependent loops; use :func:`simulate` for gradients. ``params=None`` takes
    G from the state's unit system, as in :func:`simulate`.
    """
    if dt is None:
        raise ValueError("dt is required: a positive finite time step")
    params = resolve_params(state, params)
    validate_run_options(dt=dt, num_steps=num_steps, params=params)
    get_integrator(integrator)
    potential = get_potential(potential)
    acceleration_function(forces, potential)
    dt, params = _cast(state, dt, params)
    return _advance(
        state, np.asarray(num_steps, np.int32), dt, params,
        integrator=integrator, forces=forces, potential=potential,
    )


def first_nonfinite_index(trajectory: Trajectory) -> int | None:
    """Index of the first snapshot with a non-finite position, velocity or energy, else None."""
    finite = (
        np.isfinite(np.asarray(trajectory.position)).all(axis=(-1, -2))
        & np.isfinite(np.asarray(trajectory.velocity)).all(axis=(-1, -2))
        & np.isfinite(np.asarray(trajectory.energy))
    )
    bad = np.flatnonzero(~finite)
    return int(bad[0]) if bad.size else None
