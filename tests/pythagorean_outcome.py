"""The known outcome of Burrau's Pythagorean three-body problem (Szebehely & Peters 1967):
the lightest body (m = 3) leaves on an unbound orbit and the other two (m = 4, 5) form a bound
binary. Shared by the core, preset and dashboard tests that integrate it to t = 70."""

from __future__ import annotations

import numpy as np


def escape_and_binary(position, velocity, mass) -> tuple[float, float, float]:
    """Two-body energies at one instant: body 0 about the (1, 2) pair's centre of mass, its
    radial motion (dx . dv, > 0 when moving away), and the (1, 2) pair's own energy (G = 1).

    Args:
        position, velocity: ``[3, 3]`` arrays; mass: ``[3]``, ordered m = 3, 4, 5.
    """
    x, v, m = (np.asarray(a, dtype=np.float64) for a in (position, velocity, mass))
    m_pair = m[1] + m[2]
    x_pair = (m[1] * x[1] + m[2] * x[2]) / m_pair
    v_pair = (m[1] * v[1] + m[2] * v[2]) / m_pair
    dx, dv = x[0] - x_pair, v[0] - v_pair
    reduced = m[0] * m_pair / (m[0] + m_pair)
    escape_energy = 0.5 * reduced * dv @ dv - m[0] * m_pair / np.linalg.norm(dx)
    dx12, dv12 = x[1] - x[2], v[1] - v[2]
    binary_energy = 0.5 * m[1] * m[2] / m_pair * dv12 @ dv12 - m[1] * m[2] / np.linalg.norm(dx12)
    return float(escape_energy), float(dx @ dv), float(binary_energy)


def assert_known_outcome(position, velocity, mass) -> None:
    """m = 3 escapes (positive energy, moving away) and m = 4, 5 are bound."""
    np.testing.assert_array_equal(np.asarray(mass), [3.0, 4.0, 5.0])
    escape_energy, radial_motion, binary_energy = escape_and_binary(position, velocity, mass)
    assert escape_energy > 0 and radial_motion > 0, (escape_energy, radial_motion)
    assert binary_energy < 0, binary_energy
