"""Forces two ways (autodiff of U and hand-coded) agree; gradients are never NaN."""

import jax
from jax.test_util import check_grads
import jax.numpy as jnp
import numpy as np
import pytest

import nbody_core as nb
from nbody_core.physics.forces import acceleration_function
from nbody_core.physics.potentials import potential_energy_from_positions


# Jitted once per shape: eager JAX compiles every primitive separately, which dominates
# the runtime of small tests.
forces_autodiff = jax.jit(nb.forces_autodiff, static_argnums=3)
forces_analytic = jax.jit(nb.forces_analytic)
energy_jit = jax.jit(potential_energy_from_positions, static_argnums=3)


def relative_norm_difference(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("name", list(nb.PRESETS))
def test_autodiff_equals_analytic_on_every_preset(name, key):
    preset = nb.get_preset(name)
    state = preset.build(key, preset.default_num_bodies)
    for params in (preset.params, preset.params._replace(softening=0.0)):
        autodiff = forces_autodiff(state.position, state.mass, params)
        analytic = forces_analytic(state.position, state.mass, params)
        # Two float64 evaluations of the same sum in different orders: they differ by
        # round-off, ~1e-16 per term times the cancellation in sum_j F_ij (measured <= 3e-15
        # on these presets); 1e-12 is the bar.
        assert relative_norm_difference(autodiff, analytic) < 1e-12, (name, params.softening)


def test_newton_third_law_total_force_vanishes(key):
    state = nb.plummer(key, 256)  # same n as the preset: shares its compilation
    for method in ("autodiff", "analytic"):
        acceleration = jax.jit(acceleration_function(method))(state.position, state.mass, nb.PhysicsParams())
        total = jnp.sum(state.mass[:, None] * acceleration, axis=0)
        typical = jnp.sum(state.mass[:, None] * jnp.abs(acceleration), axis=0)
        # sum_i F_i = 0 exactly in exact arithmetic; round-off ~ 1e-16 x n of the typical force (x10 margin).
        assert float(jnp.max(jnp.abs(total) / typical)) < 256 * 1e-16 * 10


def test_no_nan_gradient_at_self_pairs_and_zero_softening():
    state = nb.figure_eight()
    params = nb.PhysicsParams(softening=0.0)
    grad_position = jax.jit(jax.grad(potential_energy_from_positions))(state.position, state.mass, params)
    grad_params = jax.jit(jax.grad(potential_energy_from_positions, argnums=2))(
        state.position, state.mass, params
    )
    assert np.isfinite(np.asarray(grad_position)).all()
    assert all(np.isfinite(float(g)) for g in grad_params)
    # Second derivatives too (HMC and sensitivities differentiate through forces).
    hessian = jax.jit(jax.hessian(potential_energy_from_positions))(state.position, state.mass, params)
    assert np.isfinite(np.asarray(hessian)).all()


def test_coincident_bodies_with_softening_feel_no_force():
    # Two bodies on top of each other with eps > 0: the softened force is exactly zero.
    position = jnp.array([[0.3, 0.1, 0.0], [0.3, 0.1, 0.0], [1.0, 0.0, 0.0]])
    mass = jnp.array([1.0, 2.0, 3.0])
    params = nb.PhysicsParams(softening=0.1)
    autodiff = forces_autodiff(position, mass, params)
    analytic = forces_analytic(position, mass, params)
    assert np.isfinite(np.asarray(autodiff)).all()
    np.testing.assert_allclose(autodiff, analytic, rtol=1e-13, atol=1e-15)


def test_check_grads_on_potential():
    rng = np.random.default_rng(3)
    position = jnp.asarray(rng.normal(size=(5, 3)))
    mass = jnp.asarray(rng.uniform(0.5, 1.5, 5))
    # eps = 0 is the delicate case (self-pairs masked before the root): second order, both
    # modes. eps > 0 changes only a constant under the root: first order suffices.
    for softening, order in ((0.0, 2), (0.2, 1)):
        params = nb.PhysicsParams(softening=softening)
        check_grads(
            jax.jit(lambda x, m: potential_energy_from_positions(x, m, params)),
            (position, mass), order=order, modes=("fwd", "rev"),
        )


def _central_difference_forces(position, mass, params, potential, h=1e-5):
    energy = lambda x: float(energy_jit(jnp.asarray(x), mass, params, potential))  # noqa: E731
    position = np.asarray(position)
    forces = np.zeros_like(position)
    for index in np.ndindex(position.shape):
        plus, minus = position.copy(), position.copy()
        plus[index] += h
        minus[index] -= h
        forces[index] = -(energy(plus) - energy(minus)) / (2 * h)
    return forces


SOFT_CORE = nb.pair_potential(lambda s, p: -p.G / jnp.sqrt(s**2 + 1.0), name="soft_core")


@pytest.mark.parametrize(
    "potential, params",
    [
        (nb.YUKAWA, nb.PhysicsParams(screening_length=0.7, softening=0.05)),
        (nb.POWER_LAW, nb.PhysicsParams(power_index=1.5, softening=0.05)),
        (nb.POWER_LAW, nb.PhysicsParams(power_index=0.5, G=2.0)),
        (SOFT_CORE, nb.PhysicsParams()),
    ],
    ids=["yukawa", "power_law_1.5", "power_law_0.5", "user_soft_core"],
)
def test_alternative_potentials_match_finite_differences(potential, params):
    rng = np.random.default_rng(11)
    position = jnp.asarray(rng.normal(size=(6, 3)))
    mass = jnp.asarray(rng.uniform(0.5, 1.5, 6))
    autodiff = forces_autodiff(position, mass, params, potential)
    numeric = _central_difference_forces(position, mass, params, potential)
    # Central differences with h = 1e-5: truncation ~h^2 |U'''| ~ 1e-10, round-off
    # ~1e-16 |U| / h ~ 1e-11, relative to forces of order 1.
    assert relative_norm_difference(numeric, autodiff) < 1e-8
    # The acceleration interface divides by the masses.
    acceleration = jax.jit(acceleration_function("autodiff", potential))(position, mass, params)
    np.testing.assert_allclose(acceleration * mass[:, None], autodiff, rtol=1e-14)


def test_limits_of_alternative_potentials_are_newtonian(key):
    state = nb.plummer(key, 64)
    newtonian = forces_analytic(state.position, state.mass, nb.PhysicsParams(softening=0.01))
    power_one = forces_autodiff(
        state.position, state.mass, nb.PhysicsParams(softening=0.01, power_index=1.0), nb.POWER_LAW
    )
    # s**1 is s: identical up to round-off.
    assert relative_norm_difference(power_one, newtonian) < 1e-12
    yukawa_far = forces_autodiff(
        state.position, state.mass, nb.PhysicsParams(softening=0.01, screening_length=1e6), nb.YUKAWA
    )
    # exp(-s/lambda) = 1 - s/lambda + ...: the force changes at O(s / lambda)^2 ~ 1e-11.
    assert relative_norm_difference(yukawa_far, newtonian) < 1e-9


def test_method_validation():
    with pytest.raises(ValueError, match="Newtonian gravity only"):
        acceleration_function("analytic", "yukawa")
    with pytest.raises(ValueError, match="unknown force method 'fast'"):
        acceleration_function("fast")
    with pytest.raises(ValueError, match="unknown potential 'coulomb'"):
        acceleration_function("autodiff", "coulomb")


def test_a_method_that_selects_another_is_one_record(request):
    # How an "auto" method plugs in: one record whose kernel picks a registered kernel by a
    # static property of the system (n here; shapes are static when a kernel is traced).
    from nbody_core.physics.forces import FORCE_METHODS, ForceMethod

    chosen = []

    def select(position, mass, params, potential):
        name = "analytic" if position.shape[0] <= 8 else "tiled"
        chosen.append(name)
        return FORCE_METHODS[name].kernel(position, mass, params, potential)

    FORCE_METHODS.register("select_test", ForceMethod("select_test", "picks by n", select))
    request.addfinalizer(lambda: FORCE_METHODS.unregister("select_test"))
    state = nb.figure_eight()
    picked = nb.simulate(state, dt=1e-2, num_steps=10, forces="select_test")
    reference = nb.simulate(state, dt=1e-2, num_steps=10, forces="analytic")
    np.testing.assert_array_equal(picked.position, reference.position)
    assert chosen and set(chosen) == {"analytic"}
    # Equal choices are equal records: a static jit argument that compiles once.
    assert acceleration_function("select_test") == acceleration_function("select_test", "newtonian")
