"""The runtime's view base class, periodic work, session admission and document calls
(app/runtime/view.py, periodic.py, admission.py, document.py)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import panel as pn
import pytest
from bokeh.document import Document
from bokeh.io.doc import curdoc as bokeh_curdoc
from panel.io.state import set_curdoc

from nbody_explorer.runtime import admission
from nbody_explorer.runtime.document import document_destroyed, try_run_locked
from nbody_explorer.runtime.periodic import Periodic
from nbody_explorer.runtime.session import SessionRunner
from nbody_explorer.runtime.view import SessionView


class _View(SessionView):
    def __init__(self, **params):
        super().__init__(label="test", **params)
        self.message = pn.pane.Alert("", visible=False)


def _wait_until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        threading.Event().wait(0.005)


# ------------------------------------------------------------------ SessionView
def test_a_view_runs_a_named_job_and_hands_over_its_outcome_not_served():
    view = _View()
    assert not view.served and view.runner.label == "test"
    seen = []
    job = view.run_job("sum", lambda job: 41 + 1, done=lambda result: seen.append((result, view.job("sum"))))
    assert job.completed and seen == [(42, None)]  # done ran after the job left its name
    assert view.job("sum") is None and not view.job_running("sum")
    view.run_job("div", lambda job: 1 / 0, failed=lambda error: seen.append(type(error).__name__))
    assert seen[-1] == "ZeroDivisionError" and view.job("div") is None


def test_a_shared_runner_is_the_same_runner():
    outer = _View()
    inner = SessionView(runner=outer.runner)
    assert inner.runner is outer.runner


def test_a_served_view_holds_its_job_until_the_outcome_reaches_the_session(served_document):
    with set_curdoc(served_document):
        view = _View()
    assert view.served
    gate, outcomes = threading.Event(), []
    job = view.run_job("long", lambda job: gate.wait(10) and "result", done=outcomes.append)
    assert view.job("long") is job and view.job_running("long")
    assert view.job_running("long", message="Already running.") and view.message.visible
    assert "Already running" in view.message.object and view.message.alert_type == "info"
    gate.set()
    assert job.finished.wait(10)
    assert not view.job_running("long") and view.job("long") is job  # finished; its outcome not handed yet
    for callback in list(served_document.session_callbacks):  # what the event loop would run
        callback.callback()
    assert outcomes == ["result"] and view.job("long") is None


def test_a_cancelled_job_is_forgotten_and_its_outcome_never_comes(served_document):
    with set_curdoc(served_document):
        view = _View()
    started, outcomes = threading.Event(), []

    def forever(job):
        started.set()
        while True:
            job.checkpoint()
            threading.Event().wait(0.005)

    job = view.run_job("loop", forever, done=outcomes.append, failed=outcomes.append,
                       interrupted=lambda: outcomes.append("interrupted"))
    assert started.wait(10)
    view.cancel_job("loop")
    assert view.job("loop") is None and job.finished.wait(10)
    replacement = view.run_job("loop", lambda job: "second", done=outcomes.append)
    assert replacement.finished.wait(10)
    for callback in list(served_document.session_callbacks):
        callback.callback()
    assert outcomes == ["second"]  # the cancelled job handed nothing over
    assert view.job("loop") is None


def test_a_stale_outcome_does_not_forget_a_newer_job_of_the_same_name(served_document):
    with set_curdoc(served_document):
        view = _View()
    first = view.run_job("frame", lambda job: 1)
    assert first.finished.wait(10)
    second = view.run_job("frame", lambda job: threading.Event().wait(10))  # replaces the name
    for callback in list(served_document.session_callbacks):
        callback.callback()  # the first job's outcome arrives now
    assert view.job("frame") is second
    second.cancel()


def test_a_queue_line_follows_the_place_in_the_queue():
    view = _View()
    line = view.queue_line(name="test-queue")
    assert line.name == "test-queue" and not line.visible
    view.runner.queue_position = 3
    assert line.visible and "2 ahead of you" in line.object
    view.runner.queue_position = 0
    assert not line.visible and line.object == ""


def test_notify_sets_only_the_box():
    view = _View()
    view.notify("Some *settings* were not applied", level="warning")
    assert view.message.visible and view.message.alert_type == "warning"
    assert view.message.object.replace("\\", "") == "Some *settings* were not applied"


# ------------------------------------------------------------------ Periodic
def test_periodic_work_starts_stops_and_ends_with_its_runner(monkeypatch):
    made = []

    class Callback:
        def __init__(self, fn, period):
            self.fn, self.period, self.running = fn, period, True

        def stop(self):
            self.running = False

    def add_periodic_callback(fn, period, start):
        assert start
        made.append(Callback(fn, period))
        return made[-1]

    monkeypatch.setattr(pn.state, "add_periodic_callback", add_periodic_callback)
    runner = SessionRunner("test")
    ticks = Periodic(lambda: None, period_ms=40, runner=runner)
    assert not ticks.running
    ticks.start()
    ticks.start()  # already started: nothing
    assert ticks.running and len(made) == 1 and made[0].period == 40
    ticks.period_ms = 25  # applies to the running callback
    assert made[0].period == 25
    ticks.stop()
    assert not ticks.running and not made[0].running
    ticks.start()
    assert len(made) == 2 and made[1].period == 25
    runner.close()  # the session is destroyed
    assert ticks.closed and not ticks.running and not made[1].running
    ticks.start()
    assert len(made) == 2  # never again
    with pytest.raises(ValueError, match="period_ms must be at least 1"):
        Periodic(lambda: None, period_ms=0)


def test_periodic_work_without_a_runner_stops_when_its_served_session_is_destroyed(served_document, monkeypatch):
    hooks = []
    monkeypatch.setattr(pn.state, "on_session_destroyed", hooks.append)
    monkeypatch.setattr(pn.state, "add_periodic_callback",
                        lambda fn, period, start: SimpleNamespace(stop=lambda: None, period=period))
    with set_curdoc(served_document):
        ticks = Periodic(lambda: None, period_ms=5000)
    ticks.start()
    assert ticks.running and len(hooks) == 1
    hooks[0](None)  # Bokeh destroys the session
    assert ticks.closed and not ticks.running


# ------------------------------------------------------------------ admission
def test_admit_session_counts_against_the_cap_and_releases_on_destroy(monkeypatch):
    registry = admission.SessionRegistry(trim_delay=3600.0)
    destroyed = []
    monkeypatch.setattr(pn.state, "on_session_destroyed", destroyed.append)
    docs = []
    for index in range(3):
        doc = Document()
        context = SimpleNamespace(id=f"session-{index}", session=None)
        doc._session_context = lambda context=context: context
        docs.append(doc)
    with set_curdoc(docs[0]):
        assert admission.admit_session(2, registry=registry)
    with set_curdoc(docs[1]):
        assert admission.admit_session(2, registry=registry)
    with set_curdoc(docs[2]):
        assert not admission.admit_session(2, registry=registry)  # full
    assert registry.live == 2 and len(destroyed) == 2
    destroyed[0](None)  # the first tab's session is destroyed
    assert registry.live == 1
    with set_curdoc(docs[2]):
        assert admission.admit_session(2, registry=registry)
    registry.release("session-1")
    registry.release("session-2")  # the last one: memory is released after trim_delay (not here)


class _Browser:
    """A session's open connection count, as Bokeh's ``ServerSession.connection_count`` reads."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        return self.count


