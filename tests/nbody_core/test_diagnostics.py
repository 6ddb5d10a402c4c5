"""Diagnostics of hand-checkable configurations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nbody_core as nb
from nbody_core.lab.numpy_reference import potential_energy_loop


def _state(position, velocity, mass):
    return nb.make_state(position, velocity, mass)


def test_energies_by_hand():
    state = _state([[0, 0, 0], [3, 4, 0]], [[1, 0, 0], [0, 0, 2]], [2.0, 0.5])
    assert float(nb.kinetic_energy(state)) == pytest.approx(0.5 * 2 * 1 + 0.5 * 0.5 * 4, rel=1e-15)
    # U = -G m1 m2 / sqrt(r^2 + eps^2): r = 5, eps = 12 -> sqrt(169) = 13 (eps under the root).
    params = nb.PhysicsParams(G=3.0, softening=12.0)
    assert float(nb.potential_energy(state, params)) == pytest.approx(-3.0 * 1.0 / 13.0, rel=1e-15)
    assert float(nb.total_energy(state, params)) == pytest.approx(2.0 - 3.0 / 13.0, rel=1e-15)


def test_potential_energy_matches_numpy_double_loop(key):
    state = nb.plummer(key, 64)
    for softening in (0.0, 0.05):
        expected = potential_energy_loop(np.asarray(state.position), np.asarray(state.mass), softening=softening)
        # Same float64 sum in another order: ~1e-16 x (number of terms)^(1/2) relative.
        assert float(nb.potential_energy(state, nb.PhysicsParams(softening=softening))) == pytest.approx(
            expected, rel=1e-13
        )


def test_momenta_center_of_mass_and_frame():
    state = _state([[1, 0, 0], [0, 2, 0]], [[0, 1, 0], [0, 0, 3]], [1.0, 3.0])
    np.testing.assert_allclose(nb.linear_momentum(state), [0, 1, 9])
    # L = sum m x cross v: (1,0,0) x (0,1,0) = (0,0,1); 3 (0,2,0) x (0,0,3) = (18,0,0).
    np.testing.assert_allclose(nb.angular_momentum(state), [18, 0, 1])
    np.testing.assert_allclose(nb.center_of_mass(state), [0.25, 1.5, 0])
    np.testing.assert_allclose(nb.center_of_mass_velocity(state), [0, 0.25, 2.25])
    moved = nb.to_center_of_mass_frame(state)
    np.testing.assert_allclose(nb.center_of_mass(moved), 0, atol=1e-15)
    np.testing.assert_allclose(nb.linear_momentum(moved), 0, atol=1e-15)
    # Internal energy is frame-independent in potential, and kinetic drops by P^2 / 2M.
    assert float(nb.potential_energy(moved)) == pytest.approx(float(nb.potential_energy(state)), rel=1e-15)
    drop = float(nb.kinetic_energy(state) - nb.kinetic_energy(moved))
    assert drop == pytest.approx(float(jnp.sum(nb.linear_momentum(state) ** 2)) / (2 * 4.0), rel=1e-14)


def test_virial_ratio_and_relative_error():
    # A circular binary is virialised exactly: T = |U| / 2.
    assert float(nb.virial_ratio(nb.kepler(1.0, 0.3, a=2.0, e=0.0))) == pytest.approx(0.5, rel=1e-14)
    assert float(nb.virial_ratio(nb.pythagorean())) == 0.0
    np.testing.assert_allclose(
        nb.relative_energy_error(jnp.array([-2.0, -2.2, -1.9]), -2.0), [0.0, 0.1, 0.05], rtol=1e-14
    )


def test_diagnostics_vmap_over_snapshots():
    trajectory = nb.simulate(nb.figure_eight(), dt=0.01, num_steps=20, save_every=5)
    states = nb.ParticleState(
        trajectory.position, trajectory.velocity, jnp.broadcast_to(trajectory.mass, (5, 3)), trajectory.time
    )
    energies = jax.vmap(nb.total_energy)(states)
    np.testing.assert_allclose(energies, trajectory.energy, rtol=1e-14)
    loop = [float(nb.total_energy(nb.ParticleState(p, v, trajectory.mass, t)))
            for p, v, t in zip(trajectory.position, trajectory.velocity, trajectory.time)]
    np.testing.assert_allclose(energies, loop, rtol=1e-14)  # vmap == Python loop
