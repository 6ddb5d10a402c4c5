"""Force lab: autodiff == hand-coded for Newtonian gravity, precision, finite differences, timing."""

import functools

import jax
import numpy as np
import pytest

import nbody_core as nb
from nbody_core.lab import forcelab
from nbody_core.physics import forces
from nbody_core.lab.numpy_reference import accelerations_loop, accelerations_vectorized
from nbody_core.physics.potentials import potential_energy_from_positions

FLOAT64_EPS = float(np.finfo(np.float64).eps)  # 2.2e-16
FLOAT32_EPS = float(np.finfo(np.float32).eps)  # 1.2e-7


def _random_state(seed, n, *, spread=1.0):
    rng = np.random.default_rng(seed)
    position = spread * rng.normal(size=(n, 3))
    return nb.make_state(position, np.zeros_like(position), rng.uniform(0.5, 2.0, n))


@functools.lru_cache(maxsize=1)
def _configurations():
    key = jax.random.key(7)
    return {
        "figure_eight": (nb.figure_eight(), nb.PhysicsParams()),
        "kepler_e0.9": (nb.kepler(1.0, 1e-3, a=1.0, e=0.9), nb.PhysicsParams()),
        "solar_system": (nb.solar_system(), nb.PhysicsParams(G=nb.UNIT_SYSTEMS["au_msun_yr"].G)),
        "plummer_64_softened": (nb.plummer(key, 64), nb.PhysicsParams(softening=0.01)),
        "random_unsoftened": (_random_state(1, 20), nb.PhysicsParams(G=2.5)),
    }


@pytest.mark.parametrize("name", list(_configurations()))
def test_autodiff_equals_hand_coded_newtonian_float64(name):
    state, params = _configurations()[name]
    comparison = forcelab.compare_forces(state, params=params, potential="newtonian", dtype="float64")
    assert comparison.applicable and comparison.hand_coded_status is None
    assert comparison.autodiff.dtype == np.float64
    # Both are O(n) sums of the same pair terms in a different order: the per-body relative
    # difference is a few ulps times the sum's condition number, far below 1e-12.
    assert comparison.relative_difference.max() < 1e-12
    np.testing.assert_allclose(comparison.autodiff, comparison.hand_coded, rtol=1e-10, atol=1e-12 * np.abs(comparison.hand_coded).max())


def test_every_registered_hand_coded_kernel_equals_autodiff():
    state, params = _configurations()["plummer_64_softened"]
    methods = forcelab._hand_coded_methods()
    assert "analytic" in methods and "autodiff" not in methods
    for method in methods:
        comparison = forcelab.compare_forces(state, params=params, hand_coded_method=method)
        assert comparison.relative_difference.max() < 1e-12, method  # round-off, as above
    with pytest.raises(ValueError, match="unknown hand-coded method"):
        forcelab.compare_forces(state, params=params, hand_coded_method="autodiff_tiled")


def test_float32_differences_are_orders_of_magnitude_larger():
    state, params = _configurations()["plummer_64_softened"]
    both = forcelab.compare_forces_all_dtypes(state, params=params)
    d64 = both["float64"].relative_difference
    d32 = both["float32"].relative_difference
    assert both["float32"].autodiff.dtype == np.float32 and both["float64"].autodiff.dtype == np.float64
    # Each difference is round-off of the dtype: a few ulps (eps64 = 2.2e-16, eps32 = 1.2e-7).
    assert np.median(d64) < 100 * FLOAT64_EPS
    assert 0.1 * FLOAT32_EPS < np.median(d32) < 100 * FLOAT32_EPS
    # eps32 / eps64 = 2**29 ~ 5e8: "orders of magnitude" means at least 1e5 here.
    assert np.median(d32) > 1e5 * max(np.median(d64), FLOAT64_EPS / 10)
    # float32 autodiff against float64 autodiff: the cost of single precision itself.
    precision = forcelab.precision_difference(both["float32"], both["float64"])
    assert 0.1 * FLOAT32_EPS < np.median(precision) < 100 * FLOAT32_EPS


@pytest.mark.parametrize("potential", ["yukawa", "power_law"])
def test_hand_coded_is_marked_not_applicable_for_other_potentials(potential):
    state, params = _configurations()["figure_eight"]
    comparison = forcelab.compare_forces(state, params=params, potential=potential)
    assert not comparison.applicable
    assert comparison.hand_coded is None and comparison.relative_difference is None
    assert "Newtonian only / not applicable" in comparison.hand_coded_status
    assert potential in comparison.hand_coded_status
    assert forcelab.hand_coded_status("newtonian") is None