def test_page_requests_that_never_connect_do_not_count():
    # Issue 26 problem 3: 29 plain GETs (no websocket) filled a cap of 30 for ~26 s.
    registry = admission.SessionRegistry(trim_delay=3600.0)
    for index in range(100):
        assert registry.admit(f"get-{index}", 3, address="10.0.0.9", per_address=2, connections=_Browser())
    assert registry.live == 0 and registry.sessions == 100
    student = _Browser()
    assert registry.admit("student", 3, address="10.0.0.1", per_address=2, connections=student)
    student.count = 1  # the page's websocket connects
    assert registry.confirm("student", 3, per_address=2) and registry.live == 1


def test_one_address_holds_at_most_k_viewers_and_a_refusal_says_which_cap():
    registry = admission.SessionRegistry(trim_delay=3600.0)
    tabs = [_Browser() for _ in range(3)]
    for index, tab in enumerate(tabs[:2]):
        assert registry.admit(f"tab-{index}", 30, address="10.0.0.1", per_address=2, connections=tab)
        tab.count = 1
    refused = registry.admit("tab-2", 30, address="10.0.0.1", per_address=2, connections=tabs[2])
    assert not refused and refused.reason == admission.ADDRESS_FULL and refused.cap == 2
    assert registry.admit("other", 30, address="10.0.0.2", per_address=2, connections=_Browser())
    assert registry.admit("no-limit", 30, address="10.0.0.1", per_address=0, connections=_Browser())
    full = registry.admit("late", 2, address="10.0.0.3", per_address=2, connections=_Browser())
    assert not full and full.reason == admission.FULL and (full.live, full.cap) == (2, 2)


