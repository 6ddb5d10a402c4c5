"""A job stopped only because the page's connection was gone for a moment is asked for again.

Between a dropped websocket and Bokeh's reconnect (same session) the session's connection
count is 0, and a job that starts then is dropped as "interrupted". A view that had shown
"Computing…" and waited for ``done`` stayed on it for good: the Forces tab said "Computing the
forces of this configuration ..." for the rest of a CI run (twice, at load 5-7). These tests
fake the served page as tests/app/test_simulate_reconnect.py does (a Bokeh document whose
connection count the test sets; the test thread runs its callbacks).
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

from nbody_explorer.runtime.view import SessionView
from nbody_explorer.views.forces import ForcesView

TIMEOUT_S = 120.0  # a first force comparison (two precisions, compiled) on a loaded machine


@pytest.fixture(autouse=True)
def _keep_bokeh_curdoc():
    original = bokeh_curdoc()
    yield
    bokeh_set_curdoc(original)


def _served(monkeypatch, build):
    """``(view, connection, doc)``: ``build()`` run in a served session whose page is connected."""
    doc = Document()
    connection = SimpleNamespace(destroyed=False, connection_count=1)
    context = SimpleNamespace(session=connection, id="test-session", request=SimpleNamespace(arguments={}))
    doc._session_context = lambda: context
    monkeypatch.setattr(pn.state, "on_session_destroyed", lambda callback: None)
    with set_curdoc(doc):
        view = build()
    assert view.runner.served and view.runner.connected
    return view, connection, doc


def _run_until(doc, condition, timeout_s: float = TIMEOUT_S) -> bool:
    """Run the document's queued callbacks (timeouts early) until ``condition()``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for callback in list(doc.session_callbacks):
            callback.callback()
        if condition():
            return True
        threading.Event().wait(0.01)
    return condition()


def test_a_job_interrupted_by_a_reconnect_runs_again_once_the_page_is_back(monkeypatch):
    view, connection, doc = _served(monkeypatch, lambda: SessionView(label="test"))
    connection.connection_count = 0  # the websocket dropped: a job starting now is dropped
    calls, results = [], []
    view.run_job("work", lambda job: calls.append(1) or 42, done=results.append)
    # Dropped before it started, asked for again every RETRY_AFTER_S, dropped again: never run.
    assert not _run_until(doc, lambda: results, timeout_s=1.0)
    assert calls == []
    connection.connection_count = 1  # Bokeh reconnected the same session
    assert _run_until(doc, lambda: results == [42], timeout_s=30.0)
    assert calls == [1]


def test_a_cancelled_job_is_not_asked_for_again(monkeypatch):
    view, connection, doc = _served(monkeypatch, lambda: SessionView(label="test"))
    connection.connection_count = 0
    results = []
    view.run_job("work", lambda job: 42, done=results.append)
    _run_until(doc, lambda: False, timeout_s=0.5)  # dropped and asked for again, several times
    view.cancel_job("work")
    connection.connection_count = 1
    # A try already taken off the queue may still compute (cancel cannot stop a started job),
    # but its outcome is dropped; a retry coming back after the cancel would say done.
    _run_until(doc, lambda: False, timeout_s=1.5)
    assert results == []


def test_the_forces_tab_finishes_its_comparison_after_a_reconnect(monkeypatch):
    view, connection, doc = _served(monkeypatch, ForcesView)
    state = view.state
    summary_shown = lambda: "Hand-coded kernel applies" in view.status.object  # noqa: E731
    assert _run_until(doc, lambda: not state.computing and summary_shown())
    connection.connection_count = 0
    state.seed = state.seed + 1  # a new configuration, computed while the page is away
    _run_until(doc, lambda: False, timeout_s=1.0)
    assert state.computing  # dropped at every try while the page is away
    connection.connection_count = 1
    assert _run_until(doc, lambda: not state.computing and summary_shown()), "dropped for good"
    assert state._good["seed"] == state.seed  # the new configuration's comparison is shown
