"""Conserved quantities and other diagnostics of a single state (vmap them for batches).

Nouns for queries: ``kinetic_energy(state)``, ``angular_momentum(state)``; the one verb,
``to_center_of_mass_frame``, returns a new state. Every sum over bodies is an
:func:`~nbody_core.physics.reductions.ordered_sum`, so a state's diagnostics are the same bytes
whether it is computed alone or vmapped in a batch of any size (ensembles rely on it).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from .kernels import potential_energy_tiled
from .potentials import NEWTONIAN, PairPotential
from .reductions import ordered_sum
from .state import ParticleState, PhysicsParams, resolve_params

__all__ = [
    "kinetic_energy",
    "potential_energy",
    "total_energy",
    "relative_energy_error",
    "linear_momentum",
    "angular_momentum",
    "center_of_mass",
    "center_of_mass_velocity",
    "virial_ratio",
    "to_center_of_mass_frame",
]


def kinetic_energy(state: ParticleState) -> Array:
    """``T = sum_i m_i |v_i|**2 / 2``, scalar, energy units."""
    return 0.5 * ordered_sum(state.mass * ordered_sum(state.velocity**2, axis=-1))


def potential_energy(
    state: ParticleState, params: PhysicsParams | None = None, potential: str | PairPotential = NEWTONIAN
) -> Array:
    """``U = sum_{i<j} m_i m_j phi(s_ij)``, scalar, energy units (O(n) memory, tiled);
    ``params=None`` takes G from the state's unit system."""
    return potential_energy_tiled(state.position, state.mass, resolve_params(state, params), potential)


def total_energy(
    state: ParticleState, params: PhysicsParams | None = None, potential: str | PairPotential = NEWTONIAN
) -> Array:
    """``E = T + U``, scalar, energy units."""
    return kinetic_energy(state) + potential_energy(state, params, potential)


def relative_energy_error(energy: Array, initial_energy: Array) -> Array:
    """``|E - E0| / |E0|`` (dimensionless), elementwise over ``energy``."""
    return jnp.abs(energy - initial_energy) / jnp.abs(initial_energy)


def linear_momentum(state: ParticleState) -> Array:
    """``P = sum_i m_i v_i``, ``[3]``, mass * length / time units."""
    return ordered_sum(state.mass[:, None] * state.velocity, axis=0)


def angular_momentum(state: ParticleState) -> Array:
    """``L = sum_i m_i x_i cross v_i`` about the origin, ``[3]``, mass * length**2 / time."""
    return ordered_sum(state.mass[:, None] * jnp.cross(state.position, state.velocity), axis=0)


def center_of_mass(state: ParticleState) -> Array:
    """Centre of mass, ``[3]``, length units."""
    return ordered_sum(state.mass[:, None] * state.position, axis=0) / ordered_sum(state.mass)


def center_of_mass_velocity(state: ParticleState) -> Array:
    """Velocity of the centre of mass, ``[3]``, length / time units."""
    return linear_momentum(state) / ordered_sum(state.mass)


def virial_ratio(
    state: ParticleState, params: PhysicsParams | None = None, potential: str | PairPotential = NEWTONIAN
) -> Array:
    """``Q = T / |U|`` (dimensionless): 0.5 in virial equilibrium, 0 for a cold start."""
    return kinetic_energy(state) / jnp.abs(potential_energy(state, params, potential))


def to_center_of_mass_frame(state: ParticleState) -> ParticleState:
    """Shift positions and velocities so the centre of mass rests at the origin."""
    return state._replace(
        position=state.position - center_of_mass(state),
        velocity=state.velocity - center_of_mass_velocity(state),
    )