def test_other_potentials_change_autodiff_forces_without_new_force_code():
    state, _ = _configurations()["random_unsoftened"]
    params = nb.PhysicsParams(softening=0.1, screening_length=0.5, power_index=2.0)
    newton = forcelab.compare_forces(state, params=params, potential="newtonian")
    for potential in ("yukawa", "power_law"):
        other = forcelab.compare_forces(state, params=params, potential=potential).autodiff
        assert forcelab.relative_difference(other, newton.autodiff)[0].max() > 0.1
    # power_law with p = 1 is Newtonian gravity: its autodiff forces equal the hand-coded kernel.
    p1 = forcelab.compare_forces(state, params=params._replace(power_index=1.0), potential="power_law")
    assert forcelab.relative_difference(p1.autodiff, newton.hand_coded)[0].max() < 1e-12


@functools.partial(jax.jit, static_argnames=("potential",))
def _energies(positions, mass, params, potential):
    return jax.vmap(lambda p: potential_energy_from_positions(p, mass, params, potential))(positions)


def _central_differences(state, params, potential, h):
    """``-dU/dx`` by central differences, every component from one batch of energies."""
    position = np.asarray(state.position)
    n = position.shape[0]
    steps = h * np.eye(3 * n).reshape(3 * n, n, 3)
    energies = np.asarray(_energies(
        np.concatenate([position + steps, position - steps]), state.mass, params, potential
    ))
    return -((energies[: 3 * n] - energies[3 * n :]) / (2 * h)).reshape(n, 3)


@pytest.mark.parametrize("potential", ["yukawa", "power_law", "newtonian"])
def test_autodiff_forces_match_central_finite_differences(potential):
    state = _random_state(3, 6)
    params = nb.PhysicsParams(softening=0.05, screening_length=0.7, power_index=1.7)
    autodiff = forcelab.compare_forces(state, params=params, potential=potential).autodiff
    # Central differences err by h**2 U'''/6 (truncation) + eps |U| / h (round-off in U).
    # Measured on this configuration: 1.9e-8 at h = 1e-4 and 1.9e-6 at h = 1e-3 (the h**2
    # law), 1.6e-9 at h = 1e-6 and 2e-8 at h = 1e-7 (the 1/h law); the two balance near
    # h = eps**(1/3) ~ 1e-5, where both are ~2e-10. The tolerance is 10x that sum.
    h = 1e-5
    fd = _central_differences(state, params, potential, h)
    assert forcelab.relative_difference(autodiff, fd)[0].max() < 5e-9
    # The check can fail: a slightly different potential is far outside the tolerance.
    other = params._replace(screening_length=0.71, power_index=1.71, softening=0.051)
    fd_other = _central_differences(state, other, potential, h)
    assert forcelab.relative_difference(autodiff, fd_other)[0].max() > 1e-4


@pytest.mark.parametrize("softening", [0.0, 0.02])
def test_numpy_references_equal_jax(softening):
    state = _random_state(5, 17)
    params = nb.PhysicsParams(G=1.3, softening=softening)
    position, mass = np.asarray(state.position), np.asarray(state.mass)
    jax_analytic = np.asarray(jax.jit(forces.acceleration_analytic)(state.position, state.mass, params))
    jax_autodiff = np.asarray(jax.jit(forces.acceleration_autodiff)(state.position, state.mass, params))
    for reference in (
        accelerations_loop(position, mass, G=1.3, softening=softening),
        accelerations_vectorized(position, mass, G=1.3, softening=softening),
    ):
        for jax_result in (jax_analytic, jax_autodiff):
            # Same sums in float64 in different orders: round-off level agreement.
            assert forcelab.relative_difference(jax_result, reference)[0].max() < 1e-12


def test_relative_difference_floor_guards_cancelling_bodies():
    # The middle body of a symmetric line feels zero net force; its pair terms do not cancel
    # exactly in the other method's order, so it is measured against the floor instead.
    reference = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    force = reference + np.array([[1e-16, 0, 0], [3e-17, 0, 0], [0, 0, 0]])
    difference, floor = forcelab.relative_difference(force, reference)
    rms = np.sqrt(2.0 / 3.0)
    assert floor == pytest.approx(forcelab.FLOOR_FRACTION * rms)
    assert difference[1] == pytest.approx(3e-17 / floor)
    assert difference[0] == pytest.approx(1e-16)
    assert difference[2] == 0.0
    with pytest.raises(ValueError, match=r"shape \[n, 3\]"):
        forcelab.relative_difference(force[:, :2], reference[:, :2])


