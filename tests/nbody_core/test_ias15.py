"""IAS15 (Rein & Spiegel 2015): Kepler against the analytic orbit, the Pythagorean problem's
outcome and energy, step counts against REBOUND's IAS15, save times, rejections, validation."""

import math

import numpy as np
import pytest

import nbody_core as nb
from nbody_core import RESULTS
from nbody_core.integrate.ias15 import GAUSS_RADAU_SPACINGS, _C, _D
from kepler_analytic import kepler_positions
from pythagorean_outcome import escape_and_binary

# Measured with REBOUND 5.2.2 (benchmarks/bench_ias15.py; rebound is a GPL benchmark-only
# dependency, so the test suite carries its figure): IAS15 with adaptive_mode = "global" (the
# RS15 criterion implemented here) takes 12564 steps on the Pythagorean problem to t = 70.
REBOUND_GLOBAL_STEPS = 12564
# Same source, REBOUND's default adaptive_mode = 2 (PRS23, Pham, Rein & Spiegel 2024), epsilon 1e-9.
REBOUND_PRS23_STEPS = 5380


def ias15(state, **options):
    return nb.solve(state, integrator="ias15", **options)


def test_newton_and_monomial_coefficients_invert_and_interpolate():
    np.testing.assert_allclose(np.asarray(_C.T @ _D, dtype=float), np.eye(7), atol=1e-15)
    # The Newton basis N_j vanishes at the nodes before h_j: C's rows are its monomial coefficients.
    h = np.asarray(GAUSS_RADAU_SPACINGS, dtype=float)
    for j in range(1, 8):
        values = [sum(float(_C[j - 1, m - 1]) * h[k] ** m for m in range(1, j + 1)) for k in range(j)]
        np.testing.assert_allclose(values, 0.0, atol=1e-15)


@pytest.fixture(scope="module")
def kepler_run():
    state = nb.kepler(1.0, 0.5, a=1.0, e=0.9)
    period = nb.kepler_period(a=1.0, total_mass=1.5)
    solution = ias15(state, t_end=10 * period, num_saves=40)
    return state, solution.trajectory, solution


def test_kepler_e09_ten_orbits_matches_analytic_orbit(kepler_run):
    _, trajectory, solution = kepler_run
    assert solution.result is RESULTS.successful
    reference = kepler_positions(np.asarray(trajectory.time), m1=1.0, m2=0.5, a=1.0, e=0.9)
    error = np.abs(np.asarray(trajectory.position) - reference).max()
    # Per step IAS15 is exact to round-off; what accumulates is a phase drift from the period
    # error dP/P = (3/2) dE/E ~ 1.5e-14: along-track error <= 2 pi N (dP/P) a (v_peri / v_mean)
    # = 2 pi 10 * 1.5e-14 * 1 * sqrt((1+e)/(1-e)) ~ 4e-12. Measured 1.2e-12.
    assert error < 1e-11


def test_kepler_energy_conserved_to_round_off(kepler_run):
    _, trajectory, _ = kepler_run
    # Machine precision: |E| = 0.75, and the relative energy error of float64 positions and
    # velocities of size ~1..19 is a few 1e-15 (measured 7e-15 over every step).
    assert float(trajectory.max_relative_energy_error) < 5e-14
    assert float(np.max(trajectory.relative_energy_error)) < 5e-14


@pytest.fixture(scope="module")
def pythagorean_run():
    return ias15(nb.pythagorean(), t_end=70.0, num_saves=70)


