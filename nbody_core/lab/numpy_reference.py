"""The NumPy baseline the course starts from: softened Newtonian accelerations two ways.

``accelerations_loop`` is the textbook double loop over pairs (pure Python, O(n**2)
interpreted iterations); ``accelerations_vectorized`` is the same sum as one ``[n, n, 3]``
NumPy broadcast. Both compute, in float64,

    a_i = G sum_{j != i} m_j (x_j - x_i) / (|x_j - x_i|**2 + eps**2)**(3/2)

and are the references every JAX kernel is checked and timed against. This module imports
NumPy only (no JAX), so it can be used on its own.
"""

from __future__ import annotations

import numpy as np

__all__ = ["accelerations_loop", "accelerations_vectorized", "potential_energy_loop"]


def _as_arrays(position, mass):
    position = np.asarray(position, dtype=np.float64)
    mass = np.asarray(mass, dtype=np.float64)
    if position.ndim != 2 or position.shape[1] != 3:
        raise ValueError(f"position must have shape [n, 3], got {position.shape}")
    if mass.shape != (position.shape[0],):
        raise ValueError(f"mass must have shape [{position.shape[0]}], got {mass.shape}")
    return position, mass


def accelerations_loop(position, mass, *, G: float = 1.0, softening: float = 0.0) -> np.ndarray:
    """Textbook double loop over ordered pairs ``(i, j)``, ``j != i``.

    Args:
        position: ``[n, 3]`` positions, length units.
        mass: ``[n]`` masses, mass units.
        G: gravitational constant.
        softening: Plummer softening length eps >= 0 (added under the square root).

    Returns:
        ``[n, 3]`` float64 accelerations, length / time**2 units.
    """
    position, mass = _as_arrays(position, mass)
    n = position.shape[0]
    eps2 = softening * softening
    acceleration = np.zeros((n, 3))
    for i in range(n):
        xi, yi, zi = position[i]
        ax = ay = az = 0.0
        for j in range(n):
            if j == i:
                continue
            dx = position[j, 0] - xi
            dy = position[j, 1] - yi
            dz = position[j, 2] - zi
            r2 = dx * dx + dy * dy + dz * dz + eps2
            factor = G * mass[j] / (r2 * np.sqrt(r2))
            ax += factor * dx
            ay += factor * dy
            az += factor * dz
        acceleration[i] = ax, ay, az
    return acceleration


def accelerations_vectorized(position, mass, *, G: float = 1.0, softening: float = 0.0) -> np.ndarray:
    """The same sum as one NumPy broadcast (``[n, n, 3]`` temporaries, O(n**2) memory).

    Args and returns as :func:`accelerations_loop`.
    """
    position, mass = _as_arrays(position, mass)
    dr = position[None, :, :] - position[:, None, :]  # dr[i, j] = x_j - x_i
    r2 = np.einsum("ijk,ijk->ij", dr, dr) + softening * softening
    np.fill_diagonal(r2, 1.0)  # self-pairs: any finite value, zeroed below
    inv_r3 = r2 ** -1.5
    np.fill_diagonal(inv_r3, 0.0)
    return G * np.einsum("ij,ijk->ik", inv_r3 * mass[None, :], dr)


def potential_energy_loop(position, mass, *, G: float = 1.0, softening: float = 0.0) -> float:
    """``U = -G sum_{i<j} m_i m_j / sqrt(r_ij**2 + eps**2)`` by a double loop (energy units)."""
    position, mass = _as_arrays(position, mass)
    n = position.shape[0]
    energy = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            d = position[j] - position[i]
            energy -= G * mass[i] * mass[j] / np.sqrt(d @ d + softening * softening)
    return float(energy)
