"""Forces and accelerations: by autodiff of the potential energy, and hand-coded.

Everything that moves bodies goes through one small interface::

    acceleration_fn(position [n, 3], mass [n], params: PhysicsParams) -> [n, 3]

built by :func:`acceleration_function` from a method name and a potential. Integrators and
callers never look inside, so faster kernels plug in by registering a new method.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax import Array

from .potentials import NEWTONIAN, PairPotential, get_potential, potential_energy_from_positions
from .state import PhysicsParams

__all__ = [
    "AccelerationFn",
    "FORCE_METHODS",
    "acceleration_function",
    "acceleration_autodiff",
    "acceleration_analytic",
    "forces_autodiff",
    "forces_analytic",
    "register_force_method",
]

AccelerationFn = Callable[[Array, Array, PhysicsParams], Array]


def forces_autodiff(
    position: Array, mass: Array, params: PhysicsParams, potential: str | PairPotential = NEWTONIAN
) -> Array:
    """Forces ``F = -dU/dx`` by ``jax.grad`` of the potential energy.

    Returns:
        ``[n, 3]`` forces, mass * length / time**2 units.
    """
    return -jax.grad(potential_energy_from_positions)(position, mass, params, potential)


def acceleration_autodiff(
    position: Array, mass: Array, params: PhysicsParams, potential: str | PairPotential = NEWTONIAN
) -> Array:
    """Accelerations ``a_i = -(1/m_i) dU/dx_i`` by autodiff; works for any pair potential."""
    return forces_autodiff(position, mass, params, potential) / mass[:, None]


def acceleration_analytic(position: Array, mass: Array, params: PhysicsParams) -> Array:
    """Hand-coded softened Newtonian accelerations (the reference kernel).

    ``a_i = G sum_{j != i} m_j (x_j - x_i) / (r_ij**2 + eps**2)**(3/2)``, an ``[n, n, 3]``
    broadcast: simple and exact, O(n**2) memory.

    Returns:
        ``[n, 3]`` accelerations, length / time**2 units.
    """
    n = position.shape[0]
    dr = position[None, :, :] - position[:, None, :]  # dr[i, j] = x_j - x_i
    r2 = jnp.sum(dr * dr, axis=-1) + params.softening**2
    off_diagonal = ~jnp.eye(n, dtype=bool)
    safe_r2 = jnp.where(off_diagonal, r2, 1.0)
    inv_r3 = jnp.where(off_diagonal, safe_r2 ** -1.5, 0.0)
    return params.G * jnp.einsum("ij,ijk->ik", inv_r3 * mass[None, :], dr)


def forces_analytic(position: Array, mass: Array, params: PhysicsParams) -> Array:
    """Hand-coded softened Newtonian forces ``m_i a_i``, ``[n, 3]``."""
    return mass[:, None] * acceleration_analytic(position, mass, params)


# Registry of acceleration kernels. Each entry maps (potential) -> acceleration_fn; a method
# that only knows Newtonian gravity says so instead of silently computing something else.
_NEWTONIAN_ONLY: dict[str, AccelerationFn] = {"analytic": acceleration_analytic}
FORCE_METHODS: dict[str, str] = {
    "autodiff": "-grad U by jax.grad; any pair potential",
    "analytic": "hand-coded Newtonian kernel (Newtonian only)",
}


# Methods that work for any pair potential: name -> (potential -> acceleration_fn).
_ANY_POTENTIAL: dict[str, Callable[[PairPotential], AccelerationFn]] = {}


def register_force_method(
    name: str, acceleration_fn: Callable, description: str, *, any_potential: bool = False
) -> None:
    """Register a kernel under ``name`` (used by the faster kernels in ``kernels.py``).

    By default ``acceleration_fn(position, mass, params)`` is a hand-coded Newtonian kernel;
    with ``any_potential=True`` it is a factory ``potential -> acceleration_fn``.
    """
    (_ANY_POTENTIAL if any_potential else _NEWTONIAN_ONLY)[name] = acceleration_fn
    FORCE_METHODS[name] = description


def acceleration_function(
    method: str = "analytic", potential: str | PairPotential = NEWTONIAN
) -> AccelerationFn:
    """Build ``acceleration_fn(position, mass, params) -> [n, 3]``.

    Args:
        method: ``"autodiff"`` (any potential) or a hand-coded kernel (``"analytic"``, ...),
            which apply to Newtonian gravity only.
        potential: a :class:`PairPotential` or its registry name.

    Raises:
        ValueError: for an unknown method or potential, or a hand-coded kernel asked for a
            non-Newtonian potential.
    """
    potential = get_potential(potential)
    if method == "autodiff":
        return lambda position, mass, params: acceleration_autodiff(
            position, mass, params, potential
        )
    if method in _ANY_POTENTIAL:
        return _ANY_POTENTIAL[method](potential)
    if method not in _NEWTONIAN_ONLY:
        raise ValueError(f"unknown force method {method!r}; choose one of {sorted(FORCE_METHODS)}")
    if potential.pair_energy is not NEWTONIAN.pair_energy:
        raise ValueError(
            f"force method {method!r} is hand-coded for Newtonian gravity only; "
            f"use method='autodiff' for the {potential.name!r} potential"
        )
    return _NEWTONIAN_ONLY[method]


# Fast exact kernels (tiled, O(n) memory); kernels.py imports nothing from this module.
from .kernels import (  # noqa: E402
    acceleration_autodiff_tiled,
    acceleration_tiled,
    acceleration_tiled_custom_vjp,
)

register_force_method(
    "tiled", acceleration_tiled, "hand-coded Newtonian kernel, tiled: fast, O(n) memory"
)
register_force_method(
    "tiled_custom_vjp",
    acceleration_tiled_custom_vjp,
    "the tiled kernel with a hand-coded exact reverse pass: fast gradients through runs",
)
register_force_method(
    "autodiff_tiled",
    lambda potential: lambda position, mass, params: acceleration_autodiff_tiled(
        position, mass, params, potential
    ),
    "-grad of the tiled potential by jax.grad; any pair potential, O(n) memory",
    any_potential=True,
)