@pytest.mark.slow  # ~10-20 s on a loaded 2-core machine: compile + 12.6k steps
def test_pythagorean_energy_outcome_and_steps(pythagorean_run):
    trajectory, stats = pythagorean_run.trajectory, pythagorean_run.stats
    assert pythagorean_run.result is RESULTS.successful
    assert float(trajectory.time[-1]) == 70.0
    # Issue 12's target: |dE/E| <= 3e-11 at t = 70 (REBOUND's IAS15 reaches 2.7e-11 in its
    # "global" mode, 3.1e-11 with its default PRS23 criterion). Measured here 4e-15..1e-13 for
    # 1..1000 save intervals: forces from compensated separations remove most of the round-off
    # at the r ~ 4e-4 encounter (without them: 1.6e-11..7e-11, the bound below would fail).
    assert float(trajectory.relative_energy_error[-1]) <= 3e-11
    # Over every step (not only snapshots), including the encounter: measured 0.6-1.2e-12.
    assert float(trajectory.max_relative_energy_error) < 3e-11
    escape_energy, radial_motion, binary_energy = escape_and_binary(
        trajectory.position[-1], trajectory.velocity[-1], trajectory.mass
    )
    # Szebehely & Peters (1967): the lightest body (m = 3) leaves on an unbound orbit...
    assert escape_energy > 0 and radial_motion > 0
    # ...and the other two form a bound binary.
    assert binary_energy < 0
    # Same algorithm as REBOUND's IAS15 "global" mode: the step count agrees to within a few
    # per cent (measured 12561 against 12564; snapshots add a few landing steps).
    assert abs(stats.num_accepted_steps - REBOUND_GLOBAL_STEPS) < 0.05 * REBOUND_GLOBAL_STEPS
    # Predictor-corrector: about 2 passes per step (RS15 sec. 2.3 reports 2-3).
    assert stats.num_steps == stats.num_accepted_steps + stats.num_rejected_steps
    assert 1.5 < stats.iterations / stats.num_steps < 3.5


@pytest.mark.slow  # ~10 s on a loaded 2-core machine: a second compile + 5.4k steps
def test_pythagorean_prs23_steps_match_rebound_energy_and_outcome():
    solution = ias15(nb.pythagorean(), t_end=70.0, num_saves=70, adaptive_mode="prs23")
    trajectory, stats = solution.trajectory, solution.stats
    assert solution.result is RESULTS.successful
    # Same criterion as REBOUND's default mode: the step count agrees to within a few per cent
    # (measured 5378 against 5380 with one save; 70 snapshots add a few landing steps)...
    assert abs(stats.num_accepted_steps - REBOUND_PRS23_STEPS) < 0.05 * REBOUND_PRS23_STEPS
    # ...and is well under half of the RS15 "global" criterion's 12.6k at the same epsilon.
    assert stats.num_accepted_steps < 0.5 * REBOUND_GLOBAL_STEPS
    # Issue 12's bound (REBOUND PRS23 reaches 3.1e-11); measured here 1.5e-13 at t = 70 and
    # 1.2e-12 over every step: the longer steps keep the error at round-off.
    assert float(trajectory.relative_energy_error[-1]) <= 3e-11
    assert float(trajectory.max_relative_energy_error) < 3e-11
    escape_energy, radial_motion, binary_energy = escape_and_binary(
        trajectory.position[-1], trajectory.velocity[-1], trajectory.mass
    )
    assert escape_energy > 0 and radial_motion > 0 and binary_energy < 0  # Szebehely & Peters (1967)


def test_jacobi_passes_converge_to_the_same_orbit_for_any_force_method():
    # The 7 nodes' forces are evaluated as one batch: with the compensated-separation kernel
    # (Newtonian, default) and with the chosen force method after a translation (any
    # potential; here autodiff of the Newtonian energy) the Kepler orbit closes alike.
    state = nb.kepler(1.0, 0.5, a=1.0, e=0.9)
    period = nb.kepler_period(a=1.0, total_mass=1.5)
    for forces in ("analytic", "autodiff"):
        # A look-alike Newtonian potential (a new function) takes the general path.
        potential = nb.NEWTONIAN if forces == "analytic" else nb.pair_potential(
            lambda s, params: nb.NEWTONIAN.pair_energy(s, params), "newtonian look-alike")
        solution = ias15(state, t_end=period, num_saves=1, forces=forces, potential=potential)
        trajectory = solution.trajectory
        assert solution.result is RESULTS.successful
        # One period at machine precision: measured ~1e-14 (see the 10-orbit test above).
        np.testing.assert_allclose(trajectory.position[-1], state.position, atol=1e-12)


