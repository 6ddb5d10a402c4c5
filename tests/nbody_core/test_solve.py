"""One way to integrate: ``solve`` for every integrator, its Solution, stats and RESULTS codes."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nbody_core as nb
from nbody_core import RESULTS
from nbody_core.integrate.deprecated import simulate_ias15

FIXED_STEP = nb.INTEGRATORS.where(lambda integrator: not integrator.adaptive)
ADAPTIVE = nb.INTEGRATORS.where(lambda integrator: integrator.adaptive)
PRESETS = {
    "figure_eight": nb.figure_eight,
    "kepler": lambda: nb.kepler(1.0, 0.5, a=1.0, e=0.6),
    "pythagorean": nb.pythagorean,
}


def _assert_same(a, b):
    """Bit for bit, field by field (NaN where NaN)."""
    for name in ("time", "position", "velocity", "mass", "energy", "linear_momentum", "angular_momentum"):
        np.testing.assert_array_equal(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)), err_msg=name)
    assert (a.max_relative_energy_error is None) == (b.max_relative_energy_error is None)
    if a.max_relative_energy_error is not None:
        np.testing.assert_array_equal(np.asarray(a.max_relative_energy_error), np.asarray(b.max_relative_energy_error))
    assert a.units == b.units


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("name", FIXED_STEP)
def test_fixed_step_solve_is_the_old_simulate_and_advance_bit_for_bit(name, preset):
    state = PRESETS[preset]()
    solution = nb.solve(state, dt=2e-3, t_end=0.6, save_every=25, integrator=name, track_energy=True)
    _assert_same(solution.trajectory, nb.simulate(state, dt=2e-3, t_end=0.6, save_every=25, integrator=name,
                                                  track_energy=True))
    # The interactive path (final state only, step count traced, several calls) equals advance.
    final = nb.solve(state, dt=1e-3, num_steps=123, integrator=name, final_only=True, chunks=4)
    advanced = nb.advance(state, 123, dt=1e-3, integrator=name)
    np.testing.assert_array_equal(np.asarray(final.trajectory.position[0]), np.asarray(advanced.position))
    np.testing.assert_array_equal(np.asarray(final.trajectory.velocity[0]), np.asarray(advanced.velocity))
    assert final.result is RESULTS.successful and final.trajectory.max_relative_energy_error is None


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("name", ADAPTIVE)
def test_adaptive_solve_is_the_old_entry_points_bit_for_bit(name, preset):
    state = PRESETS[preset]()
    t_end = 2.0
    solution = nb.solve(state, t_end=t_end, num_saves=8, integrator=name)
    assert solution.result is RESULTS.successful
    with pytest.warns(DeprecationWarning, match=r"simulate_adaptive is deprecated; use nbody_core\.solve"):
        trajectory, stats = nb.simulate_adaptive(state, t_end=t_end, num_saves=8, integrator=name)
    _assert_same(solution.trajectory, trajectory)
    assert stats["result"] is RESULTS.successful and stats["message"] == RESULTS.successful.message
    assert (stats["accepted_steps"], stats["rejected_steps"], stats["next_dt"]) == (
        solution.stats.num_accepted_steps, solution.stats.num_rejected_steps, solution.stats.next_dt)
    if name == "ias15":
        with pytest.warns(DeprecationWarning, match=r"simulate_ias15 is deprecated; use nbody_core\.solve"):
            trajectory, stats = simulate_ias15(state, t_end=t_end, num_saves=8, forces="auto")
        _assert_same(solution.trajectory, trajectory)
        assert stats["status"] == "successful" and stats["iterations"] == solution.stats.iterations


def test_solution_fields_and_stats_of_a_fixed_step_run():
    state = nb.figure_eight()._replace(time=np.float64(1.0))
    solution = nb.solve(state, dt=0.01, t_end=2.0, save_every=30)
    assert isinstance(solution, nb.Solution) and solution._fields == ("trajectory", "stats", "result")
    assert isinstance(solution.stats, nb.Stats)
    stats = solution.stats
    # t_end is an end time: 100 uniform steps of exactly (2 - 1) / 100 land on it.
    assert stats.num_steps == stats.num_accepted_steps == 100 and stats.num_rejected_steps == 0
    assert stats.next_dt == 1.0 / 100 and stats.max_steps is None and stats.iterations is None
    assert solution.trajectory.time.shape == (5,) and stats.num_saves_reached == 4
    assert float(solution.trajectory.time[-1]) == 2.0
    np.testing.assert_array_equal(np.asarray(solution.final_state.position), np.asarray(solution.trajectory.position[-1]))
    assert solution.message == "reached the end time"
    # num_saves: saves after near-equal numbers of steps (round(k * 100 / 7) steps).
    saved = nb.solve(state, dt=0.01, num_steps=100, num_saves=7)
    np.testing.assert_allclose(np.asarray(saved.trajectory.time),
                               1.0 + 0.01 * np.round(np.linspace(0, 100, 8)), rtol=0, atol=1e-14)
    np.testing.assert_array_equal(np.asarray(saved.final_state.position),
                                  np.asarray(nb.solve(state, dt=0.01, num_steps=100).final_state.position))


@pytest.mark.parametrize("name", ADAPTIVE)
def test_solution_fields_and_stats_of_an_adaptive_run(name):
    state = nb.kepler(1.0, 0.5, a=1.0, e=0.6)
    solution = nb.solve(state, t_end=3.0, num_saves=3, integrator=name)
    stats = solution.stats
    assert solution.result is RESULTS.successful and stats.num_saves_reached == 3
    assert stats.num_steps == stats.num_accepted_steps + stats.num_rejected_steps > 10
    assert stats.max_steps == 1_000_000 and stats.next_dt > 0
    assert (stats.iterations is not None) == (name == "ias15")
    # Every accepted step's energy error is tracked: at least what the snapshots see.
    trajectory = solution.trajectory
    assert 0 < float(np.max(trajectory.relative_energy_error)) <= float(trajectory.max_relative_energy_error) < 1e-11
    final = nb.solve(state, t_end=3.0, integrator=name, final_only=True)
    assert final.trajectory.time.shape == (1,) and float(final.trajectory.time[0]) == 3.0


@pytest.mark.parametrize("name", ADAPTIVE)
def test_too_small_max_steps_gives_max_steps_reached(name):
    solution = nb.solve(nb.pythagorean(), t_end=70.0, num_saves=7, max_steps=40, integrator=name)
    assert solution.result is RESULTS.max_steps_reached and solution.stats.num_steps == 40
    assert solution.stats.num_saves_reached < 7
    assert solution.message.startswith("max_steps (40) reached after")
    assert solution.message.endswith(RESULTS.max_steps_reached.message)
    # What was not reached is NaN, never data; no energy error is claimed for it.
    assert np.isnan(np.asarray(solution.trajectory.position[-1])).all()
    assert math.isnan(float(solution.trajectory.max_relative_energy_error))


@pytest.mark.parametrize("name", list(nb.INTEGRATORS))
def test_a_nan_initial_state_gives_the_nonfinite_code(name):
    state = nb.figure_eight()
    state = state._replace(position=state.position.at[1, 0].set(jnp.nan))
    span = dict(t_end=1.0) if nb.get_integrator(name).adaptive else dict(dt=0.01, num_steps=20)
    solution = nb.solve(state, integrator=name, **span)
    assert solution.result is RESULTS.nonfinite, (name, solution.result)
    assert "non-finite" in solution.message


def test_a_run_that_goes_nonfinite_later_gives_the_same_code():
    # Finite initial conditions, a step so long that the first drift overflows: positions
    # 1 + 1e159 * 1.25e158 = inf after one leapfrog step, NaN forces after that.
    escape = nb.ParticleState(jnp.array([[1.0, 0, 0], [-1.0, 0, 0]]), jnp.array([[1e150, 0, 0], [-1e150, 0, 0]]),
                              jnp.ones(2), jnp.zeros(()))
    assert np.isfinite(float(nb.total_energy(escape)))
    solution = nb.solve(escape, dt=1e159, num_steps=3)
    assert solution.result is RESULTS.nonfinite and nb.first_nonfinite_index(solution.trajectory) == 1


def test_results_are_an_enumeration_with_messages_that_works_traced():
    assert [r.name for r in RESULTS] == ["successful", "max_steps_reached", "nonfinite", "step_size_underflow"]
    assert len({r.message for r in RESULTS}) == len(RESULTS) and str(RESULTS.nonfinite) == "nonfinite"
    assert RESULTS.of(np.int32(2)) is RESULTS.nonfinite
    # Inside jit a fixed-step solve returns the code as an int32 array, comparable with RESULTS.
    bad = nb.figure_eight()._replace(velocity=jnp.full((3, 3), jnp.inf))
    code = jax.jit(lambda s: nb.solve(s, dt=0.01, num_steps=5).result)(bad)
    assert code.dtype == jnp.int32 and bool(code == RESULTS.nonfinite)
    # ...and gradients flow through it as through simulate (the same loop, bit for bit).
    state = nb.figure_eight()
    via_solve = jax.grad(
        lambda mass: nb.solve(state._replace(mass=mass), dt=0.01, num_steps=30).trajectory.position[-1, 0, 0]
    )(state.mass)
    via_simulate = jax.grad(
        lambda mass: nb.simulate(state._replace(mass=mass), dt=0.01, num_steps=30).position[-1, 0, 0]
    )(state.mass)
    np.testing.assert_array_equal(np.asarray(via_solve), np.asarray(via_simulate))


def test_on_chunk_follows_progress_and_an_exception_there_stops_the_run():
    state = nb.figure_eight()
    seen = []
    final = nb.solve(state, dt=0.01, num_steps=10, final_only=True, chunks=3,
                     on_chunk=lambda done, piece: seen.append((done, piece.time.shape[0])))
    assert seen == [(3, 0), (7, 0), (10, 1)]  # near-equal calls; only the last has a snapshot
    assert float(final.trajectory.time[0]) == pytest.approx(0.1, rel=1e-15)

    class Stop(Exception):
        pass

    def stop(done, piece):
        raise Stop

    with pytest.raises(Stop):
        nb.solve(state, dt=0.01, num_steps=10, final_only=True, chunks=3, on_chunk=stop)


@pytest.mark.parametrize("name", ADAPTIVE)
@pytest.mark.parametrize("final_only", [False, True])
def test_adaptive_runs_in_bounded_calls_equal_one_call_bit_for_bit(name, final_only):
    """Issue 26: ``steps_per_call`` bounds the steps of each compiled call, the next call going
    on from the loop's whole state, so a frame can be stopped between calls; the result is the
    one call's, bit for bit (same compiled loop body, same carry, no value recomputed)."""
    state = nb.pythagorean()
    options = dict(t_end=2.0, integrator=name, final_only=final_only, **({} if final_only else {"num_saves": 4}))
    whole = nb.solve(state, **options)
    calls = []
    chunked = nb.solve(state, steps_per_call=7, on_chunk=lambda done, piece: calls.append(piece.time.shape[0]),
                       **options)
    assert whole.result is RESULTS.successful and chunked.result is RESULTS.successful
    _assert_same(chunked.trajectory, whole.trajectory)
    assert chunked.stats == whole.stats
    # One call per 7 attempted steps (the last may be shorter); every snapshot reported once.
    assert len(calls) == math.ceil(whole.stats.num_steps / 7) and whole.stats.num_steps > 20
    assert sum(calls) == (1 if final_only else 5)


