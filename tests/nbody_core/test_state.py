"""ParticleState / PhysicsParams: validation messages, dtypes, pytree behaviour."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nbody_core as nb


def test_make_state_pads_2d_and_sets_dtype():
    state = nb.make_state([[0, 0], [1, 0]], [[0, 1], [0, -1]], [1, 2], time=0.5)
    assert state.position.shape == (2, 3) and state.dtype == jnp.float64
    assert state.num_bodies == 2 and float(state.time) == 0.5
    single = nb.make_state([[0, 0, 0], [1, 0, 0]], np.zeros((2, 3)), [1, 1], dtype=jnp.float32)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(single))
    double = nb.cast_state(single, jnp.float64)
    assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(double))


def test_units_are_static_metadata_not_a_leaf():
    state = nb.make_state([[0, 0, 0], [1, 0, 0]], np.zeros((2, 3)), [1, 1], units="au_msun_yr")
    assert len(jax.tree.leaves(state)) == 4 and state.units == "au_msun_yr"
    # jit, vmap and _replace keep the unit system; a new one recompiles (it is static).
    moved = jax.jit(lambda s: s._replace(position=s.position + 1))(state)
    assert moved.units == "au_msun_yr"
    batch = jax.tree.map(lambda x: jnp.stack([x, x]), state)
    assert jax.vmap(lambda s: s)(batch).units == "au_msun_yr"
    assert nb.make_state([[0, 0, 0], [1, 0, 0]], np.zeros((2, 3)), [1, 1]).units == "nbody"
    with pytest.raises(ValueError, match="unknown unit system 'parsecs'"):
        nb.make_state([[0, 0, 0], [1, 0, 0]], np.zeros((2, 3)), [1, 1], units="parsecs")


@pytest.mark.parametrize(
    "position, velocity, mass, message",
    [
        (np.zeros((2, 4)), np.zeros((2, 4)), [1, 1], r"position must have shape \[n, 3\], got \(2, 4\)"),
        (np.zeros((2, 3)), np.zeros((3, 3)), [1, 1], "velocity shape"),
        (np.zeros((2, 3)), np.zeros((2, 3)), [1, 1, 1], r"mass must have shape \[2\]"),
        (np.zeros((1, 3)), np.zeros((1, 3)), [1], "at least 2 bodies, got 1"),
        ([[0, 0, 0], [np.nan, 0, 0]], np.zeros((2, 3)), [1, 1], "position contains a non-finite value .* body 1"),
        (np.zeros((2, 3)), [[0, 0, 0], [0, np.inf, 0]], [1, 1], "velocity contains a non-finite value"),
        (np.zeros((2, 3)), np.zeros((2, 3)), [1, -1], "mass must be positive, body 1 has mass -1.0"),
    ],
)
def test_make_state_rejects(position, velocity, mass, message):
    with pytest.raises(ValueError, match=message):
        nb.make_state(position, velocity, mass)


def test_state_and_params_are_pytrees_traced_by_jit():
    state = nb.figure_eight()
    params = nb.PhysicsParams(G=2.0, softening=0.1)
    leaves = jax.tree.leaves((state, params))
    assert len(leaves) == 8
    doubled = jax.jit(lambda s, p: s._replace(mass=s.mass * p.G))(state, params)
    np.testing.assert_allclose(doubled.mass, 2.0 * state.mass)
    single = params.astype(jnp.float32)
    assert all(jnp.asarray(v).dtype == jnp.float32 for v in single)
