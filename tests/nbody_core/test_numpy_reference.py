"""The NumPy baseline agrees with itself and with the JAX kernels."""

import numpy as np
import pytest

from nbody_core import PhysicsParams, acceleration_analytic
from nbody_core.lab.numpy_reference import accelerations_loop, accelerations_vectorized, potential_energy_loop


@pytest.fixture
def system():
    rng = np.random.default_rng(7)
    return rng.normal(size=(17, 3)), rng.uniform(0.5, 2.0, size=17)


@pytest.mark.parametrize("softening", [0.0, 0.05])
def test_loop_equals_vectorized_equals_jax(system, softening):
    position, mass = system
    loop = accelerations_loop(position, mass, G=2.5, softening=softening)
    vectorized = accelerations_vectorized(position, mass, G=2.5, softening=softening)
    jax_analytic = np.asarray(acceleration_analytic(position, mass, PhysicsParams(G=2.5, softening=softening)))
    scale = np.linalg.norm(loop)
    # Same float64 sum in a different order: agreement to a few ulps of the largest term.
    assert np.linalg.norm(vectorized - loop) / scale < 1e-13
    assert np.linalg.norm(jax_analytic - loop) / scale < 1e-13


def test_two_body_newton(system):
    # Two unit masses a distance 2 apart: |a| = G m / r^2 = 1/4 each, pointing at each other.
    position = np.array([[-1.0, 0, 0], [1.0, 0, 0]])
    expected = np.array([[0.25, 0, 0], [-0.25, 0, 0]])
    np.testing.assert_allclose(accelerations_loop(position, [1.0, 1.0]), expected, rtol=1e-15)
    np.testing.assert_allclose(accelerations_vectorized(position, [1.0, 1.0]), expected, rtol=1e-15)
    assert potential_energy_loop(position, [1.0, 1.0]) == pytest.approx(-0.5, rel=1e-15)


def test_momentum_balance(system):
    # Newton's third law: sum_i m_i a_i = 0 up to round-off of O(n) terms of size |m a|.
    position, mass = system
    total = (mass[:, None] * accelerations_loop(position, mass, softening=0.01)).sum(axis=0)
    assert np.abs(total).max() < 1e-12


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"position must have shape \[n, 3\]"):
        accelerations_loop(np.zeros((3, 2)), np.ones(3))
    with pytest.raises(ValueError, match=r"mass must have shape \[3\]"):
        accelerations_vectorized(np.zeros((3, 3)), np.ones(2))