@pytest.mark.parametrize("name", ADAPTIVE)
def test_an_exception_between_bounded_calls_stops_an_adaptive_run_within_one_call(name):
    """The live view's frames raise at a cancelled checkpoint: no further call runs."""
    class Stop(Exception):
        pass

    calls = []

    def stop_at_third(done, piece):
        calls.append(done)
        if len(calls) == 3:
            raise Stop

    with pytest.raises(Stop):
        nb.solve(nb.pythagorean(), t_end=70.0, integrator=name, final_only=True, steps_per_call=5,
                 on_chunk=stop_at_third)
    assert len(calls) == 3


def test_fixed_step_steps_per_call_cuts_a_run_into_bounded_calls():
    state = nb.figure_eight()
    seen = []
    final = nb.solve(state, dt=0.01, num_steps=10, final_only=True, steps_per_call=4,
                     on_chunk=lambda done, piece: seen.append(done))
    assert seen == [3, 7, 10]  # ceil(10 / 4) = 3 near-equal calls, each <= 4 steps
    whole = nb.solve(state, dt=0.01, num_steps=10, final_only=True)
    _assert_same(final.trajectory, whole.trajectory)
    seen.clear()
    nb.solve(state, dt=0.01, t_end=0.1, final_only=True, steps_per_call=4, on_chunk=lambda done, piece: seen.append(done))
    assert max(np.diff([0] + seen)) <= 4 and seen[-1] == 10


