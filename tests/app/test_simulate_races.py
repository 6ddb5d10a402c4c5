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

from nbody_explorer.runtime.scheduler import FairPool, Job
from nbody_explorer.state.simulate import SimulationState
from nbody_explorer.views.simulate import SimulateView

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


def _ready_view(doc: Document) -> SimulateView:
    """A served figure-eight view on a pool of one slot, built, compiled and idle."""
    with set_curdoc(doc):
        view = SimulateView(SimulationState(preset="figure_eight"), sync_url=False)
    view.runner.pool = FairPool(slots=1)
    _pump(doc, lambda: view.state.ready and not view.compiling and _idle(view))
    return view


def test_a_step_still_queued_when_reset_is_pressed_never_steps_the_new_run(served_document):
    doc = served_document
    view = _ready_view(doc)
    pool = view.runner.pool  # this session's pool: one slot
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
    view = _ready_view(doc)
    pool = view.runner.pool  # this session's pool: one slot
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
    view = _ready_view(doc)
    pool = view.runner.pool  # this session's pool: one slot
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


def test_a_new_run_started_while_the_prepare_of_a_playing_session_computes_keeps_playing(served_document):
    """The preset-switching browser test stalled now and then under two xdist workers: a
    playing session whose settings changed while its prepare job computed got the prepare's
    answer for the old run; ``prepared`` then asked ``ensure_ready``, which returns at once
    when playing ("the frame loop prepares"), but no frame loop was running: the page sat at
    the new run's t = 0, status "playing", for good."""
    doc = served_document
    view = _ready_view(doc)
    inside, go_on = threading.Event(), threading.Event()
    original_prepare = view.state.prepare

    def slow_prepare():
        result = original_prepare()
        inside.set()
        assert go_on.wait(_TIMEOUT_S)  # the test starts a new run while this one prepares
        return result

    view.state.prepare = slow_prepare
    view.state.integrator = "yoshida4"  # a new run: its prepare job starts ...
    _pump(doc, lambda: view.job("prepare") is not None)
    view.playing = True  # ... Play while it computes (the loop waits for the prepare) ...
    assert inside.wait(_TIMEOUT_S)
    view.state.prepare = original_prepare
    view.state.integrator = "leapfrog"  # ... and another new run before it answers
    _pump(doc, lambda: not view.state.ready)
    go_on.set()
    # Before the fix: no frame job ever came (frames_taken stayed 0 with playing True).
    _pump(doc, lambda: view.state.ready and view.state.frames_taken >= 2)
    assert view.playing and view.state.integrator == "leapfrog"
    view.playing = False
    _pump(doc, lambda: _idle(view))


def test_a_frame_refused_on_settings_read_half_way_through_a_preset_change_does_not_stop_the_new_run(served_document):
    """The preset-switching browser test paused itself now and then under load ("paused, t = 0"
    after solar_system -> cold_collapse while playing; the server log showed the frame job's
    failure stopping the loop). A frame computing on the pool reads the settings without the
    session's lock; a new preset sets its integrator, dt, N, ... one after another, then starts
    the new run. A frame that read N of the new preset with the old one's integrator was
    refused by the cost check, and that refusal stopped the new run. Here the refusal is made
    to land exactly there: raised by a frame of the old run, after the new run began."""
    doc = served_document
    view = _ready_view(doc)
    inside, go_on = threading.Event(), threading.Event()
    original_check = view.state.check_frame_cost
    armed = threading.Event()

    def check_frame_cost():
        if armed.is_set() and threading.current_thread() is not threading.main_thread():
            armed.clear()  # only the frame computing when the preset changes
            inside.set()
            assert go_on.wait(_TIMEOUT_S)
            raise ValueError("One frame of these settings would take about 9 s of CPU")
        original_check()

    view.state.check_frame_cost = check_frame_cost
    view.playing = True
    _pump(doc, lambda: view.state.frames_taken >= 1)
    armed.set()
    _pump(doc, inside.is_set)  # the loop asks for the next frame: a frame of the figure-eight computes ...
    view.controls.preset_select.value = "kepler"  # ... the user picks another preset ...
    _pump(doc, lambda: view.state.preset == "kepler" and view.state.frames_taken == 0)
    go_on.set()  # ... and that frame's (half-changed) settings are refused
    _pump(doc, lambda: (view.state.frames_taken >= 2 and view.state.time > 0) or not view.playing)
    # Before the fix: playing False, "Simulation stopped: One frame of these settings ..." shown.
    assert view.playing, view.last_message
    assert not view.message.visible, view.message.object
    view.playing = False
    _pump(doc, lambda: _idle(view))


def test_the_status_line_is_written_in_a_session_callback_whoever_asks_for_it(served_document):
    """The preset test saw the page keep an older status line for good ("N = 3" after Kepler's
    run was drawn): a status written in a widget callback went out on Panel's own write queue,
    which Panel defers while the websocket is busy, and arrived after the newer one written in a
    session callback (Bokeh's queue). Every write of the status line is made in a session
    callback (the document held), with the text of that moment."""
    doc = served_document
    with set_curdoc(doc):
        view = SimulateView(SimulationState(preset="figure_eight"), sync_url=False)
        model = view.status.get_root(doc)
    _pump(doc, lambda: view.state.ready and not view.compiling and _idle(view))
    writes = []
    model.on_change("text", lambda attr, old, new: writes.append((doc.callbacks.hold_value, new)))
    with set_curdoc(doc):
        view.state.softening = 0.01  # as a widget callback sets it: outside the session's callbacks
    assert writes == []  # not written from here ...
    _pump(doc, lambda: bool(writes) and not doc.session_callbacks)
    assert all(hold == "combine" for hold, _ in writes), writes  # ... but in a held session callback
    assert "ε = 0.01" in writes[-1][1]