def test_compare_forces_rejects_bad_input():
    state, params = _configurations()["figure_eight"]
    with pytest.raises(ValueError, match="unknown dtype"):
        forcelab.compare_forces(state, params=params, dtype="float16")
    with pytest.raises(ValueError, match="unknown potential"):
        forcelab.compare_forces(state, params=params, potential="coulomb")
    with pytest.raises(ValueError, match="unknown hand-coded method"):
        forcelab.compare_forces(state, params=params, hand_coded_method="autodiff")
    coincident = nb.make_state(np.zeros((2, 3)), np.zeros((2, 3)), [1.0, 1.0])
    with pytest.raises(ValueError, match="not finite"):
        forcelab.compare_forces(coincident, params=nb.PhysicsParams(), potential="yukawa")
    with pytest.raises(ValueError, match="not finite"):
        forcelab.compare_forces(state, params=nb.PhysicsParams(screening_length=0.0), potential="yukawa")


def test_time_force_methods_structure_and_extrapolation(request):
    # A faster kernel registered by the performance work shows up as a timing method.
    record = forces.ForceMethod("lab_test_kernel", "test kernel (Newtonian only)", forces.FORCE_METHODS["analytic"].kernel)
    forces.register_force_method(record)
    request.addfinalizer(lambda: forces.FORCE_METHODS.unregister("lab_test_kernel"))
    assert "jax_lab_test_kernel" in forcelab.timing_methods()
    calls = []
    methods = ("numpy_loop", "numpy_vectorized", "jax_autodiff", "jax_lab_test_kernel")
    assert set(methods) <= set(forcelab.timing_methods())  # the default: every method
    result = forcelab.time_force_methods(
        [8, 4], methods, 2, lambda done, total, message: calls.append((done, total, message)),
        numpy_loop_max_n=4,
    )
    assert result.methods == methods
    assert result.num_bodies == (4, 8) and result.repeats == 2
    total = 2 * len(result.methods)
    assert len(result.records) == total
    assert [c[0] for c in calls] == list(range(1, total + 1)) and {c[1] for c in calls} == {total}
    for record in result.records:
        assert record.run_ms > 0 and np.isfinite(record.run_ms)
        is_jax = record.method.startswith("jax_")
        assert (record.compile_ms is not None) == is_jax == (record.first_call_ms is not None)
        if is_jax:
            assert record.first_call_ms >= record.run_ms and record.compile_ms >= 0
    loop4, loop8 = result.record("numpy_loop", 4), result.record("numpy_loop", 8)
    assert not loop4.extrapolated and loop8.extrapolated and loop8.extrapolated_from == 4
    assert loop8.run_ms == pytest.approx(loop4.run_ms * 4)  # O(N^2) from the cap
    assert loop4.speedup_vs_numpy_loop == 1.0 and not loop4.speedup_extrapolated
    vec8 = result.record("numpy_vectorized", 8)
    assert vec8.speedup_vs_numpy_loop == pytest.approx(loop8.run_ms / vec8.run_ms)
    assert vec8.speedup_extrapolated
    assert result.as_dict()["records"][0]["method"] == "numpy_loop"


def test_time_force_methods_without_loop_and_anchor_above_requested():
    result = forcelab.time_force_methods([6], ["jax_analytic"], 1)
    assert result.record("jax_analytic", 6).speedup_vs_numpy_loop is None
    # Every requested N above the cap: the loop is measured at the cap and extrapolated.
    result = forcelab.time_force_methods([12], ["numpy_loop"], 1, numpy_loop_max_n=3)
    assert result.record("numpy_loop", 12).extrapolated_from == 3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(ns=[]), "at least one body count"),
        (dict(ns=[1]), "outside"),
        (dict(ns=[2.5]), "integers"),
        (dict(ns=["x"]), "integers"),
        (dict(ns=[4], methods=["fortran"]), "unknown timing method"),
        (dict(ns=[4], methods=[]), "at least one timing method"),
        (dict(ns=[4], repeats=0), "repeats"),
        (dict(ns=[4], numpy_loop_max_n=1), "numpy_loop_max_n"),
    ],
)
def test_time_force_methods_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        forcelab.time_force_methods(**kwargs)