@pytest.mark.parametrize(
    "options, message",
    [
        ({"dt": 0.01, "num_steps": 5, "max_steps": 10},
         r"max_steps=10 applies to adaptive integrators, not to the fixed-step integrator 'leapfrog'"),
        ({"dt": 0.01, "num_steps": 5, "save_times": [0.1]},
         r"save_times=\[0.1\] applies to adaptive integrators, not to the fixed-step integrator 'leapfrog'"),
        ({"t_end": 1.0, "num_steps": 5, "integrator": "ias15"},
         r"num_steps=5 applies to fixed-step integrators, not to the adaptive integrator 'ias15': an adaptive "
         r"integrator chooses its own steps"),
        ({"t_end": 1.0, "save_every": 2, "integrator": "dopri8"},
         r"save_every=2 applies to fixed-step integrators, not to the adaptive integrator 'dopri8'"),
        ({"t_end": 1.0, "rtol": 1e-9, "integrator": "ias15"},
         r"rtol is an option of dopri8, not of the adaptive integrator 'ias15' \(its options: epsilon, adaptive_mode, adjoint\)"),
        ({"dt": 0.01, "num_steps": 5, "epsilon": 1e-9},
         r"epsilon is an option of ias15, not of the fixed-step integrator 'leapfrog' \(it takes no integrator options\)"),
        ({"t_end": 1.0, "rtoll": 1e-9, "integrator": "dopri8"}, r"unknown option 'rtoll' for the integrator 'dopri8'"),
        ({"num_steps": 5}, r"dt is required by the fixed-step integrator 'leapfrog'"),
        ({"dt": 0.01}, r"the fixed-step integrator 'leapfrog' needs num_steps or t_end"),
        ({"dt": 0.01, "num_steps": 5, "t_end": 1.0}, r"give num_steps or t_end, not both"),
        ({"dt": 0.01, "num_steps": 5, "num_saves": 6}, r"num_saves \(6\) exceeds num_steps \(5\)"),
        ({"dt": 0.01, "num_steps": 5, "num_saves": 2, "save_every": 2}, r"give save_every or num_saves, not both"),
        ({"dt": 0.01, "num_steps": 5, "final_only": True, "save_every": 2}, r"final_only keeps the end state only"),
        ({"integrator": "ias15"}, r"t_end must be a finite end time later than state.time = 0.0, got None"),
        ({"t_end": 1.0, "integrator": "ias15", "adaptive_mode": "fast"}, r"adaptive_mode must be one of"),
        ({"t_end": 1.0, "integrator": "dopri8", "chunks": 0}, r"chunks must be a positive integer, got 0"),
        ({"t_end": 1.0, "integrator": "ias15", "steps_per_call": 0}, r"steps_per_call must be a positive integer, got 0"),
        ({"t_end": 1.0, "integrator": "rk45"}, r"unknown integrator 'rk45'; choose one of \["),
    ],
)
def test_wrong_options_are_refused_in_words(options, message):
    with pytest.raises(ValueError, match=message):
        nb.solve(nb.figure_eight(), **options)
