"""Predict, then reveal (app/state/predict.py): guesses, the true path of a copy, distances."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from nbody_explorer.state.predict import (
    MAX_GUESSES,
    MAX_REVEAL_STEPS,
    Guess,
    PredictState,
    guess_distances,
    true_path,
)
from nbody_core.systems.initial_conditions import kepler
from nbody_core.physics.state import PhysicsParams

OMEGA = math.sqrt(2.0)  # circular Kepler orbit, a = 1, M = 2, G = 1: omega = sqrt(G M / a^3)


def _circular(**overrides):
    """A paused 'run' as PredictState reads it: body 1 on a circle of radius 0.5 about the origin."""
    return SimpleNamespace(**{
        "current": kepler(e=0.0), "generation": 1, "dt": 1e-3, "physics_params": PhysicsParams(),
        "integrator": "leapfrog", "forces": "analytic", **overrides,
    })


def _exact(t):
    return np.array([0.5 * math.cos(OMEGA * t), 0.5 * math.sin(OMEGA * t), 0.0])


def test_reveal_scores_each_guess_against_the_analytic_orbit_and_finds_the_closest():
    run = _circular()
    game = PredictState(active=True, body=1, horizon=1.0)
    game.anchor(run.generation, 0.0, 2)
    truth = _exact(1.0)
    game.add_guess("xy", truth[0] + 0.3, truth[1] - 0.4)  # 0.5 away
    game.add_guess("xy", truth[0], truth[1])  # on the answer
    game.add_guess("xz", truth[0] - 0.2, 0.0)  # 0.2 away in the x-z plane
    result = game.reveal(run)
    assert result is game.result and game.error == ""
    # Leapfrog phase error ~ (omega dt)^2 / 24 per radian: 1.4 rad x 8e-8 x r = 0.5 -> ~6e-8 in
    # position after t = 1; 1e-6 leaves room for the float64 round-off of 1000 steps.
    assert np.allclose(result.path[-1], truth, atol=1e-6)
    assert result.distances == pytest.approx([0.5, 0.0, 0.2], abs=1e-6)
    assert result.closest == 1
    assert result.steps == 1000 and result.horizon == pytest.approx(1.0, rel=1e-12)
    # The path starts at the paused position and follows the circle the whole way.
    assert np.allclose(result.path[0], [0.5, 0.0, 0.0])
    radius = np.linalg.norm(result.path, axis=1)
    assert np.allclose(radius, 0.5, atol=1e-6) and len(result.path) == 241
    assert np.allclose(result.path, np.stack([_exact(t) for t in result.time]), atol=1e-6)
    rows = game.rows()
    assert [row[2] for row in rows] == [False, True, False]
    assert rows[0] == ("Guess 1 (xy)", "0.5 length units", False)
    assert "Closest: guess 2" in game.summary()


def test_the_live_run_is_not_advanced_by_a_reveal():
    run = _circular()
    before = run.current
    game = PredictState(body=0, horizon=0.5)
    game.add_guess("xy", 0.0, 0.0)
    result = game.reveal(run)
    assert run.current is before and float(run.current.time) == 0.0
    assert np.array_equal(np.asarray(run.current.position), np.asarray(kepler(e=0.0).position))
    assert float(result.end_state.time) == pytest.approx(0.5)
    assert np.allclose(np.asarray(result.end_state.position[0]), result.path[-1])


def test_a_new_moment_clears_the_guesses_and_a_stale_result_is_refused():
    game = PredictState(body=1)
    assert game.anchor(1, 0.0, 2)
    game.add_guess("xy", 0.1, 0.2)
    assert not game.anchor(1, 0.0, 2)  # same paused moment: guesses kept
    assert len(game.guesses) == 1
    result = game.compute(_circular())
    game.add_guess("xy", 0.3, 0.3)  # placed while the answer was computed
    assert not game.accept(result) and game.result is None
    assert game.anchor(1, 0.25, 2)  # stepped on: a new round
    assert game.guesses == [] and game.result is None
    game.add_guess("yz", 0.0, 0.0)
    stale = game.compute(_circular(generation=0))  # the run was rebuilt since
    assert not game.accept(stale)


def test_a_guess_after_a_reveal_starts_a_new_round():
    game = PredictState(body=1, horizon=0.1)
    game.add_guess("xy", 0.5, 0.1)
    assert game.reveal(_circular()) is not None
    game.add_guess("xy", 0.0, 0.0)
    assert game.guesses == [Guess("xy", 0.0, 0.0)] and game.result is None


def test_each_session_keeps_its_own_guesses():
    first, second = PredictState(), PredictState()
    first.add_guess("xy", 1.0, 2.0)
    second.add_guess("xz", -1.0, 0.5)
    assert first.guesses == [Guess("xy", 1.0, 2.0)] and second.guesses == [Guess("xz", -1.0, 0.5)]


def test_bad_guesses_and_horizons_are_refused_in_words():
    game = PredictState()
    with pytest.raises(ValueError, match="projection"):
        game.add_guess("3d", 0.0, 0.0)
    with pytest.raises(ValueError, match="finite"):
        game.add_guess("xy", float("nan"), 0.0)
    for k in range(MAX_GUESSES):
        game.add_guess("xy", k, 0.0)
    with pytest.raises(ValueError, match=f"at most {MAX_GUESSES} guesses"):
        game.add_guess("xy", 0.0, 0.0)
    run = _circular()
    with pytest.raises(ValueError, match="body must be one of 0 … 1"):
        true_path(run.current, body=2, horizon=1.0, dt=1e-3, params=PhysicsParams(), integrator="leapfrog",
                  forces="analytic")
    game = PredictState(horizon=(MAX_REVEAL_STEPS + 1) * 1e-3)
    assert game.reveal(run) is None and "choose a shorter Δt" in game.error


def test_distance_is_measured_in_the_guess_plane():
    final = np.array([1.0, 2.0, 3.0])
    guesses = [Guess("xy", 1.0, 2.0), Guess("xz", 1.0, 0.0), Guess("yz", 5.0, 7.0)]
    assert guess_distances(guesses, final) == pytest.approx([0.0, 3.0, 5.0])


def test_an_adaptive_run_is_revealed_to_the_same_answer():
    # IAS15 at its default tolerance integrates the circle to round-off (its own tests), so
    # the answer is the analytic one to well within the leapfrog bound above.
    game = PredictState(body=1, horizon=1.0)
    game.add_guess("xy", 0.0, 0.0)
    result = game.reveal(_circular(integrator="ias15"))
    assert result is not None, game.error
    assert np.allclose(result.path[-1], _exact(1.0), atol=1e-9)
    assert result.time[-1] == pytest.approx(1.0, rel=1e-12)
    assert result.distances[0] == pytest.approx(0.5, abs=1e-9)


def test_browser_messages_become_guesses_or_are_refused_in_words():
    game = PredictState()
    assert game.add_guess_message({"type": "guess", "plane": "xz", "a": "0.5", "b": -1}) == Guess("xz", 0.5, -1.0)
    for bad in ({"plane": "xy", "a": "left"}, {"plane": "xy"}, ["xy", 1, 2], {"plane": "<b>", "a": 1, "b": 2}):
        with pytest.raises(ValueError):
            game.add_guess_message(bad)
    assert len(game.guesses) == 1


def test_scene_marks_carry_guesses_then_the_path_and_distances():
    game = PredictState(body=1, horizon=1.0)
    game.add_guess("xy", 0.0, 0.0)
    marks = game.scene_marks()
    assert marks == {"guesses": [["xy", 0.0, 0.0]], "labels": ["1"], "closest": -1, "path": []}
    result = game.reveal(_circular())
    marks = game.scene_marks("au_msun_yr")
    assert marks["labels"] == [f"1: {result.distances[0]:.4g} AU"] and marks["closest"] == 0
    assert len(marks["path"]) == len(result.path) and np.allclose(marks["path"], result.path, atol=1e-9)


# ---------------------------------------------------------------------- the view (no browser)
def test_predict_panel_reveals_on_a_copy_and_continues_only_when_asked():
    from nbody_explorer.views.simulate import SimulateView

    view = SimulateView(sync_url=False)  # figure-eight, leapfrog, dt = 1e-3
    panel, state = view.predictor, view.state
    view.step()
    t0, x0 = state.time, state.position.copy()
    assert state.projection == "3d"
    panel.toggle.value = True
    assert view.scene.predicting and state.projection == "xy" and not view.playing
    panel.body_input.value = 1
    panel.horizon_input.value = 0.5
    panel.add_guess({"type": "guess", "plane": "xy", "a": 0.0, "b": 0.0})
    panel.add_guess({"type": "guess", "plane": "xy", "a": 0.5, "b": 0.2})
    assert view.scene.predict_marks["guesses"] == [["xy", 0.0, 0.0], ["xy", 0.5, 0.2]]
    assert view.scene.predict_body == 1
    panel.reveal()  # not served: computed at once
    result = panel.game.result
    assert result is not None and result.steps == 500
    assert state.time == t0 and np.array_equal(state.position, x0)  # the live run stays paused where it was
    marks = view.scene.predict_marks
    assert len(marks["path"]) == 241 and marks["closest"] == result.closest
    assert np.allclose(marks["path"][0], x0[1]) and np.allclose(marks["path"][-1], result.path[-1])
    # The table shows the server's distances (4 significant digits) and marks the closest.
    for distance in result.distances:
        assert f"{distance:.4g} length units" in panel.table.object
    assert panel.table.object.count('class="closest"') == 1
    assert panel.continue_button.visible
    panel.continue_run()
    assert state.time == pytest.approx(t0 + 0.5, abs=1e-12)
    assert np.allclose(state.position[1], result.path[-1])
    assert panel.game.guesses == [] and panel.game.result is None  # a new round at the new moment
    panel.add_guess({"type": "guess", "plane": "xy", "a": 0.1, "b": 0.1})
    view.playing = True  # Play ends predict mode
    assert not panel.toggle.value and not view.scene.predicting and view.scene.predict_marks == {}
    view.playing = False


def test_predict_panel_refuses_bad_messages_and_clicks_outside_predict_mode():
    from nbody_explorer.views.simulate import SimulateView

    view = SimulateView(sync_url=False)
    panel = view.predictor
    panel.add_guess({"type": "guess", "plane": "xy", "a": 0.0, "b": 0.0})  # not in predict mode: ignored
    assert panel.game.guesses == []
    panel.toggle.value = True
    panel.add_guess({"type": "guess", "plane": "3d", "a": 0.0, "b": 0.0})
    assert panel.game.guesses == [] and "Guess not placed" in view.last_message
    panel.reveal()  # nothing to reveal yet: said in words
    assert panel.game.result is None and "place at least one guess" in view.last_message
