"""Fast tiled kernels equal the reference kernels (forces.py / potentials.py).

Tolerances: a float64 sum of n terms of size <= S differs between two summation orders by
at most ~n * 2**-52 * S; with n <= 200 that is < 5e-14 * S, so 1e-12 relative to the largest
term leaves a margin without hiding a real error (a wrong mask or factor is O(1)).
float32 kernels are compared with the float64 reference at 1e-4 relative: float32 round-off
(2**-23 ~ 1.2e-7) times the same n-term summation bound (~200) is 2.4e-5.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nbody_core import PhysicsParams, cast_state, plummer, simulate
from nbody_core.physics.forces import (
    FORCE_METHODS,
    acceleration_analytic,
    acceleration_autodiff,
    acceleration_function,
)
from nbody_core.physics.kernels import (
    acceleration_autodiff_tiled,
    acceleration_tiled,
    acceleration_tiled_custom_vjp,
    default_block_size,
    force_block_size,
    potential_energy_tiled,
)
from nbody_core.physics.potentials import potential_energy_from_positions

PARAMS = PhysicsParams(G=1.3, softening=0.05, screening_length=0.7, power_index=1.5)
F64_RTOL = 1e-12
F32_RTOL = 1e-4


def _system(key, n, dtype=jnp.float64):
    state = plummer(key, n)
    # Unequal masses, so a swapped i/j mass index would show.
    mass = state.mass * jnp.linspace(0.5, 1.5, n)
    return state.position.astype(dtype), mass.astype(dtype)


def _assert_close(actual, expected, rtol):
    scale = float(jnp.max(jnp.abs(expected)))
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected), rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("n,block_size", [(2, 16), (3, 2), (33, 8), (130, 32)])
def test_tiled_equals_reference_float64(key, n, block_size):
    position, mass = _system(key, n)
    expected = acceleration_analytic(position, mass, PARAMS)
    actual = jax.jit(acceleration_tiled, static_argnames="block_size")(
        position, mass, PARAMS, block_size=block_size
    )
    assert actual.shape == (n, 3) and actual.dtype == jnp.float64
    _assert_close(actual, expected, F64_RTOL)


@pytest.mark.parametrize("n", [3, 16, 64, 65, 203])
def test_tiled_default_tiling_equals_reference_float64(key, n):
    # The defaults the "auto" method runs: one tile up to 16 float64 bodies, 16-row tiles up
    # to 64, then 4-row tiles (ragged last tile at n = 65 and 203).
    position, mass = _system(key, n)
    expected = acceleration_analytic(position, mass, PARAMS)
    for kernel in (acceleration_tiled, acceleration_tiled_custom_vjp):
        _assert_close(jax.jit(kernel)(position, mass, PARAMS), expected, F64_RTOL)
    assert [force_block_size(jnp.float64, m) for m in (16, 64, 65)] == [16, 16, 4]


@pytest.mark.parametrize("n", [16, 40, 97])
def test_custom_vjp_default_reverse_tiling_equals_reference(key, n):
    # Reverse pass with the defaults: one tile up to 32 float64 bodies (n = 16), tiles of
    # force_block_size rows above (n = 40, 97: ragged). Same 1e-12 bound as the forward.
    position, mass = _system(key, n)
    weights = jax.random.normal(key, (n, 3))

    def loss(kernel, position, mass, softening):
        return jnp.sum(weights * kernel(position, mass, PARAMS._replace(softening=softening)))

    expected = jax.grad(lambda *a: loss(acceleration_analytic, *a), argnums=(0, 1, 2))(position, mass, 0.05)
    actual = jax.jit(jax.grad(lambda *a: loss(acceleration_tiled_custom_vjp, *a), argnums=(0, 1, 2)))(
        position, mass, 0.05
    )
    for a, e in zip(actual, expected):
        _assert_close(a, e, F64_RTOL)


def test_tiled_float32_matches_float64_reference(key):
    position, mass = _system(key, 200)
    expected = acceleration_analytic(position, mass, PARAMS)
    actual = jax.jit(acceleration_tiled)(
        position.astype(jnp.float32), mass.astype(jnp.float32), PARAMS.astype(jnp.float32)
    )
    assert actual.dtype == jnp.float32
    _assert_close(actual, expected, F32_RTOL)
    assert 200 % default_block_size(jnp.float32) != 0  # a ragged last tile is exercised


def test_two_body_closed_form():
    position = jnp.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]])
    mass = jnp.array([2.0, 5.0])
    params = PhysicsParams(G=1.0, softening=0.5)
    s3 = (25.0 + 0.25) ** 1.5
    expected = jnp.array([[3.0, 4.0, 0.0], [-3.0, -4.0, 0.0]]) * jnp.array([5.0, 2.0])[:, None] / s3
    np.testing.assert_allclose(acceleration_tiled(position, mass, params), expected, rtol=1e-15)


def test_coincident_bodies_with_softening(key):
    position, mass = _system(key, 20)
    position = position.at[7].set(position[3])  # two bodies at the same point
    expected = acceleration_analytic(position, mass, PARAMS)
    assert bool(jnp.all(jnp.isfinite(expected)))
    for block_size in (4, 32):
        _assert_close(acceleration_tiled(position, mass, PARAMS, block_size=block_size), expected, F64_RTOL)
        _assert_close(
            acceleration_autodiff_tiled(position, mass, PARAMS, block_size=block_size), expected, F64_RTOL
        )


def test_coincident_bodies_without_softening_stay_finite(key):
    # The reference gives 0 * inf = NaN here; the tiled kernel drops a pair at zero distance
    # (its direction is undefined) and keeps every other interaction exact.
    position, mass = _system(key, 12)
    position = position.at[5].set(position[2])
    params = PhysicsParams(G=1.0, softening=0.0)
    actual = acceleration_tiled(position, mass, params, block_size=4)
    expected = acceleration_analytic(position, mass, params)
    rest = np.array([i for i in range(12) if i not in (2, 5)])
    assert bool(jnp.all(jnp.isnan(expected[2]))) and bool(jnp.all(jnp.isfinite(expected[rest])))
    _assert_close(actual[rest], expected[rest], F64_RTOL)
    for body, partner in ((2, 5), (5, 2)):  # each feels everyone but its twin
        keep = np.array([i for i in range(12) if i != partner])
        alone = acceleration_analytic(position[keep], mass[keep], params)
        _assert_close(actual[body], alone[list(keep).index(body)], F64_RTOL)
    grad = jax.grad(lambda x: jnp.sum(acceleration_tiled(x, mass, params, block_size=4) ** 2))(position)
    assert bool(jnp.all(jnp.isfinite(grad)))


@pytest.mark.parametrize("potential", ["newtonian", "yukawa", "power_law"])
@pytest.mark.parametrize("n,block_size", [(2, 16), (37, 16)])
def test_autodiff_tiled_equals_reference_autodiff(key, potential, n, block_size):
    position, mass = _system(key, n)
    expected = acceleration_autodiff(position, mass, PARAMS, potential)
    actual = acceleration_autodiff_tiled(position, mass, PARAMS, potential, block_size=block_size)
    _assert_close(actual, expected, F64_RTOL)


def test_autodiff_tiled_float32(key):
    position, mass = _system(key, 100)
    expected = acceleration_autodiff(position, mass, PARAMS, "yukawa")
    actual = acceleration_autodiff_tiled(
        position.astype(jnp.float32), mass.astype(jnp.float32), PARAMS.astype(jnp.float32), "yukawa"
    )
    _assert_close(actual, expected, F32_RTOL)


@pytest.mark.parametrize("potential", ["newtonian", "yukawa"])
@pytest.mark.parametrize("n,block_size", [(2, 16), (50, 7)])
def test_potential_energy_tiled_equals_reference(key, potential, n, block_size):
    position, mass = _system(key, n)
    position = position.at[4].set(position[1])  # a coincident pair, softened
    expected = potential_energy_from_positions(position, mass, PARAMS, potential)
    actual = potential_energy_tiled(position, mass, PARAMS, potential, block_size=block_size)
    # Energy sums n**2 / 2 terms of one sign: relative round-off ~ n * 2**-52.
    np.testing.assert_allclose(actual, expected, rtol=1e-13)


def test_gradients_through_tiled_equal_reference(key):
    position, mass = _system(key, 21)
    weights = jax.random.normal(key, (21, 3))

    def loss(kernel, position, mass, softening):
        params = PARAMS._replace(softening=softening)
        return jnp.sum(weights * kernel(position, mass, params))

    tiled = lambda *a: loss(lambda x, m, p: acceleration_tiled(x, m, p, block_size=8), *a)
    autodiff_tiled = lambda *a: loss(lambda x, m, p: acceleration_autodiff_tiled(x, m, p, block_size=8), *a)
    reference = lambda *a: loss(acceleration_analytic, *a)
    custom_vjp = lambda *a: loss(lambda x, m, p: acceleration_tiled_custom_vjp(x, m, p, block_size=8), *a)
    expected = jax.grad(reference, argnums=(0, 1, 2))(position, mass, 0.05)
    for fn in (tiled, autodiff_tiled, custom_vjp):
        actual = jax.grad(fn, argnums=(0, 1, 2))(position, mass, 0.05)
        for a, e in zip(actual, expected):
            _assert_close(a, e, F64_RTOL)
    # Positions alone (the mass and softening cotangents are skipped as symbolic zeros).
    _assert_close(jax.grad(custom_vjp)(position, mass, 0.05), expected[0], F64_RTOL)


@pytest.mark.parametrize("n,block_size", [(2, 16), (13, 4)])
def test_custom_vjp_kernel_gradients_in_G_and_softening(key, n, block_size):
    position, mass = _system(key, n)
    weights = jax.random.normal(key, (n, 3))

    def loss(kernel, G, softening):
        params = PhysicsParams(G=G, softening=softening)
        return jnp.sum(weights * kernel(position, mass, params))

    kernel = lambda x, m, p: acceleration_tiled_custom_vjp(x, m, p, block_size=block_size)
    np.testing.assert_array_equal(  # forward: the very same kernel
        kernel(position, mass, PARAMS), acceleration_tiled(position, mass, PARAMS, block_size=block_size)
    )
    expected = jax.grad(lambda *a: loss(acceleration_analytic, *a), argnums=(0, 1))(1.3, 0.05)
    actual = jax.grad(lambda *a: loss(kernel, *a), argnums=(0, 1))(1.3, 0.05)
    np.testing.assert_allclose(actual, expected, rtol=1e-12)


def test_gradient_through_simulation_tiled_equals_analytic(key):
    state = plummer(key, 18)

    def final_x(method, position):
        traj = simulate(
            state._replace(position=position), dt=0.01, num_steps=20, save_every=20,
            params=PhysicsParams(softening=0.05), forces=method,
        )
        return jnp.sum(traj.position[-1, :, 0])

    expected = jax.grad(lambda x: final_x("analytic", x))(state.position)
    for method in ("tiled", "autodiff_tiled", "tiled_custom_vjp"):
        _assert_close(jax.grad(lambda x: final_x(method, x))(state.position), expected, 1e-11)


def test_registered_methods_and_errors(key):
    assert {"tiled", "autodiff_tiled", "tiled_custom_vjp"} <= set(FORCE_METHODS)
    position, mass = _system(key, 9)
    _assert_close(
        acceleration_function("autodiff_tiled", "yukawa")(position, mass, PARAMS),
        acceleration_autodiff(position, mass, PARAMS, "yukawa"),
        F64_RTOL,
    )
    for method in ("tiled", "tiled_custom_vjp"):
        with pytest.raises(ValueError, match="Newtonian"):
            acceleration_function(method, "yukawa")


def test_simulate_float32_with_tiled_kernel(key):
    state = cast_state(plummer(key, 40), jnp.float32)
    traj = simulate(state, dt=0.01, num_steps=10, params=PhysicsParams(softening=0.05), forces="tiled")
    ref = simulate(
        plummer(key, 40), dt=0.01, num_steps=10, params=PhysicsParams(softening=0.05), forces="analytic"
    )
    assert traj.position.dtype == jnp.float32
    _assert_close(traj.position[-1], ref.position[-1], F32_RTOL)


def test_memory_is_linear_in_n():
    # XLA's own accounting of the compiled kernel's scratch memory: the reference allocates
    # [n, n, 3] temporaries, the tiled kernel [block_size, n] ones.
    n = 2048
    position = jax.ShapeDtypeStruct((n, 3), jnp.float64)
    mass = jax.ShapeDtypeStruct((n,), jnp.float64)
    params = PhysicsParams(*(jax.ShapeDtypeStruct((), jnp.float64) for _ in range(4)))

    def temp_bytes(fn):
        return jax.jit(fn).lower(position, mass, params).compile().memory_analysis().temp_size_in_bytes

    pair_matrix = n * n * 8
    assert temp_bytes(acceleration_analytic) >= pair_matrix  # the O(n**2) reference
    assert temp_bytes(acceleration_tiled) < pair_matrix / 16
    assert temp_bytes(acceleration_autodiff_tiled) < pair_matrix / 16
    assert temp_bytes(lambda x, m, p: potential_energy_tiled(x, m, p)) < pair_matrix / 16


@pytest.mark.parametrize("softening", [0.0, 0.05])
@pytest.mark.parametrize("block_size", [None, 4])
def test_forward_mode_tiled_kernels_equal_reference(key, softening, block_size):
    # jvp (forward mode) with tangents in position, mass and softening. At softening 0 the
    # self-pair has s = 0: a mask to inf there gave values and gradients right but a jvp of
    # 0 * inf = NaN; the reference masks to a finite value (tolerance: module docstring).
    position, mass = _system(key, 13)
    k1, k2 = jax.random.split(key)
    tangents = (jax.random.normal(k1, position.shape), jax.random.normal(k2, mass.shape), 0.3)

    def jvp(kernel):
        fn = lambda x, m, eps: kernel(x, m, PARAMS._replace(softening=eps))
        return jax.jvp(fn, (position, mass, softening), tangents)

    value, expected = jvp(acceleration_analytic)
    for kernel in (acceleration_tiled, acceleration_autodiff_tiled, acceleration_tiled_custom_vjp):
        actual_value, actual = jvp(lambda x, m, p: kernel(x, m, p, block_size=block_size))
        assert np.isfinite(np.asarray(actual)).all()
        _assert_close(actual_value, value, F64_RTOL)
        _assert_close(actual, expected, F64_RTOL)


@pytest.mark.parametrize("n,block_size", [(3, None), (13, 4)])
def test_custom_rule_all_orders_equal_reference(key, n, block_size):
    # The custom_jvp rule of tiled_custom_vjp: forward mode, reverse mode (JAX's transpose of
    # the rule) in every argument, and a second derivative (forward over reverse), each equal
    # to autodiff of the reference kernel (tolerance: module docstring). Block size 4 runs the
    # tangent pass in tiles (lax.map), n = 3 as one tile; symbolic-zero tangents (positions
    # only) skip the mass and softening terms. Jitted: op-by-op dispatch is slower here.
    position, mass = _system(key, n)
    weights = jax.random.normal(key, (n, 3))

    def loss(kernel, x, m, G, eps):
        return jnp.sum(weights * kernel(x, m, PhysicsParams(G=G, softening=eps)))

    custom = lambda x, m, p: acceleration_tiled_custom_vjp(x, m, p, block_size=block_size)
    args = (position, mass, 1.3, 0.05)
    argnums = (0, 1, 2, 3)

    def derivatives(kernel_name, *args):
        kernel = custom if kernel_name == "custom" else acceleration_analytic
        x, m = args[:2]
        return (jax.grad(lambda *a: loss(kernel, *a), argnums)(*args),
                jax.grad(lambda *a: loss(kernel, *a))(*args),
                jax.hessian(lambda x: loss(kernel, x, *args[1:]))(x),
                jax.jacfwd(lambda m: kernel(x, m, PARAMS))(m))

    derivatives = jax.jit(derivatives, static_argnums=0)
    for actual, expected in zip(derivatives("custom", *args), derivatives("analytic", *args)):
        for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
            assert np.isfinite(np.asarray(a)).all()
            _assert_close(a, e, F64_RTOL)
