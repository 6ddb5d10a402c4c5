"""A served Simulate view whose page has no connection for a moment never freezes.

Bokeh counts a session's websocket connections; between a dropped websocket and the
client's reconnect (same session) the count is 0. A compile job that ended, or was asked
for, in that moment used to be treated as belonging to a closed tab: its ``done`` callback
was dropped and the view stayed on "compiling…" for good (seen in browser tests of an
in-process server at load average ~17). These tests fake the served page: a Bokeh document
with a session context whose connection count the test sets, and the event loop (the
document's next-tick and timeout callbacks) run by the test thread.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import panel as pn
import pytest
from bokeh.document import Document
from bokeh.io.doc import curdoc as bokeh_curdoc
from bokeh.io.doc import set_curdoc as bokeh_set_curdoc
from panel.io.state import set_curdoc

from nbody_explorer.state.simulate import SimulationState
from nbody_explorer.views.simulate import SimulateView

TIMEOUT_S = 120.0  # a first compile of the figure-eight on a loaded 2-core machine


@pytest.fixture(autouse=True)
def _keep_bokeh_curdoc():
    """Running a fake served document's callbacks replaces Bokeh's global current document;
    put the original back so later tests are not 'served'."""
    original = bokeh_curdoc()
    yield
    bokeh_set_curdoc(original)


def _served_view(monkeypatch):
    """``(view, connection, doc)``: a SimulateView built in a served session whose page is
    connected (``connection.connection_count``, set by the test)."""
    doc = Document()
    connection = SimpleNamespace(destroyed=False, connection_count=1)
    context = SimpleNamespace(session=connection, id="test-session", request=SimpleNamespace(arguments={}))
    doc._session_context = lambda: context  # Bokeh keeps a weak reference: a callable
    monkeypatch.setattr(pn.state, "on_session_destroyed", lambda callback: None)
    with set_curdoc(doc):
        view = SimulateView(sync_url=False)
    assert view.runner.served and view.runner.connected  # the page's connection is seen
    return view, connection, doc


def _run_event_loop_once(doc) -> None:
    """What the session's event loop would run now: every queued next-tick and timeout
    callback (a timeout runs early: nothing here depends on its delay)."""
    for callback in list(doc.session_callbacks):
        callback.callback()


def _run_event_loop_until(doc, condition, timeout_s: float = TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _run_event_loop_once(doc)
        if condition():
            return True
        threading.Event().wait(0.01)  # the pool's threads compute meanwhile (no fixed wait)
    return condition()


def test_a_compile_that_ends_while_the_page_reconnects_does_not_leave_the_view_compiling(monkeypatch):
    gate = threading.Event()
    real_prepare = SimulationState.prepare

    def prepare_after_gate(self):
        assert gate.wait(TIMEOUT_S)
        return real_prepare(self)

    monkeypatch.setattr(SimulationState, "prepare", prepare_after_gate)
    view, connection, doc = _served_view(monkeypatch)
    job = view.job("prepare")
    assert view.compiling and job is not None
    connection.connection_count = 0  # the websocket dropped; Bokeh's client reconnects
    gate.set()
    assert job.finished.wait(TIMEOUT_S)
    _run_event_loop_once(doc)  # the outcome reaches the session before the page is back
    connection.connection_count = 1  # reconnected to the same session
    assert _run_event_loop_until(doc, lambda: view.state.ready and not view.compiling), "stuck compiling"
    assert "compiling" not in view.status.object and "paused" in view.status.object
    view.playing = True  # and the run plays
    assert _run_event_loop_until(doc, lambda: view.scene.last_sent[1] >= 1)
    view.playing = False


def test_a_compile_asked_for_while_the_page_reconnects_runs_once_it_is_back(monkeypatch):
    view, connection, doc = _served_view(monkeypatch)
    assert _run_event_loop_until(doc, lambda: view.state.ready and not view.compiling)
    view.state.integrator = "yoshida4"  # a new run to compile ...
    connection.connection_count = 0  # ... asked for while the websocket reconnects
    _run_event_loop_until(doc, lambda: view.job("prepare") is None or view.job("prepare").finished.is_set())
    _run_event_loop_once(doc)  # the event loop runs on while the page is away
    assert not view.state.ready
    connection.connection_count = 1
    assert _run_event_loop_until(doc, lambda: view.state.ready and not view.compiling), "stuck compiling"
    assert "compiling" not in view.status.object and "paused" in view.status.object
    view.step()
    assert _run_event_loop_until(doc, lambda: view.state.frames_taken == 1)


def test_a_step_interrupted_by_a_lost_connection_does_not_block_the_next_step(monkeypatch):
    view, connection, doc = _served_view(monkeypatch)
    assert _run_event_loop_until(doc, lambda: view.state.ready and not view.compiling)
    connection.connection_count = 0  # the page is gone when the step's job is dispatched
    view.step()
    assert _run_event_loop_until(doc, lambda: view.job("step") is None or view.job("step").finished.is_set())
    _run_event_loop_once(doc)
    connection.connection_count = 1
    view.step()  # a click after the reconnect steps
    assert _run_event_loop_until(doc, lambda: view.state.frames_taken == 1), "Step ignored for good"
