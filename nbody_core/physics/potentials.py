"""Pair potentials and the total potential energy they define.

A pair potential is ``phi(s, params) -> energy per unit m_i m_j`` of the Plummer-softened
distance ``s = sqrt(r**2 + eps**2)``. The total energy is
``U = sum_{i<j} m_i m_j phi(s_ij)``; forces come from it by ``jax.grad`` (see forces.py),
so a new potential needs no force code.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax.numpy as jnp
from jax import Array

from nbody_core.registry import Registry

from .state import PhysicsParams

__all__ = [
    "PairPotential",
    "NEWTONIAN",
    "YUKAWA",
    "POWER_LAW",
    "POTENTIALS",
    "get_potential",
    "pair_potential",
    "softened_distance_matrix",
    "potential_energy_from_positions",
]

PairEnergyFn = Callable[[Array, PhysicsParams], Array]


class PairPotential(NamedTuple):
    """A named pair potential.

    Attributes:
        name: registry key, e.g. ``"newtonian"``.
        pair_energy: ``phi(s, params)``: energy per unit ``m_i m_j`` at softened distance
            ``s`` (any shape), energy / mass**2 units.
        description: one line for menus and ``--help``.
        parameters: names of the :class:`PhysicsParams` fields it reads.
    """

    name: str
    pair_energy: PairEnergyFn
    description: str
    parameters: tuple[str, ...] = ("G", "softening")


def _newtonian(s, params):
    return -params.G / s


def _yukawa(s, params):
    return -params.G * jnp.exp(-s / params.screening_length) / s


def _power_law(s, params):
    return -params.G / s**params.power_index


NEWTONIAN = PairPotential(
    "newtonian", _newtonian, "Plummer-softened Newtonian gravity, phi = -G / s"
)
YUKAWA = PairPotential(
    "yukawa",
    _yukawa,
    "Yukawa-screened gravity, phi = -G exp(-s / lambda) / s",
    ("G", "softening", "screening_length"),
)
POWER_LAW = PairPotential(
    "power_law",
    _power_law,
    "power-law gravity, phi = -G / s**p (p = 1 is Newtonian)",
    ("G", "softening", "power_index"),
)
POTENTIALS: Registry[PairPotential] = Registry(
    "potential", {p.name: p for p in (NEWTONIAN, YUKAWA, POWER_LAW)}, record_type=PairPotential
)


def pair_potential(pair_energy: PairEnergyFn, name: str = "custom", description: str = "") -> PairPotential:
    """Wrap a user function ``phi(s, params)`` as a :class:`PairPotential`.

    Forces follow by autodiff with no other code, e.g.::

        soft_core = pair_potential(lambda s, p: -p.G / jnp.sqrt(s**2 + 1.0))
        acceleration_fn = acceleration_function("autodiff", soft_core)
    """
    if not callable(pair_energy):
        raise ValueError(f"pair_energy must be callable, got {type(pair_energy).__name__}")
    return PairPotential(name, pair_energy, description or f"user potential {name!r}")


def get_potential(potential: str | PairPotential) -> PairPotential:
    """Look a potential up by name (or pass a :class:`PairPotential` through)."""
    return POTENTIALS.get(potential)


def softened_distance_matrix(position: Array, softening) -> tuple[Array, Array]:
    """Softened pair distances with self-pairs masked *before* the square root.

    Args:
        position: ``[n, 3]`` positions, length units.
        softening: Plummer softening length, length units.

    Returns:
        ``(s, off_diagonal)``: ``[n, n]`` softened distances (1 on the diagonal, a safe dummy
        whose gradient is finite) and the boolean ``[n, n]`` mask of real pairs.
    """
    n = position.shape[0]
    dr = position[:, None, :] - position[None, :, :]
    r2 = jnp.sum(dr * dr, axis=-1) + softening**2
    off_diagonal = ~jnp.eye(n, dtype=bool)
    # Mask r^2 before the sqrt: where() after the sqrt would still send NaN gradients
    # through the self-pair (d sqrt(x)/dx is infinite at x = 0).
    s = jnp.sqrt(jnp.where(off_diagonal, r2, 1.0))
    return s, off_diagonal


def potential_energy_from_positions(
    position: Array, mass: Array, params: PhysicsParams, potential: str | PairPotential = NEWTONIAN
) -> Array:
    """Total potential energy ``U = sum_{i<j} m_i m_j phi(s_ij)``.

    Args:
        position: ``[n, 3]`` positions, length units.
        mass: ``[n]`` masses, mass units.
        params: physical constants (G, softening, ...).
        potential: a :class:`PairPotential` or its registry name.

    Returns:
        scalar energy, energy units (mass * length**2 / time**2).
    """
    potential = get_potential(potential)
    s, off_diagonal = softened_distance_matrix(position, params.softening)
    pair = mass[:, None] * mass[None, :] * potential.pair_energy(s, params)
    # Each unordered pair appears twice in the full matrix.
    return 0.5 * jnp.sum(jnp.where(off_diagonal, pair, 0.0))
