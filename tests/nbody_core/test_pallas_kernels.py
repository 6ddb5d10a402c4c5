"""The Pallas kernels equal the reference kernels (run in Pallas's interpreter on the CPU).

Tolerances: a float64 sum of n terms of size <= S differs between two summation orders by at
most ~n * 2**-52 * S; with n <= 64 that is < 1.5e-14 * S, so 1e-12 relative to the largest
value leaves a margin without hiding a real error (a wrong mask, sign or factor is O(1)).
float32 kernels are compared with the float64 reference at 1e-4 relative: float32 round-off
(2**-23 ~ 1.2e-7) times the same n-term bound, plus rsqrt's few ulps, is < 1e-5.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nbody_core import PhysicsParams, plummer
from nbody_core.physics.forces import acceleration_analytic
from nbody_core.physics.pallas_kernels import PallasConfig, acceleration_pallas, potential_energy_pallas
from nbody_core.physics.potentials import potential_energy_from_positions

PARAMS = PhysicsParams(G=1.3, softening=0.05)
F64_RTOL = 1e-12
F32_RTOL = 1e-4
# Small tiles: several target blocks, several source blocks and splits even at n = 37.
SMALL = PallasConfig(block_target=8, block_source=16, interpret=True)


def _system(key, n, dtype=jnp.float64):
    state = plummer(key, n)
    # Unequal masses, so a swapped i/j mass index would show.
    mass = state.mass * jnp.linspace(0.5, 1.5, n)
    return state.position.astype(dtype), mass.astype(dtype)


def _assert_close(actual, expected, rtol):
    scale = float(jnp.max(jnp.abs(expected)))
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected),
                               rtol=0, atol=rtol * scale)


def _pallas(config=SMALL):
    return jax.jit(lambda x, m, p: acceleration_pallas(x, m, p, config=config))


@pytest.mark.parametrize("n,config", [
    (2, SMALL),
    (37, SMALL),  # not a multiple of either tile: 11 zero-mass padding bodies
    (64, PallasConfig(block_target=16, block_source=8, num_splits=2, interpret=True)),
    (37, None),  # the dtype's default tiles; the interpreter is picked automatically off GPU
])
def test_acceleration_equals_reference_float64(key, n, config):
    position, mass = _system(key, n)
    actual = _pallas(config)(position, mass, PARAMS)
    assert actual.shape == (n, 3) and actual.dtype == jnp.float64
    _assert_close(actual, acceleration_analytic(position, mass, PARAMS), F64_RTOL)


def test_acceleration_float32_matches_float64_reference(key):
    position, mass = _system(key, 37)
    actual = _pallas()(position.astype(jnp.float32), mass.astype(jnp.float32), PARAMS)
    assert actual.dtype == jnp.float32
    _assert_close(actual, acceleration_analytic(position, mass, PARAMS), F32_RTOL)


def test_two_bodies_newton(key):
    # a_0 = G m_1 d / (|d|^2 + eps^2)^(3/2) with d = x_1 - x_0, and a_1 by Newton's third law.
    position = jnp.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]])
    mass = jnp.array([2.0, 5.0])
    a = _pallas()(position, mass, PARAMS)
    s3 = (25.0 + 0.05**2) ** 1.5
    np.testing.assert_allclose(a[0], 1.3 * 5.0 * np.array([3.0, 4.0, 0.0]) / s3, rtol=1e-14)
    np.testing.assert_allclose(mass[0] * a[0], -mass[1] * a[1], rtol=1e-14)


def _with_coincident_pair(key):
    position, mass = _system(key, 21)
    return position.at[1].set(position[0]), mass


def test_coincident_bodies_softened_equal_reference(key):
    # With eps > 0 a coincident pair is an ordinary softened pair: zero force between the two.
    position, mass = _with_coincident_pair(key)
    a = _pallas()(position, mass, PARAMS)
    assert bool(jnp.all(jnp.isfinite(a)))
    _assert_close(a, acceleration_analytic(position, mass, PARAMS), F64_RTOL)
    energy = jax.jit(lambda x, m: potential_energy_pallas(x, m, PARAMS, config=SMALL))(position, mass)
    expected = potential_energy_from_positions(position, mass, PARAMS)
    np.testing.assert_allclose(energy, expected, rtol=F64_RTOL)


def test_coincident_bodies_unsoftened_are_masked(key):
    # With eps = 0 the coincident pair is masked (adds 0): each twin feels only the bodies
    # other than its twin; every other body feels both twins, as in the reference kernel.
    position, mass = _with_coincident_pair(key)
    params = PhysicsParams(G=1.3, softening=0.0)
    a = _pallas()(position, mass, params)
    assert bool(jnp.all(jnp.isfinite(a)))
    reference = acceleration_analytic(position, mass, params)
    _assert_close(a[2:], reference[2:], F64_RTOL)
    for twin, other in ((0, 1), (1, 0)):
        keep = jnp.arange(21) != other
        without_twin = acceleration_analytic(position[keep], mass[keep], params)
        _assert_close(a[twin], without_twin[0], F64_RTOL)
    grad = jax.jit(jax.grad(
        lambda x: jnp.sum(acceleration_pallas(x, mass, params, config=SMALL) ** 2)))
    assert bool(jnp.all(jnp.isfinite(grad(position))))
    energy = potential_energy_pallas(position, mass, params, config=SMALL)
    assert bool(jnp.isfinite(energy))


@pytest.mark.parametrize("n", [2, 37])
def test_potential_energy_equals_reference(key, n):
    position, mass = _system(key, n)
    energy = jax.jit(lambda x, m: potential_energy_pallas(x, m, PARAMS, config=SMALL))(position, mass)
    np.testing.assert_allclose(energy, potential_energy_from_positions(position, mass, PARAMS),
                               rtol=F64_RTOL)


def _cotangent_loss(kernel, cotangent):
    def loss(position, mass, G, softening):
        return jnp.sum(cotangent * kernel(position, mass, PhysicsParams(G=G, softening=softening)))
    return loss


def test_acceleration_gradients_equal_autodiff_of_reference(key):
    # The hand-written reverse kernel against reverse-mode autodiff of the reference kernel,
    # for every differentiable input at once.
    position, mass = _system(key, 37)
    cotangent = jax.random.normal(jax.random.fold_in(key, 1), position.shape)
    pallas = lambda x, m, p: acceleration_pallas(x, m, p, config=SMALL)
    args = (position, mass, 1.3, 0.05)
    actual = jax.jit(jax.grad(_cotangent_loss(pallas, cotangent), argnums=(0, 1, 2, 3)))(*args)
    expected = jax.grad(_cotangent_loss(acceleration_analytic, cotangent), argnums=(0, 1, 2, 3))(*args)
    for a, e in zip(actual, expected):
        _assert_close(a, e, F64_RTOL)


def test_acceleration_position_only_gradient(key):
    # Only position differentiated: the reverse kernel skips the mass and softening sums.
    position, mass = _system(key, 37)
    cotangent = jax.random.normal(jax.random.fold_in(key, 2), position.shape)
    loss = lambda x, kernel: jnp.sum(cotangent * kernel(x, mass, PARAMS))
    pallas = lambda x, m, p: acceleration_pallas(x, m, p, config=SMALL)
    actual = jax.jit(jax.grad(lambda x: loss(x, pallas)))(position)
    expected = jax.grad(loss)(position, acceleration_analytic)
    _assert_close(actual, expected, F64_RTOL)


def test_energy_gradients_equal_autodiff_of_reference(key):
    position, mass = _system(key, 37)
    energy = lambda kernel: lambda x, m, G, eps: kernel(x, m, PhysicsParams(G=G, softening=eps))
    pallas = lambda x, m, p: potential_energy_pallas(x, m, p, config=SMALL)
    args = (position, mass, 1.3, 0.05)
    actual = jax.jit(jax.grad(energy(pallas), argnums=(0, 1, 2, 3)))(*args)
    expected = jax.grad(energy(potential_energy_from_positions), argnums=(0, 1, 2, 3))(*args)
    for a, e in zip(actual, expected):
        _assert_close(a, e, F64_RTOL)


def test_gradients_against_finite_differences(key):
    # Central differences, h = 1e-5: truncation ~h^2 * |f'''| ~ 1e-10 and round-off
    # ~2**-52 * |f| / h ~ 1e-11 (|f| ~ 1e2 for this loss), so 1e-6 relative is a wide margin
    # that still catches any wrong term (O(1)).
    position, mass = _system(key, 9)
    cotangent = jax.random.normal(jax.random.fold_in(key, 3), position.shape)
    pallas = lambda x, m, p: acceleration_pallas(x, m, p, config=SMALL)
    loss = jax.jit(_cotangent_loss(pallas, cotangent))
    args = [position, mass, jnp.float64(1.3), jnp.float64(0.05)]
    grads = jax.grad(loss, argnums=(0, 1, 2, 3))(*args)
    h = 1e-5
    probes = [(0, (4, 1)), (0, (0, 2)), (1, (3,)), (1, (8,)), (2, ()), (3, ())]
    for arg, index in probes:
        plus, minus = list(args), list(args)
        plus[arg] = args[arg].at[index].add(h) if index else args[arg] + h
        minus[arg] = args[arg].at[index].add(-h) if index else args[arg] - h
        numeric = (loss(*plus) - loss(*minus)) / (2 * h)
        np.testing.assert_allclose(grads[arg][index], numeric, rtol=1e-6)


def test_vmap_over_members_equals_each_member(key):
    # Ensembles vmap the kernel: batching a pallas_call adds a grid axis.
    positions = jnp.stack([_system(jax.random.fold_in(key, i), 19)[0] for i in range(3)])
    mass = _system(key, 19)[1]
    batched = jax.jit(jax.vmap(lambda x: acceleration_pallas(x, mass, PARAMS, config=SMALL)))(positions)
    for member in range(3):
        _assert_close(batched[member], acceleration_analytic(positions[member], mass, PARAMS),
                      F64_RTOL)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_lowers_to_triton_for_cuda_without_a_gpu(dtype):
    # The Triton lowering (jaxpr -> Triton IR: power-of-2 tiles, supported ops, float64
    # rsqrt) runs without a device; only compiling the IR needs the GPU.
    from jax import export

    config = PallasConfig(interpret=False)
    params = PhysicsParams(G=1.0, softening=0.01)
    shapes = (jax.ShapeDtypeStruct((1000, 3), dtype), jax.ShapeDtypeStruct((1000,), dtype))
    loss = lambda x, m: jnp.sum(acceleration_pallas(x, m, params, config=config) ** 2)
    energy = lambda x, m: potential_energy_pallas(x, m, params, config=config)
    triton = [export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")]
    for fn in (jax.grad(loss, argnums=(0, 1)), jax.grad(energy)):
        exported = export.export(jax.jit(fn), platforms=["cuda"], disabled_checks=triton)(*shapes)
        assert "xla.gpu.triton" in exported.mlir_module()


def test_tiles_must_be_powers_of_two(key):
    position, mass = _system(key, 5)
    with pytest.raises(ValueError, match="power of 2"):
        acceleration_pallas(position, mass, PARAMS, config=PallasConfig(block_target=24))


@pytest.mark.parametrize("softening", [0.0, 0.05])
def test_forward_mode_and_hessian_equal_reference(key, softening):
    # The custom_jvp rule: jvp in position, mass, G and softening, and a hessian (forward over
    # reverse) of the kernel, equal to autodiff of the reference (tolerance: module docstring).
    position, mass = _system(key, 21)
    k1, k2 = jax.random.split(key)
    tangents = (jax.random.normal(k1, position.shape), jax.random.normal(k2, mass.shape), 0.2, 0.3)
    pallas = lambda x, m, p: acceleration_pallas(x, m, p, config=SMALL)

    def fn(kernel):
        return lambda x, m, G, eps: kernel(x, m, PhysicsParams(G=G, softening=eps))

    args = (position, mass, 1.3, softening)
    value, expected = jax.jvp(fn(acceleration_analytic), args, tangents)
    actual_value, actual = jax.jit(lambda *a: jax.jvp(fn(pallas), a, tangents))(*args)
    assert bool(jnp.all(jnp.isfinite(actual)))
    _assert_close(actual_value, value, F64_RTOL)
    _assert_close(actual, expected, F64_RTOL)
    weights = jax.random.normal(key, position.shape)
    hessian = lambda kernel: jax.hessian(lambda x: jnp.sum(weights * fn(kernel)(x, *args[1:])))
    _assert_close(jax.jit(hessian(pallas))(position), hessian(acceleration_analytic)(position),
                  F64_RTOL)
