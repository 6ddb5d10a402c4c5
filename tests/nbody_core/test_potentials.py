"""Pair potentials: exact pair values, invariances, registry and user potentials."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nbody_core as nb
from nbody_core.physics.potentials import (
    get_potential,
    potential_energy_from_positions,
    softened_distance_matrix,
)

# Jitted: eager JAX compiles every primitive on its own, which dominates small tests.
energy_fn = jax.jit(potential_energy_from_positions, static_argnums=3)

PAIR = jnp.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]])
MASS = jnp.array([2.0, 5.0])


@pytest.mark.parametrize(
    "potential, params, expected",
    [
        # eps under the square root: s = sqrt(25 + 144) = 13, never r + eps = 17.
        (nb.NEWTONIAN, nb.PhysicsParams(G=1.5, softening=12.0), -1.5 * 10 / 13),
        (nb.YUKAWA, nb.PhysicsParams(screening_length=2.0), -10 * np.exp(-2.5) / 5),
        (nb.POWER_LAW, nb.PhysicsParams(power_index=2.0), -10 / 25),
    ],
)
def test_pair_energies_exact(potential, params, expected):
    energy = float(energy_fn(PAIR, MASS, params, potential))
    assert energy == pytest.approx(expected, rel=1e-15)


def test_energy_is_invariant_under_translation_rotation_and_permutation(key):
    state = nb.plummer(key, 64)  # n shared with other tests: one compilation
    params = nb.PhysicsParams(softening=0.02)
    energy = energy_fn(state.position, state.mass, params, nb.NEWTONIAN)
    angle = 0.7
    rotation = jnp.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    moved = state.position @ rotation.T + jnp.array([5.0, -3.0, 1.0])
    order = np.random.default_rng(0).permutation(64)
    # Exact symmetries; only round-off of O(n^2) terms of relative size 1e-16 remains.
    for position, mass in ((moved, state.mass), (state.position[order], state.mass[order])):
        assert float(energy_fn(position, mass, params, nb.NEWTONIAN)) == pytest.approx(float(energy), rel=1e-13)


def test_self_pairs_are_masked_before_the_square_root():
    s, off_diagonal = softened_distance_matrix(PAIR, 0.0)
    np.testing.assert_array_equal(np.diag(np.asarray(s)), [1.0, 1.0])
    assert not bool(off_diagonal[0, 0]) and bool(off_diagonal[0, 1])
    gradient = jax.jit(jax.grad(lambda x: jnp.sum(softened_distance_matrix(x, 0.0)[0])))(PAIR)
    assert np.isfinite(np.asarray(gradient)).all()


def test_user_pair_potential_and_registry():
    harmonic = nb.pair_potential(lambda s, p: 0.5 * p.G * s**2, name="harmonic", description="springs")
    assert get_potential(harmonic) is harmonic and harmonic.description == "springs"
    energy = potential_energy_from_positions(PAIR, MASS, nb.PhysicsParams(G=2.0), harmonic)
    assert float(energy) == pytest.approx(0.5 * 2.0 * 10 * 25, rel=1e-15)
    # Springs pull the pair together with F = G m1 m2 r.
    forces = nb.forces_autodiff(PAIR, MASS, nb.PhysicsParams(G=2.0), harmonic)
    np.testing.assert_allclose(forces[0], 2.0 * 10 * np.array([3.0, 4.0, 0.0]), rtol=1e-14)
    assert set(nb.POTENTIALS) == {"newtonian", "yukawa", "power_law"}
    with pytest.raises(ValueError, match="pair_energy must be callable"):
        nb.pair_potential(3.0)
    with pytest.raises(ValueError, match="unknown potential 'coulomb'"):
        get_potential("coulomb")
