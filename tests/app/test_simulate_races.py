"""Simulate's buttons against the pool's queue: an action applies to the run it was asked on.

The Reset race (the take-turn scheduler was withdrawn over it, and the keyboard Reset after
Step of tests/ui/test_accessibility_ui.py failed now and then under load): Step's job waits
for a slot while other sessions compute; Reset starts the run over meanwhile; then the step
job gets its slot and used to step the *new* run (prepare it, advance it one frame), so the
page showed t = one frame after Reset instead of t = 0. A fair pool that lets other sessions
go first at every checkpoint makes the wait, and so the window, longer.

Deterministic: a served session without a server (tests/app/conftest.py's
``served_document``), its pool one slot held by another session's job until the test lets it
go, and the session's callbacks run by the test thread as Bokeh's event loop would.
"""

from __future__ import annotations

import threading
import time

from bokeh.document import Document
from panel.io.state import set_curdoc

from app.runtime.scheduler import FairPool, Job
from app.state.simulate import SimulationState
from app.views.simulate import SimulateView

_TIMEOUT_S = 120.0  # a first compile on a loaded 2-core machine


def _pump(doc: Document, until, timeout_s: float = _TIMEOUT_S) -> None:
    """Run the document's pending session callbacks on this thread until ``until()`` holds
    (in no set order: Bokeh keeps them in a set; its event loop runs them as they were added)."""
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, "condition not met in time"
        callbacks = list(doc.session_callbacks)
        for callback in callbacks:
            doc.callbacks.remove_session_callback(callback)
            callback.callback()
        if not callbacks:
            threading.Event().wait(0.01)


def _idle(view: SimulateView) -> bool:
    return all(view.job(name) is None for name in ("step", "prepare", "frame"))


def test_a_step_still_queued_when_reset_is_pressed_never_steps_the_new_run(served_document):
    doc = served_document
    with set_curdoc(doc):
        view = SimulateView(SimulationState(preset="figure_eight"), sync_url=False)
    pool = view.runner.pool = FairPool(slots=1)  # this session's pool: one slot
    _pump(doc, lambda: view.state.ready and not view.compiling and _idle(view))
    view.step()  # one frame: t = 0.01
    _pump(doc, lambda: view.state.frames_taken == 1 and _idle(view))
    assert view.state.time > 0

    release = threading.Event()
    other = pool.submit(Job(lambda job: release.wait(_TIMEOUT_S), session="another session"))
    _pump(doc, lambda: pool.busy() == 1)
    view.step_button.clicks += 1  # Step (a locked callback): its job waits for the slot
    _pump(doc, lambda: view.job("step") is not None)
    assert pool.waiting() == 1
    view.reset_button.clicks += 1  # Reset before the step got a slot
    _pump(doc, lambda: not view.state.ready)
    assert view.state.time == 0.0
    release.set()
    assert other.finished.wait(_TIMEOUT_S)
    _pump(doc, lambda: view.state.ready and not view.compiling and _idle(view))
    _pump(doc, lambda: not doc.session_callbacks)  # every outcome handed to the session
    # Before the fix: frames_taken == 1 and t = 0.01 on screen after Reset.
    assert view.state.frames_taken == 0 and view.state.time == 0.0
    assert "t = <b>0</b>" in view.status.object, view.status.object
    view.step_button.clicks += 1  # and the next Step steps the new run once
    _pump(doc, lambda: view.state.frames_taken == 1 and _idle(view))
    assert view.state.time > 0


def test_a_step_still_queued_when_a_setting_starts_a_new_run_never_steps_the_new_run(served_document):
    doc = served_document
    with set_curdoc(doc):
        view = SimulateView(SimulationState(preset="figure_eight"), sync_url=False)
    pool = view.runner.pool = FairPool(slots=1)
    _pump(doc, lambda: view.state.ready and not view.compiling and _idle(view))
    release = threading.Event()
    other = pool.submit(Job(lambda job: release.wait(_TIMEOUT_S), session="another session"))
    _pump(doc, lambda: pool.busy() == 1)
    view.step_button.clicks += 1
    _pump(doc, lambda: view.job("step") is not None)
    view.state.integrator = "yoshida4"  # a new run (no Reset: the step's job stays queued)
    _pump(doc, lambda: not view.state.ready)
    release.set()
    assert other.finished.wait(_TIMEOUT_S)
    _pump(doc, lambda: view.state.ready and not view.compiling and _idle(view))
    assert view.state.frames_taken == 0 and view.state.time == 0.0


def test_a_step_asked_for_while_compiling_is_dropped_by_reset(served_document):
    doc = served_document
    with set_curdoc(doc):
        view = SimulateView(SimulationState(preset="figure_eight"), sync_url=False)
    pool = view.runner.pool = FairPool(slots=1)
    _pump(doc, lambda: view.state.ready and not view.compiling and _idle(view))
    release = threading.Event()
    other = pool.submit(Job(lambda job: release.wait(_TIMEOUT_S), session="another session"))
    _pump(doc, lambda: pool.busy() == 1)
    view.state.integrator = "yoshida4"  # compiling (its prepare waits for the slot) ...
    _pump(doc, lambda: view.compiling)
    view.step_button.clicks += 1  # ... so Step is kept for when it is ready ...
    _pump(doc, lambda: not doc.session_callbacks)  # one click at a time (see _pump)
    view.reset_button.clicks += 1  # ... and Reset drops it
    _pump(doc, lambda: not doc.session_callbacks)
    release.set()
    assert other.finished.wait(_TIMEOUT_S)
    _pump(doc, lambda: view.state.ready and not view.compiling and _idle(view))
    _pump(doc, lambda: not doc.session_callbacks)
    assert view.state.frames_taken == 0 and view.state.time == 0.0