def test_pages_requested_together_are_checked_again_once_connected():
    registry = admission.SessionRegistry(trim_delay=3600.0)
    tabs = {name: _Browser() for name in "abc"}
    for name, tab in tabs.items():  # three GETs before any websocket: all pass the first check
        assert registry.admit(name, 2, address=name, connections=tab)
    answers = {}
    for name, tab in tabs.items():
        tab.count = 1
        answers[name] = registry.confirm(name, 2)
    assert answers["a"] and answers["b"] and not answers["c"] and answers["c"].reason == admission.FULL
    assert registry.live == 2 and registry.sessions == 2  # the refused one no longer counts


def test_a_dropped_connection_keeps_its_place_for_the_grace_only():
    now = [0.0]
    registry = admission.SessionRegistry(trim_delay=3600.0, disconnect_grace_s=5.0, clock=lambda: now[0])
    tab = _Browser()
    registry.admit("tab", 1, connections=tab)
    tab.count = 1
    assert registry.live == 1
    tab.count = 0  # the websocket drops (a network blip, or the tab closed)
    now[0] = 4.9
    assert registry.live == 1 and not registry.admit("other", 1, connections=_Browser())
    now[0] = 5.1
    assert registry.live == 0 and registry.admit("other", 1, connections=_Browser())
    tab.count = 1  # it reconnects: counted again
    assert registry.live == 1


class _FakeServerSession:
    """What admission reads of Bokeh's ``ServerSession`` (public attributes only)."""

    def __init__(self) -> None:
        self.connection_count, self.destroyed, self.expiration_requested = 0, False, False

    def request_expiration(self) -> None:
        self.expiration_requested = True


@pytest.mark.parametrize("connects", [False, True], ids=["never-connects", "connected-then-dropped"])
def test_a_page_request_that_never_connects_is_handed_back_to_bokeh(monkeypatch, connects):
    registry = admission.SessionRegistry(trim_delay=3600.0)
    monkeypatch.setattr(pn.state, "on_session_destroyed", lambda callback: None)
    session = _FakeServerSession()
    context = SimpleNamespace(id="page", session=session, request=SimpleNamespace(remote_ip="10.0.0.1", arguments={}))
    doc = Document()
    doc._session_context = lambda: context
    with set_curdoc(doc):
        assert admission.admit_session(3, per_address=2, connect_timeout_s=5.0, registry=registry)
    [timeout] = list(doc.session_callbacks)
    assert timeout.timeout == 5000
    if connects:
        session.connection_count = 1
        with set_curdoc(doc):
            assert admission.confirm_session(3, per_address=2, registry=registry)  # the page's onload
        session.connection_count = 0  # a dropped connection keeps Bokeh's unused-session lifetime
    timeout.callback()
    assert session.expiration_requested is not connects


# ------------------------------------------------------------------ document calls
def test_a_document_without_its_session_is_destroyed_and_nothing_is_scheduled(served_document):
    assert not document_destroyed(served_document)
    runner_doc = served_document
    served_document._session_context = None  # what Bokeh's and Panel's Document.destroy do first
    assert document_destroyed(runner_doc)
    with set_curdoc(runner_doc):
        runner = SessionRunner("test")
    assert not runner.served  # a destroyed document is not a session


def test_a_destroyed_document_keeps_bokehs_current_document(served_document):
    """Bokeh makes a document its global current one while it fails to schedule a callback
    on it; the previous current document is put back."""
    before = bokeh_curdoc()
    served_document.callbacks.destroy()
    assert try_run_locked(served_document, lambda: None) in ("AttributeError", "RuntimeError")
    assert bokeh_curdoc() is before


def test_updates_to_a_session_whose_document_was_destroyed_are_dropped(served_document):
    with set_curdoc(served_document):
        runner = SessionRunner("test")
    assert runner.served
    served_document._session_context = None
    ran = []
    runner.in_session(lambda: ran.append(1))
    assert ran == [] and not list(served_document.session_callbacks)