def test_end_time_is_absolute_and_save_times_exact():
    state = nb.kepler(1.0, 1.0, a=1.0, e=0.5)._replace()
    state = state._replace(time=state.time + 5.0)
    solution = ias15(state, t_end=6.0, num_saves=7)
    trajectory = solution.trajectory
    assert solution.result is RESULTS.successful
    # Snapshot times are t0 + k (t_end - t0) / num_saves, computed, not accumulated.
    np.testing.assert_array_equal(np.asarray(trajectory.time), 5.0 + np.arange(8) / 7)
    times = np.array([5.1, 5.25, 5.9])
    trajectory = ias15(state, save_times=times).trajectory
    np.testing.assert_array_equal(np.asarray(trajectory.time), np.concatenate([[5.0], times]))


def test_too_long_first_step_is_rejected_and_redone():
    state = nb.kepler(1.0, 0.5, a=1.0, e=0.9)
    period = nb.kepler_period(a=1.0, total_mass=1.5)
    # Half a period from pericentre: the b6 estimate asks for a step far below 1/4 of it.
    solution = ias15(state, t_end=period, num_saves=1, dt=period / 2)
    trajectory = solution.trajectory
    assert solution.stats.num_rejected_steps >= 1
    assert solution.result is RESULTS.successful
    # After the rejections the run is as good as the default one (orbit closes, see above).
    np.testing.assert_allclose(trajectory.position[-1], state.position, atol=1e-12)


def test_max_steps_reported_and_unreached_snapshots_are_nan():
    solution = ias15(nb.pythagorean(), t_end=70.0, num_saves=7, max_steps=50)
    trajectory = solution.trajectory
    assert solution.result is RESULTS.max_steps_reached and solution.stats.num_steps == 50
    assert np.isnan(np.asarray(trajectory.position[-1])).all()


@pytest.mark.parametrize(
    "options, match",
    [
        ({"t_end": -1.0}, "t_end"),
        ({"t_end": 1.0, "num_saves": 0}, "num_saves"),
        ({"t_end": 1.0, "epsilon": 0.0}, "epsilon"),
        ({"t_end": 1.0, "max_steps": 0}, "max_steps"),
        ({"save_times": [0.5, 0.4]}, "save_times"),
        ({"t_end": 2.0, "save_times": [0.5, 1.0]}, "t_end"),
        ({"t_end": 1.0, "dt": -1.0}, "dt"),
        ({"t_end": 1.0, "adaptive_mode": "PRS23x"}, "adaptive_mode"),
    ],
)
def test_bad_options_raise(options, match):
    with pytest.raises(ValueError, match=match):
        ias15(nb.kepler(1.0, 1.0, a=1.0, e=0.0), **options)


def test_units_travel_with_the_state():
    # A state in AU / Msun / yr is integrated with that system's G (~4 pi**2), not G = 1: a
    # circular orbit at 1 AU with the speed for that G closes after 2 pi / sqrt(G) years.
    G = nb.UNIT_SYSTEMS["au_msun_yr"].G
    speed = math.sqrt(G * (1 + 1e-12))
    sun_earth = nb.make_state([[0, 0, 0], [1.0, 0, 0]], [[0, 0, 0], [0, speed, 0]], [1.0, 1e-12],
                              units="au_msun_yr")
    trajectory = ias15(sun_earth, t_end=2 * math.pi / speed, num_saves=1).trajectory
    # The state is not in the centre-of-mass frame: the barycentre drifts by m_E v t / M ~ 6.3e-12
    # over the orbit; integration error is round-off (about 40 steps at machine precision).
    np.testing.assert_allclose(trajectory.position[-1, 1], [1.0, 0.0, 0.0], atol=1e-11)
