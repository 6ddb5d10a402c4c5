"""Ensembles tab logic without a browser: defaults, refusals, a run, plots, download."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from nbody_explorer.limits import LIMITS
from nbody_explorer.runtime.scheduler import queue_text
from nbody_explorer.state.ensembles import EnsemblesState, parameters_for
from nbody_explorer.views.ensembles import HISTOGRAMS, EnsemblesView
from tests.app.conftest import mark_served, shown_text


@pytest.fixture(scope="module")
def kepler_view():
    # Kepler compiles fast; a dt sweep with two integrators is the orders plot of the issue.
    state = EnsemblesState(system="kepler", num_members=10, num_steps=400, integrators=["leapfrog", "yoshida4"])
    state.param.update(parameter="dt", dt=0.011, low=0.003, high=0.03)  # t_end = 4.4, about one orbit
    view = EnsemblesView(state)
    view.run()
    return view


def test_defaults_follow_system_and_parameter():
    state = EnsemblesState()
    assert (state.system, state.num_bodies, state.num_members, state.num_steps) == ("plummer", 32, 256, 200)
    assert (state.parameter, state.low, state.high, state.log_scale) == ("softening", 0.001, 0.1, True)
    assert "virial_ratio" in state.param.parameter.objects
    state.system = "kepler"
    assert state.param.parameter.objects == parameters_for("kepler")
    assert "eccentricity" in state.param.parameter.objects and "virial_ratio" not in state.param.parameter.objects
    state.parameter = "eccentricity"
    assert (state.low, state.high, state.log_scale) == (0.1, 0.8, False)
    state.system = "plummer"
    assert state.parameter in parameters_for("plummer")
    spec = EnsemblesState().build_spec()
    assert spec.num_members == 256 and spec.num_bodies == 32
    assert [s.name for s in spec.sweeps] == ["softening"]


def test_run_fills_plots_speedup_and_download(kepler_view):
    view, state = kepler_view, kepler_view.state
    result = state.result
    assert result.num_members == 10 and view.progress.value == view.progress.max
    assert set(result.table.integrator) == {"leapfrog", "yoshida4"}
    # Energy error against dt shows each integrator's order (house rule: within +-0.3).
    slopes = state.slopes("max_energy_error")
    assert abs(slopes["leapfrog"] - 2) < 0.3 and abs(slopes["yoshida4"] - 4) < 0.3
    assert len(view.points.data["x"]) == 10
    np.testing.assert_allclose(view.points.data["x"], np.log10(result.table.dt_used))
    assert len(view.fits.data["xs"]) == 2
    assert any("slope 2.0" in label or "slope 1.9" in label for label in view.points.data["label"])
    assert view.outcome_figure.xaxis.axis_label == "log10 dt (step taken)"
    for name in HISTOGRAMS:
        assert view.hist_sources[name].data["count"].sum() == 10
    speedup = state.speedup
    assert speedup["vmap_run_s"] > 0 and speedup["loop_seconds_per_member"] > 0
    np.testing.assert_allclose(speedup["ratio"], speedup["loop_extrapolated_s"] / speedup["vmap_run_s"])
    # The default loop runs the very members the runner ran (10 <= loop_members), and says so.
    assert speedup["loop_members_timed"] == 10 and not speedup["loop_extrapolated"]
    assert "for the same 10 members" in view.speedup_status.object
    assert list(view.speedup_source.data["method"]) == ["vmap runner", "Python loop (same members)"]
    verdict = "faster" if speedup["ratio"] >= 1 else "slower"
    assert f"the vmap runner is {(speedup['ratio'] if verdict == 'faster' else 1 / speedup['ratio']):.1f}x {verdict}" \
        in view.speedup_figure.title.text
    assert not view.download.disabled and view.download.filename == "ensemble_kepler_dt_10.npz"
    data = np.load(view._download_file())
    np.testing.assert_array_equal(data["final_energy_error"], result.summaries["final_energy_error"])
    metadata = json.loads(str(data["metadata"]))
    assert metadata["command"][:4] == ["nbody", "ensemble", "--preset", "kepler"]
    assert "--sweep" in metadata["command"]


def test_a_sampled_loop_says_it_is_extrapolated():
    state = EnsemblesState(system="kepler", num_members=6, num_steps=20, parameter="dt", loop_members=2)
    assert state.run()
    speedup = state.speedup
    assert speedup["loop_members_timed"] == 2 and speedup["loop_extrapolated"]
    assert "evenly spread sample of 2 of the 6 members" in state.speedup_message
    assert state.loop_label == "Python loop (sample, extrapolated)"


def test_outcome_select_redraws_without_rerunning(kepler_view):
    view, state = kepler_view, kepler_view.state
    runs = state.run_count
    state.outcome = "final_virial_ratio"
    assert view.outcome_figure.yaxis.axis_label == "final virial ratio T/|U|"
    np.testing.assert_array_equal(view.points.data["y"], state.result.summaries["final_virial_ratio"])
    assert view.fits.data["xs"] == []  # no power law on a linear outcome
    state.outcome = "max_energy_error"
    assert state.run_count == runs


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_members": 0}, "must be at least 1"),
        ({"num_members": LIMITS.max_ensemble_members + 1}, "exceeds this server's cap"),
        ({"low": 0.05, "high": 0.01}, "empty range"),
        ({"dt": -1.0}, "dt must be positive"),
        ({"integrators": []}, "at least one integrator"),
        ({"num_members": 1}, "grid has 2 points but only 1 members"),
    ],
)
def test_bad_input_notifies_and_keeps_the_previous_result(kepler_view, change, message):
    view, state = kepler_view, kepler_view.state
    previous, runs, old = state.result, state.run_count, {k: getattr(state, k) for k in change}
    try:
        state.param.update(**change)
        view.run()
    finally:
        state.param.update(**old)
    assert message in state.error
    assert view.message.visible and message in shown_text(view.message.object)
    assert "previous result is kept" in shown_text(view.message.object)
    assert state.result is previous and state.run_count == runs


def test_served_run_happens_in_a_thread(monkeypatch):
    # Served: the run goes to the worker pool and results come back through the document's
    # next-tick callback (called here directly, as Bokeh would under the document lock).
    state = EnsemblesState(system="kepler", num_members=4, num_steps=40, parameter="eccentricity")
    view = EnsemblesView(state)
    callbacks = []

    class FakeDocument:
        session_context = SimpleNamespace(session=None)  # a live (not destroyed) document

        def add_next_tick_callback(self, fn):
            callbacks.append(fn)

    view.runner.served, view.runner.doc = True, FakeDocument()
    view.run()
    assert view.run_button.disabled
    assert view.job("ensemble").finished.wait(120)
    assert state.result is None  # nothing changed outside the document lock
    for fn in callbacks:
        fn()
    assert state.result is not None and not view.run_button.disabled
    assert view.progress.value == view.progress.max


def _poll(condition, timeout_s: float = 120.0) -> bool:
    """Wait for ``condition()`` (no fixed sleeps: a loaded machine only makes it slower)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        threading.Event().wait(0.02)
    return condition()


