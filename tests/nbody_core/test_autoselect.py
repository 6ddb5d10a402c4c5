"""forces="auto": the selection table, for CPU and GPU platforms, without needing a GPU."""

import jax.numpy as jnp
import pytest

from nbody_core.physics.autoselect import CROSSOVERS, resolve_forces, select_forces
from nbody_core.physics.forces import FORCE_METHODS


@pytest.mark.parametrize("n", [1, 3, 64, 1000, 4096, 16384, 65536, 10**6])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_cpu_picks_the_tiled_kernels(n, dtype):
    # Measured: tiled beats analytic on this CPU from N = 3 up; its custom-VJP twin has the
    # same forward and the cheapest gradient.
    assert select_forces("cpu", dtype, n, needs_grad=False) == "tiled"
    assert select_forces("cpu", dtype, n, needs_grad=True) == "tiled_custom_vjp"
    assert select_forces("cpu", dtype, n) == "tiled_custom_vjp"  # unknown: gradient-safe
    assert select_forces("cpu", dtype, n, newtonian=False) == "autodiff_tiled"


@pytest.mark.parametrize("platform", ["gpu", "cuda", "rocm"])
@pytest.mark.parametrize("needs_grad", [False, True, None])
def test_gpu_broadcast_up_to_16384_then_pallas(platform, needs_grad):
    # Measured on an H200: the broadcast kernel beats tiled at N <= 16384 (issue 13).
    for n in (2, 1000, 4096, 16384):
        assert select_forces(platform, jnp.float32, n, needs_grad=needs_grad) == "analytic"
        assert select_forces(platform, jnp.float64, n, needs_grad=needs_grad,
                             newtonian=False) == "autodiff"
    for n in (16385, 65536):
        assert select_forces(platform, jnp.float32, n, needs_grad=needs_grad) == "pallas"
        assert select_forces(platform, jnp.float64, n, needs_grad=needs_grad,
                             newtonian=False) == "autodiff_tiled"


def test_other_platforms_never_pick_pallas():
    # The Pallas kernel lowers through Triton (NVIDIA/AMD GPUs) or the interpreter only.
    for n in (3, 16384, 65536):
        for grad in (False, True):
            assert select_forces("tpu", jnp.float32, n, needs_grad=grad) != "pallas"


def test_table_is_total_and_names_real_methods():
    # Every (platform, potential kind, gradient) combination has an unbounded last row, and
    # every method named exists, so selection never falls through or picks a missing kernel.
    for platform in ("cpu", "gpu", "other"):
        for newtonian in (True, False):
            for grad in (False, True):
                rows = [r for r in CROSSOVERS if (r.platform, r.newtonian, r.needs_grad)
                        == (platform, newtonian, grad)]
                assert rows and rows[-1].n_max is None
    assert {r.method for r in CROSSOVERS} <= set(FORCE_METHODS)
    assert all(r.evidence for r in CROSSOVERS)


def test_resolve_keeps_explicit_methods_and_uses_the_default_backend():
    assert resolve_forces("analytic", n=10**6, dtype=jnp.float64) == "analytic"
    assert resolve_forces("auto", n=100, dtype=jnp.float64, needs_grad=False) == "tiled"
    assert resolve_forces("auto", n=100, dtype=jnp.float64, platform="gpu") == "analytic"


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="n must be"):
        select_forces("cpu", jnp.float64, 0)
    with pytest.raises(ValueError, match="floating"):
        select_forces("cpu", jnp.int32, 10)


def test_auto_record_runs_the_selected_kernel_and_equals_the_reference(key):
    # The "auto" record picks at trace time (n, dtype static) and runs that record's kernel;
    # whatever it picks computes the reference sums (float64 round-off, see test_kernels.py).
    import jax
    import numpy as np

    from nbody_core import PhysicsParams, plummer, simulate
    from nbody_core.physics.forces import acceleration_analytic, acceleration_function

    state = plummer(key, 40)
    params = PhysicsParams(softening=0.05)
    auto = acceleration_function("auto")
    expected = acceleration_analytic(state.position, state.mass, params)
    actual = jax.jit(auto)(state.position, state.mass, params)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12 * float(jnp.max(jnp.abs(expected))))
    a = simulate(state, dt=1e-3, num_steps=20, params=params).position
    b = simulate(state, dt=1e-3, num_steps=20, params=params, forces="analytic").position
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)  # 20 steps of round-off-level differences
    yukawa = acceleration_function("auto", "yukawa")  # any potential: an autodiff kernel
    assert np.all(np.isfinite(yukawa(state.position, state.mass, params)))


def test_auto_is_the_default_everywhere():
    import inspect

    from nbody_core import advance, simulate, solve
    from nbody_core.ensembles import EnsembleSpec

    for fn in (solve, simulate, advance):
        assert inspect.signature(fn).parameters["forces"].default == "auto"
    assert EnsembleSpec().forces == "auto"
