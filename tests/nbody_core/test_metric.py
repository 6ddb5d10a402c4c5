"""The Laplace metric by whitening: draws and recorded leapfrog paths come back in theta."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nbody_core.infer import hmc, inference
from nbody_core.infer.metric import Whitening, theta_info, theta_result, whitening_for

SMALL = dict(num_obs=4, noise=0.02)  # as tests/nbody_core/test_inference.py: one compile shared


@pytest.fixture(scope="module")
def problem():
    return inference.make_problem("triple", **SMALL)


@pytest.fixture(scope="module")
def whitened_run(problem):
    starts = inference.initial_positions(problem, jax.random.key(1), 2, method="prior")
    whitening = whitening_for(problem, "laplace", starts)
    result = hmc.sample(jax.random.key(2), whitening.logdensity_fn(problem.logdensity_fn), whitening.to_u(starts),
                        num_samples=6, num_warmup=0, num_integration_steps=3, step_size=0.3)
    return whitening, starts, result


def test_diagonal_is_no_whitening_and_unknown_metrics_are_refused(problem):
    starts = jnp.asarray(np.tile(problem.truth, (2, 1)))
    assert whitening_for(problem, "diagonal", starts) is None
    with pytest.raises(ValueError, match=r"unknown metric 'dense'; choose one of \['laplace', 'diagonal'\]"):
        whitening_for(problem, "dense", starts)


def test_whitening_round_trips_and_centres_on_the_best_start(problem, whitened_run):
    whitening, starts, _ = whitened_run
    lp = np.asarray(jax.vmap(problem.logdensity_fn)(starts))
    np.testing.assert_array_equal(np.asarray(whitening.center), np.asarray(starts)[np.argmax(lp)])
    scale = np.asarray(whitening.scale)
    assert np.allclose(scale, np.tril(scale)) and np.all(np.diag(scale) > 0)  # a Cholesky factor
    u = np.random.default_rng(0).normal(size=(2, 5, 3))
    # Round-off of a 3x3 triangular solve and product (a few float64 epsilons of |u| ~ 1).
    np.testing.assert_allclose(np.asarray(whitening.to_u(whitening.to_theta(u))), u, rtol=0, atol=1e-12)
    # scale scale^T is the Laplace covariance: the inverse of the Gauss-Newton precision
    # J^T J / noise^2 + prior precision at the centre (J: Jacobian of the predicted positions).
    jacobian = np.asarray(jax.jacrev(lambda t: problem.predict_fn(t).ravel())(whitening.center)) / problem.noise
    precision = jacobian.T @ jacobian + np.diag(1.0 / np.asarray(problem.prior_std) ** 2)
    # float64 round-off of inverting a 3x3 precision and its Cholesky factor.
    np.testing.assert_allclose(scale @ scale.T @ precision, np.eye(3), atol=1e-9)


def test_recorded_paths_and_gradients_come_back_in_theta(problem, whitened_run):
    whitening, _, result = whitened_run
    back = theta_result(whitening, result)
    info = back.info
    # Positions: theta = center + scale u, the log density unchanged along the path.
    path = np.asarray(info.path_position)
    np.testing.assert_allclose(path, np.asarray(whitening.to_theta(result.info.path_position)))
    lp = np.asarray(jax.jit(jax.vmap(jax.vmap(jax.vmap(problem.logdensity_fn))))(jnp.asarray(path)))
    np.testing.assert_allclose(lp, np.asarray(info.path_logdensity), rtol=1e-10)
    # Gradients: the recorded ones equal the theta-gradient of the log density at every path point
    # (chain rule through theta = center + scale u; float64 round-off of a 3x3 solve).
    exact = np.asarray(jax.jit(jax.vmap(jax.vmap(jax.vmap(jax.grad(problem.logdensity_fn)))))(jnp.asarray(path)))
    np.testing.assert_allclose(np.asarray(info.path_gradient), exact, rtol=1e-8, atol=1e-8 * np.abs(exact).max())
    # Draws, and the chain moves to its path's end iff accepted, in theta too.
    accepted = np.asarray(info.is_accepted)[..., None]
    np.testing.assert_allclose(np.asarray(back.position), np.where(accepted, path[..., -1, :], path[..., 0, :]))
    # Energies and acceptances are the same in both coordinates.
    np.testing.assert_array_equal(np.asarray(info.path_energy), np.asarray(result.info.path_energy))
    assert theta_info(None, result.info) is result.info and theta_result(None, result) is result


def test_whitening_is_a_pytree_leaf_pair():
    w = Whitening(jnp.zeros(2), jnp.eye(2))
    np.testing.assert_array_equal(np.asarray(w.to_theta(jnp.ones(2))), [1.0, 1.0])
    np.testing.assert_array_equal(np.asarray(w.covector_to_theta(jnp.ones((3, 2)))), np.ones((3, 2)))
