"""The saved record of one run: :class:`Trajectory` (snapshots and their conserved quantities).

Contract: every integrator, fixed-step or adaptive, returns its snapshots as one
:class:`Trajectory`, the initial state first; :func:`conserved_quantities` is what each
snapshot carries beside positions and velocities, and :func:`first_nonfinite_index` finds
where a run went non-finite.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array

from nbody_core.physics.diagnostics import angular_momentum, linear_momentum, total_energy
from nbody_core.physics.potentials import NEWTONIAN, PairPotential
from nbody_core.physics.state import ParticleState, PhysicsParams, register_units_pytree, resolve_params

__all__ = ["ConservedQuantities", "Trajectory", "conserved_quantities", "empty_piece", "first_nonfinite_index"]


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
        max_relative_energy_error: scalar ``max |E - E0| / |E0|``: over EVERY step of the
            run when it was tracked (``solve(..., track_energy=True)``, ``nbody run``, every
            adaptive integrator), else over the saved snapshots only; NaN once the run went
            non-finite (or, adaptive, did not reach its end); ``None`` where a producer does
            not report it (``solve(..., final_only=True)`` of a fixed-step run, untracked).
        units: the state's unit system (static pytree metadata, not a leaf).
    """

    time: Array
    position: Array
    velocity: Array
    mass: Array
    energy: Array
    linear_momentum: Array
    angular_momentum: Array
    max_relative_energy_error: Array | None = None
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


def first_nonfinite_index(trajectory: Trajectory) -> int | None:
    """Index of the first snapshot with a non-finite position, velocity or energy, else None."""
    finite = (
        np.isfinite(np.asarray(trajectory.position)).all(axis=(-1, -2))
        & np.isfinite(np.asarray(trajectory.velocity)).all(axis=(-1, -2))
        & np.isfinite(np.asarray(trajectory.energy))
    )
    bad = np.flatnonzero(~finite)
    return int(bad[0]) if bad.size else None


def empty_piece(particles: ParticleState) -> Trajectory:
    """A :class:`Trajectory` of zero snapshots shaped like ``particles`` (host arrays): the
    ``on_chunk`` piece of a compiled call that saved nothing."""
    n = particles.position.shape[0]
    dtype = particles.position.dtype
    return Trajectory(
        time=np.zeros(0, dtype), position=np.zeros((0, n, 3), dtype), velocity=np.zeros((0, n, 3), dtype),
        mass=particles.mass, energy=np.zeros(0, dtype), linear_momentum=np.zeros((0, 3), dtype),
        angular_momentum=np.zeros((0, 3), dtype), units=particles.units,
    )
