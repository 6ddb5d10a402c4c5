"""Whole trajectories: analytic Kepler orbit, figure-eight closure, compile counting."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nbody_core as nb
from kepler_analytic import kepler_positions
from nbody_core.integrate.simulate import _advance, _segment as _simulate


def test_kepler_orbit_matches_keplers_equation_and_closes():
    m1, m2, a, e = 1.0, 0.25, 1.5, 0.7
    state = nb.kepler(m1, m2, a=a, e=e)
    period = nb.kepler_period(a=a, total_mass=m1 + m2)
    num_steps, dt = nb.steps_for_duration(period, 2e-3)
    trajectory = nb.simulate(state, dt=dt, num_steps=num_steps, save_every=50, integrator="yoshida4")
    exact = kepler_positions(np.asarray(trajectory.time), m1=m1, m2=m2, a=a, e=e)
    # Yoshida-4 at dt = 2e-3 (P / 2900, pericentre speed 2.4): phase error ~ C dt^4 per
    # orbit ~ 1e-9; 1e-7 allows the e = 0.7 pericentre's larger constant.
    assert np.abs(np.asarray(trajectory.position) - exact).max() < 1e-7
    # Closure after exactly one period (lands on t = P by uniform steps).
    assert float(trajectory.time[-1]) == pytest.approx(period, rel=1e-14)
    np.testing.assert_allclose(trajectory.position[-1], state.position, atol=1e-7)


def test_figure_eight_returns_to_start_after_one_period():
    state = nb.figure_eight()
    num_steps, dt = nb.steps_for_duration(nb.FIGURE_EIGHT_PERIOD, 1e-3)
    trajectory = nb.simulate(state, dt=dt, num_steps=num_steps, save_every=num_steps, integrator="yoshida4")
    error = np.abs(np.asarray(trajectory.position[-1] - state.position)).max()
    # The initial data and period are known to 8 digits (Simo 2002): the orbit closes to
    # ~1e-7; Yoshida-4 at dt = 1e-3 adds ~1e-11. Half a period later it is far away.
    assert error < 1e-6
    half = nb.advance(state, num_steps // 2, dt=dt, integrator="yoshida4")
    assert np.abs(np.asarray(half.position - state.position)).max() > 0.5
    assert float(np.max(trajectory.relative_energy_error)) < 1e-10


def test_saving_structure_and_remainder():
    state = nb.figure_eight()
    trajectory = nb.simulate(state, dt=0.01, num_steps=23, save_every=5)
    # 1 initial + 4 full blocks + the remainder's final state.
    np.testing.assert_allclose(trajectory.time, [0, 0.05, 0.1, 0.15, 0.2, 0.23], atol=1e-15)
    assert trajectory.position.shape == (6, 3, 3) and trajectory.energy.shape == (6,)
    assert trajectory.linear_momentum.shape == (6, 3) and trajectory.mass.shape == (3,)
    final = nb.advance(state, 23, dt=0.01)
    np.testing.assert_allclose(trajectory.final_state.position, final.position, rtol=0, atol=1e-14)


def test_changing_traced_values_does_not_recompile():
    state = nb.figure_eight()
    nb.simulate(state, dt=1e-3, num_steps=10, save_every=5)
    nb.advance(state, 10, dt=1e-3)
    simulate_before, advance_before = _simulate._cache_size(), _advance._cache_size()
    heavier = state._replace(mass=state.mass * 1.5)
    for new_state, dt, params in [
        (state, 2e-3, nb.PhysicsParams()),
        (state, 1e-3, nb.PhysicsParams(softening=0.1)),
        (heavier, 1e-3, nb.PhysicsParams(G=2.0)),
        (state, jnp.float64(5e-4), nb.PhysicsParams(G=0.5, softening=0.01)),
    ]:
        nb.simulate(new_state, dt=dt, num_steps=10, save_every=5, params=params)
        nb.advance(new_state, 7, dt=dt, params=params)  # num_steps is traced in advance too
    assert _simulate._cache_size() == simulate_before
    assert _advance._cache_size() == advance_before
    # Structure changes do recompile: N, integrator, dtype.
    nb.simulate(nb.kepler(), dt=1e-3, num_steps=10, save_every=5)
    assert _simulate._cache_size() == simulate_before + 1
    nb.simulate(state, dt=1e-3, num_steps=10, save_every=5, integrator="rk4")
    assert _simulate._cache_size() == simulate_before + 2
    nb.advance(nb.cast_state(state, jnp.float32), 10, dt=1e-3)
    assert _advance._cache_size() == advance_before + 1


def test_float32_on_request():
    state = nb.cast_state(nb.figure_eight(), jnp.float32)
    trajectory = nb.simulate(state, dt=1e-2, num_steps=100, save_every=10)
    assert trajectory.position.dtype == jnp.float32 and trajectory.energy.dtype == jnp.float32
    # Leapfrog at dt = 1e-2 keeps energy to ~1e-5; float32 round-off adds ~1e-7 x sqrt(steps).
    assert float(np.max(trajectory.relative_energy_error)) < 1e-4
    double = nb.simulate(nb.figure_eight(), dt=1e-2, num_steps=100, save_every=10)
    # float32 carries ~7 digits; 100 steps of a mildly chaotic orbit keep ~5 of them.
    np.testing.assert_allclose(trajectory.position, double.position, atol=1e-4)


def test_gradient_through_simulate_is_finite():
    # The engine is differentiable: d(final x of body 0)/d(mass of body 2) through 50 steps.
    state = nb.figure_eight()

    def final_x(mass2):
        s = state._replace(mass=state.mass.at[2].set(mass2))
        return nb.simulate(s, dt=1e-2, num_steps=50, save_every=50).position[-1, 0, 0]

    gradient = jax.grad(final_x)(1.0)
    h = 1e-6
    numeric = (final_x(1.0 + h) - final_x(1.0 - h)) / (2 * h)
    # Central difference: truncation ~h^2, round-off ~1e-16 / h ~ 1e-10.
    assert float(gradient) == pytest.approx(float(numeric), rel=1e-6)


def test_first_nonfinite_index_flags_a_collision():
    # Two nearly massless bodies (gravity ~1e-30, lost to round-off) approach head-on at unit
    # speed with eps = 0 and meet exactly at the origin after two steps of 0.25: the force
    # there is infinite, and the flag must point at that snapshot.
    state = nb.make_state([[-0.5, 0, 0], [0.5, 0, 0]], [[1.0, 0, 0], [-1.0, 0, 0]], [1e-30, 1e-30])
    trajectory = nb.simulate(state, dt=0.25, num_steps=4, save_every=1)
    assert nb.first_nonfinite_index(trajectory) == 2
    assert nb.first_nonfinite_index(nb.simulate(state, dt=0.25, num_steps=1)) is None


def test_steps_for_duration_lands_exactly():
    num_steps, dt = nb.steps_for_duration(10.0, 0.003)
    assert num_steps == 3334 and dt <= 0.003 and num_steps * dt == pytest.approx(10.0, rel=1e-15)
    assert nb.steps_for_duration(1.0, 0.1) == (10, 0.1)  # no 11th step from 1.0 / 0.1 = 9.999...
    with pytest.raises(ValueError, match="t_end must be a positive"):
        nb.steps_for_duration(-1.0, 0.1)
    with pytest.raises(ValueError, match="dt must be a positive"):
        nb.steps_for_duration(1.0, 0.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dt": 0.0, "num_steps": 10}, "dt must be a positive finite number"),
        ({"dt": float("nan"), "num_steps": 10}, "dt must be a positive finite number"),
        ({"dt": 1e-3, "num_steps": -1}, "num_steps must be a non-negative integer"),
        ({"dt": 1e-3, "num_steps": 2.5}, "num_steps must be a non-negative integer"),
        ({"dt": 1e-3, "num_steps": 10, "save_every": 0}, "save_every must be a positive integer"),
        ({"dt": 1e-3, "num_steps": 10, "integrator": "midpoint"}, "unknown integrator 'midpoint'"),
        # A hand-coded kernel refuses other potentials ("auto", the default, picks autodiff).
        ({"dt": 1e-3, "num_steps": 10, "potential": "yukawa", "forces": "tiled"}, "Newtonian gravity only"),
        ({"dt": 1e-3, "num_steps": 10, "params": nb.PhysicsParams(softening=-1.0)}, "softening must be >= 0"),
        ({"dt": 1e-3, "num_steps": 10, "params": nb.PhysicsParams(G=float("inf"))}, "G must be finite"),
    ],
)
def test_bad_options_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nb.simulate(nb.figure_eight(), **kwargs)


def test_energy_error_tracked_over_every_step_independent_of_save_cadence():
    # Issue 12 point 6: over snapshots only, the maximum depends on how often one saves.
    state, period = nb.figure_eight(), nb.FIGURE_EIGHT_PERIOD
    options = dict(dt=0.01, t_end=period, integrator="yoshida4")
    every = nb.simulate(state, save_every=1, **options)
    tracked = nb.simulate(state, save_every=10**6, track_energy=True, **options)
    untracked = nb.simulate(state, save_every=10**6, **options)
    # Saving every step sees every step: the tracked maximum of a run saved once equals it, to
    # round-off. The two runs are different XLA programs (energy inside the scan body, fused with
    # the step, vs. energy of the saved snapshots), so the same float64 expression may round
    # differently in its last bits (measured: 1 ulp, 3.3e-24, on an AMD EPYC without AVX-512). The
    # relative error (E - E0) / |E0| inherits the rounding of E: a few ulps of |E|/|E0| = a few
    # machine epsilons in absolute terms, far below the 1.4e-11 between the maximum and the error
    # one step beside it (measured), so a tracking that skipped the maximum's step still fails.
    assert abs(float(tracked.max_relative_energy_error) - float(np.max(every.relative_energy_error))) <= (
        4 * np.finfo(np.float64).eps)
    # Untracked, a run saved only at its ends sees far less (measured 6e-14 vs 1.9e-8).
    assert float(untracked.max_relative_energy_error) < 1e-3 * float(tracked.max_relative_energy_error)


def test_chunks_equal_one_call_and_times_are_exact():
    state = nb.kepler()._replace(time=np.float64(5.0))
    pieces = []
    options = dict(dt=3e-3, t_end=6.0, save_every=7, track_energy=True)
    whole = nb.simulate(state, **options)
    chunked = nb.simulate(state, chunks=4, on_chunk=lambda done, piece: pieces.append((done, piece)), **options)
    # The integrator state (acceleration included) goes from chunk to chunk: bit-identical.
    for name in ("time", "position", "velocity", "energy", "max_relative_energy_error"):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(whole, name))
    assert pieces[-1][0] == 334 and sum(p.time.shape[0] for _, p in pieces) == whole.time.shape[0]
    # t_end is an END time (issue 12 point 4): from t = 5 to 6 in uniform steps <= dt, and
    # snapshot k is at t0 + 7 k dt by multiplication (point 5), the last exactly at 6.
    num_steps, dt = nb.steps_for_duration(1.0, 3e-3)
    assert num_steps == 334 and float(whole.time[-1]) == 6.0
    np.testing.assert_array_equal(whole.time[:-1], 5.0 + np.arange(48) * 7 * dt)
    with pytest.raises(ValueError, match="later than state.time"):
        nb.simulate(state, dt=1e-3, t_end=4.0)


def test_final_only_tracks_the_same_every_step_maximum():
    # The interactive path (solve(..., final_only=True): the step count traced, cut into
    # calls) reports the error over every step as simulate's scan does.
    state = nb.figure_eight()
    frame = nb.solve(state, num_steps=300, dt=0.01, integrator="yoshida4", track_energy=True, final_only=True,
                     chunks=7)
    trajectory = nb.simulate(state, dt=0.01, num_steps=300, save_every=300, integrator="yoshida4", track_energy=True)
    assert frame.trajectory.time.shape == (1,) and float(frame.trajectory.time[0]) == float(trajectory.time[-1])
    # Same steps in a while loop vs a scan: equal up to XLA's operation order (round-off).
    np.testing.assert_allclose(frame.trajectory.position[0], trajectory.position[-1], rtol=0, atol=1e-13)
    error = float(frame.trajectory.max_relative_energy_error)
    assert error == pytest.approx(float(trajectory.max_relative_energy_error), rel=1e-6)
    assert error > float(trajectory.relative_energy_error[-1])  # the frame's end alone sees less


def test_adaptive_integrators_are_refused_by_the_fixed_step_loop():
    for entry in (lambda: nb.simulate(nb.figure_eight(), dt=1e-3, num_steps=3, integrator="ias15"),
                  lambda: nb.advance(nb.figure_eight(), 3, dt=1e-3, integrator="dopri8")):
        with pytest.raises(ValueError, match=r"is an adaptive integrator .* use solve\(state, t_end=\.\.\."):
            entry()
