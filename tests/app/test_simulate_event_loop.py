"""Issues 11/16: a served Simulate session runs no JAX on the event loop.

A served session is made here without a server (the ``served_document`` fixture of
tests/app/conftest.py); the session callbacks the worker pool schedules are run on
this thread by :func:`_pump`, as Bokeh's event loop would. The run's JAX entry points record
the thread that calls them: building the view, pressing Reset and Play must leave every call
to the pool's threads.
"""

from __future__ import annotations

import threading
import time

import pytest
from bokeh.document import Document
from panel.io.state import set_curdoc

import nbody_explorer.state.simulate_run as simulate_run
from nbody_explorer.state.simulate import SimulationState
from nbody_explorer.views.simulate import SimulateView

_TIMEOUT_S = 120.0  # generous: the machine is shared (load ~10); a quiet one needs ~3 s


@pytest.fixture
def jax_threads(monkeypatch):
    """The threads that entered the run's JAX code (initial conditions, the frame
    function, the diagnostics)."""
    threads: list[threading.Thread] = []

    def recorded(fn):
        def call(*args, **kwargs):
            threads.append(threading.current_thread())
            return fn(*args, **kwargs)
        return call

    monkeypatch.setattr(SimulationState, "_initial_state", recorded(SimulationState._initial_state))
    monkeypatch.setattr(simulate_run, "solve", recorded(simulate_run.solve))
    monkeypatch.setattr(simulate_run, "run_diagnostics", recorded(simulate_run.run_diagnostics))
    return threads


def _served_view(doc: Document, state: SimulationState) -> SimulateView:
    with set_curdoc(doc):
        view = SimulateView(state, sync_url=False)
    assert view.runner.served
    return view


def _pump(doc: Document, until, timeout_s: float = _TIMEOUT_S) -> None:
    """Run the document's pending session callbacks on this thread (the event loop's job)
    until ``until()`` holds."""
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, "condition not met in time"
        callbacks = list(doc.session_callbacks)
        for callback in callbacks:
            doc.callbacks.remove_session_callback(callback)
            callback.callback()
        if not callbacks:
            threading.Event().wait(0.01)


def test_session_build_reset_and_play_run_no_jax_on_the_event_loop(served_document, jax_threads):
    event_loop = threading.current_thread()
    state = SimulationState(preset="plummer", num_bodies=64, seed=3)
    assert jax_threads == [] and not state.built  # a new state builds nothing yet
    doc = served_document
    view = _served_view(doc, state)
    assert "preparing…" in view.status.object
    _pump(doc, lambda: state.ready and not view.compiling)
    assert view.scene.mass.shape == (64,)  # drawn once built on the pool
    assert "preparing" not in view.status.object

    view.state.steps_per_frame = 2
    view.reset_button.clicks += 1  # locked: runs in the pumped session callback
    _pump(doc, lambda: not state.ready)
    assert "preparing…" in view.status.object
    view.play_button.value = True  # Play right after Reset, while the run is rebuilt
    _pump(doc, lambda: state.frames_taken >= 1 and view.scene.last_sent[1] >= 0 and view.scene.frames_sent > 2)
    view.play_button.value = False
    assert state.time > 0.0 and view.scene.mass.shape == (64,)
    assert jax_threads, "the run never entered its JAX code"
    assert event_loop not in jax_threads, [t.name for t in jax_threads]


def test_not_served_the_state_still_builds_on_first_use():
    # Notebooks and scripts read the run at once: the first readout builds it on the caller.
    state = SimulationState(preset="kepler")
    assert not state.built
    assert state.position.shape == (2, 3) and state.built and state.time == 0.0
    state.reset()
    assert not state.built and state.current.num_bodies == 2
