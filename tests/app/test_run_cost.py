"""Every compute path of the live run in bounded, cancellable pieces, and refused in words when
over the per-action budget (app/state/run_cost.py, issue 26 item 1)."""

import pytest

import nbody_explorer.state.run_cost as run_cost
from nbody_explorer.limits import LIMITS
from nbody_explorer.state.forces import ForcesState
from nbody_explorer.state.predict import check_reveal
from nbody_explorer.state.run_cost import MAX_STEP_S, check_frame_cost, step_seconds, steps_per_piece
from nbody_explorer.state.simulate import SimulationState
from nbody_explorer.views.simulate import SimulateView


@pytest.fixture
def tiny_pieces(monkeypatch):
    """One step a piece whatever it costs: a frame of many steps becomes many pieces."""
    monkeypatch.setattr(run_cost, "PIECE_S", 1e-12)


@pytest.mark.parametrize("integrator", ["ias15", "dopri8", "yoshida4"])
def test_a_frame_stops_within_one_piece_of_a_cancel(tiny_pieces, integrator):
    state = SimulationState(preset="pythagorean", integrator=integrator, dt=0.1, steps_per_frame=20)
    state.prepare()
    time_before = state.time
    polls = []

    def cancelled():
        polls.append(state.last_frame_pieces[-1] if state.last_frame_pieces else None)
        return len(polls) >= 3  # Pause pressed while the frame's third piece computes

    assert state.step_frame(cancelled=cancelled) is None  # dropped: nothing committed
    assert state.time == time_before and state.frames_taken == 0
    # The cancel check runs before the frame and after each piece: the third poll came right
    # after the second piece, and no piece ran after it.
    assert len(state.last_frame_pieces) == 2
    assert [steps for steps, _ in state.last_frame_pieces] == [1, 1]


@pytest.mark.parametrize("integrator", ["ias15", "yoshida4"])
def test_frame_pieces_hold_the_steps_the_measured_step_time_allows(tiny_pieces, integrator):
    state = SimulationState(preset="pythagorean", integrator=integrator, dt=0.1, steps_per_frame=20)
    state.prepare()
    assert state._chunk_steps == 1
    assert state.step_frame() is not None and state.fault is None
    pieces = state.last_frame_pieces
    # Every piece but an adaptive frame's last one holds exactly the allowed steps; the frame
    # as a whole is the same run (the same steps land on the same end time).
    assert len(pieces) >= 2 and all(steps == 1 for steps, _ in pieces)
    if integrator == "yoshida4":
        assert len(pieces) == 20 and state.steps_taken == 20


def test_steps_per_piece_keep_a_piece_near_its_budget():
    assert steps_per_piece(1e-3, cap=10_000) == int(run_cost.PIECE_S / 1e-3)
    assert steps_per_piece(1.0, cap=10_000) == 1  # one step is the smallest piece
    assert steps_per_piece(1e-9, cap=500) == 500
    for seconds in (2e-5, 3e-4, 0.05):  # measured: N = 200, N = 1000, N = 2000 yoshida4 steps
        k = steps_per_piece(seconds, cap=10**6)
        assert k * seconds <= run_cost.PIECE_S < (k + 1) * seconds


def test_a_frame_over_the_budget_is_refused_in_words_with_the_estimate():
    with pytest.raises(ValueError) as refused:
        check_frame_cost(integrator="yoshida4", adaptive=False, num_bodies=2000, steps=200)
    text = str(refused.value)
    estimate = step_seconds("yoshida4", 2000) * 200
    assert estimate > LIMITS.max_click_cpu_seconds
    assert text.startswith("One frame of 200 steps of 2000 bodies with yoshida4 would need about 14 s")
    assert "reduce Steps per frame or Bodies N" in text and "SimulationState" not in text
    assert check_frame_cost(integrator="yoshida4", adaptive=False, num_bodies=200, steps=200) < 1


@pytest.mark.parametrize("integrator", ["dopri8", "ias15"])
def test_an_adaptive_step_too_long_to_stop_is_refused_naming_the_largest_n(integrator):
    with pytest.raises(ValueError, match=rf"With {integrator}, one step of 2000 bodies would need about") as refused:
        check_frame_cost(integrator=integrator, adaptive=True, num_bodies=2000, steps=200)
    largest = int(str(refused.value).split("choose at most ")[1].split()[0])
    assert step_seconds(integrator, largest) <= MAX_STEP_S < step_seconds(integrator, largest + 1)
    assert "for Bodies N, or a fixed-step Integrator" in str(refused.value)


def test_play_of_the_shared_hostile_link_is_refused_before_any_work():
    view = SimulateView(SimulationState(preset="figure_eight"))
    # /app?preset=plummer&n=2000&integrator=dopri8&dt=1&steps=200, as the page applies it
    assert view.state.apply_settings({"preset": "plummer", "n": "2000", "integrator": "dopri8", "dt": "1",
                                      "steps": "200"}) == []
    assert (view.state.body_count, view.state.integrator, view.state.steps_per_frame) == (2000, "dopri8", 200)
    frames = view.state.frames_taken
    view.playing = True
    assert not view.playing and view.state.frames_taken == frames
    assert "With dopri8, one step of 2000 bodies would need about" in view.last_message
    view.state.integrator = "yoshida4"
    view.step()
    assert view.state.frames_taken == frames
    assert "reduce Steps per frame or Bodies N" in view.last_message


def test_a_reveal_is_bounded_and_refused_in_words():
    with pytest.raises(ValueError, match=r"Δt = 5000 is more than 1,000 save intervals dt = 1 ahead"):
        check_reveal(horizon=5000.0, dt=1.0, integrator="ias15", num_bodies=3)
    with pytest.raises(ValueError, match=r"This reveal of 2,?000 steps of 2000 bodies with yoshida4 .*reduce Δt or "
                                         r"Bodies N"):
        check_reveal(horizon=2.0, dt=1e-3, integrator="yoshida4", num_bodies=2000)
    check_reveal(horizon=2.0, dt=1e-3, integrator="yoshida4", num_bodies=64)  # cheap: allowed


def test_forces_timing_over_the_budget_is_refused_and_the_default_runs():
    state = ForcesState()
    assert state.check_timing_cost() == (16, 64, 256, 1024)
    state.param.update(timing_ns=", ".join(str(64 * k) for k in range(1, 32)), timing_repeats=20)
    with pytest.raises(ValueError, match=r"This timing sweep would need about .* reduce the Timing N values, the "
                                         r"Repeats"):
        state.check_timing_cost()
    assert state.run_timing() is None and "This timing sweep" in state.error