def test_closing_the_tab_stops_a_running_ensemble_within_one_piece(monkeypatch):
    # A chunk of 32 members of N = 64 for 3000 steps runs as ~14 pieces of
    # PIECE_PAIR_STEPS pair-steps (0.1-0.2 s of CPU each); the tab closes after the second.
    import nbody_explorer.state.ensembles as ensembles_state

    state = EnsemblesState(system="plummer", num_bodies=64, num_members=32, num_steps=3000, loop_members=1)
    view = EnsemblesView(state)
    checks = []  # one entry per poll before a piece: was the stop already set?
    real_run = ensembles_state.run_ensemble

    def counting_run(spec, **options):
        inner = options.pop("should_stop")

        def should_stop():
            checks.append(view.runner.stop.is_set())
            return inner()

        return real_run(spec, should_stop=should_stop, **options)

    monkeypatch.setattr(ensembles_state, "run_ensemble", counting_run)

    mark_served(view)
    view.run()
    job = view.job("ensemble")
    assert _poll(lambda: len(checks) >= 2 or job.finished.is_set())
    assert not job.finished.is_set(), "the run ended before it could be stopped"
    at_stop = len(checks)
    view.runner._on_session_destroyed(None)  # the tab closed
    assert _poll(job.finished.is_set)
    # At most the piece running when the tab closed finished; the next poll stopped the job.
    assert len(checks) - at_stop <= 1
    assert checks[at_stop:] in ([], [True])
    assert job.error is None and job.cancelled() and state.result is None


def test_a_waiting_run_shows_its_place_in_the_queue(kepler_view):
    view = kepler_view
    view.runner.queue_position = 3  # set by the pool (in the session) while the job waits
    assert view.queue_status.visible and queue_text(3) in view.queue_status.object
    assert "2 ahead of you" in view.queue_status.object
    view.runner.queue_position = 0  # it got a slot
    assert not view.queue_status.visible
