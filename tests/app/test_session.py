"""The session runner and the process's fair worker pool (app/runtime/session.py, scheduler.py)."""

from __future__ import annotations

import logging
import threading
import time
from types import SimpleNamespace

import pytest
from panel.io.state import set_curdoc

from nbody_explorer.runtime.scheduler import Cancelled, FairPool, Job
from nbody_explorer.runtime.session import FRAMES_IN_FLIGHT, SessionRunner


def _wait_until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        threading.Event().wait(0.005)


def test_pool_takes_sessions_in_turn_and_reports_queue_positions():
    pool = FairPool(slots=1)
    gate = threading.Event()
    order, positions = [], {}

    def work(label):
        def fn(job):
            if label == "a0":
                gate.wait(10)
            order.append(label)
        return fn

    jobs = [Job(work("a0"), session="a")]
    pool.submit(jobs[0])
    _wait_until(lambda: pool.busy() == 1)
    # Session a queues three jobs before b and c queue one each: b and c, charged nothing yet,
    # go before a's next job (a was charged for a0).
    for label, session in (("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b"), ("c1", "c")):
        job = Job(work(label), session=session, on_position=lambda p, label=label: positions.__setitem__(label, p))
        jobs.append(pool.submit(job))
    assert positions == {"b1": 1, "c1": 2, "a1": 3, "a2": 4, "a3": 5}
    gate.set()
    for job in jobs:
        assert job.finished.wait(10)
    assert order == ["a0", "b1", "c1", "a1", "a2", "a3"]
    assert all(job.position == 0 for job in jobs)


def test_a_long_job_yields_its_slot_at_checkpoints_and_stops_within_a_piece():
    pool = FairPool(slots=1)
    pieces, other_ran = [], threading.Event()

    def long_job(job):
        while True:
            time.perf_counter()  # a bounded piece of work
            pieces.append(1)
            job.checkpoint()

    long = pool.submit(Job(long_job, session="heavy"))
    _wait_until(lambda: len(pieces) > 3)
    light = pool.submit(Job(lambda job: other_ran.set(), session="light"))
    assert other_ran.wait(5)  # the light session got the slot between two pieces
    pieces_at_cancel = len(pieces)
    long.cancel()
    assert long.finished.wait(5)
    # Cancellation reaches it within a piece: at most the piece under way when cancel() was
    # called finishes (counted, not timed, so a loaded machine cannot fail it).
    assert len(pieces) - pieces_at_cancel <= 1
    assert long.error is None and long.cancelled()
    # The light job sets its event inside its slot: it may still hold it until it returns.
    assert light.finished.wait(5)
    assert pool.busy() == 0


def test_a_cancelled_queued_job_never_runs():
    pool = FairPool(slots=1)
    gate, ran = threading.Event(), []
    first = pool.submit(Job(lambda job: gate.wait(10), session="a"))
    _wait_until(lambda: pool.busy() == 1)
    queued = pool.submit(Job(lambda job: ran.append(1), session="b"))
    queued.cancel()
    assert queued.finished.is_set() and pool.waiting() == 0
    gate.set()
    assert first.finished.wait(10)
    assert ran == []


def test_frames_in_flight_are_capped_and_an_acknowledgement_frees_slots():
    runner = SessionRunner("test")
    timeout_s = 3600.0  # never reached here: only the counts decide
    assert FRAMES_IN_FLIGHT == 2
    runner.frame_sent()
    assert runner.frame_slot_free(timeout_s=timeout_s)  # one in flight: the next may go
    runner.frame_sent()
    assert runner.frames_in_flight == 2 and not runner.frame_slot_free(timeout_s=timeout_s)
    runner.frame_acknowledged(outstanding=1)  # the older one painted, the newer still in flight
    assert runner.frames_in_flight == 1 and runner.frame_slot_free(timeout_s=timeout_s)
    runner.frame_acknowledged(outstanding=5)  # frames the runner never counted (a run start)
    assert runner.frames_in_flight == 1
    runner.frame_acknowledged()
    assert runner.frames_in_flight == 0


def test_an_unacknowledged_frame_frees_its_slot_after_the_timeout():
    runner = SessionRunner("test")
    runner.frame_sent()
    runner.frame_sent()
    assert not runner.frame_slot_free(timeout_s=3600.0)
    assert runner.frame_slot_free(timeout_s=0.0)  # hidden tab or lost message: send anyway


def test_not_served_runner_runs_work_and_callbacks_at_once():
    runner = SessionRunner("test")
    assert not runner.served and runner.connected
    results, errors = [], []
    runner.submit(lambda job: 41 + 1, done=results.append, failed=errors.append)
    runner.submit(lambda job: 1 / 0, done=results.append, failed=errors.append)
    assert results == [42]
    assert isinstance(errors[0], ZeroDivisionError)


def _served_runner(doc, label="served"):
    with set_curdoc(doc):
        return SessionRunner(label), doc


def test_updates_to_a_destroyed_document_are_dropped_and_logged_once(served_document, caplog):
    """Closing a tab during HMC warm-up logged "AttributeError: 'DocumentCallbackManager'
    object has no attribute '_change_callbacks'" from the worker thread (issue 11)."""
    runner, doc = _served_runner(served_document)
    assert runner.served
    doc.callbacks.destroy()  # what Bokeh does when it destroys the session's document
    with caplog.at_level(logging.INFO, logger="nbody_explorer.runtime.session"):
        for _ in range(100):
            runner.in_session(lambda: None)  # must not raise
    closed = [r for r in caplog.records if "session closed" in r.getMessage()]
    assert len(closed) == 1


def test_session_destroyed_cancels_jobs_and_runs_hooks(served_document):
    runner, _doc = _served_runner(served_document)
    started, hooks = threading.Event(), []
    runner.on_destroyed(lambda: hooks.append("hook"))

    def forever(job):
        started.set()
        while True:
            job.checkpoint()
            threading.Event().wait(0.01)

    job = runner.submit(forever)
    assert started.wait(10)
    start = time.perf_counter()
    runner._on_session_destroyed(None)
    assert job.finished.wait(5)
    assert time.perf_counter() - start < 1.0  # closing the tab frees its CPU within a second
    assert hooks == ["hook"] and runner.destroyed and not runner.connected
    with pytest.raises(Cancelled):
        job.checkpoint()


def test_a_closed_tab_stops_its_jobs_before_the_session_is_destroyed(served_document):
    """Bokeh destroys a session 20-30 s after its tab closes; its work stops at once."""
    runner, doc = _served_runner(served_document)
    session = SimpleNamespace(destroyed=False, connection_count=0)
    doc.session_context.session = session
    assert runner.connected  # page still loading: not yet connected counts as alive
    session.connection_count = 1
    started = threading.Event()

    def forever(job):
        started.set()
        while True:
            job.checkpoint()
            threading.Event().wait(0.01)

    job = runner.submit(forever)
    assert started.wait(10) and not job.cancelled()
    start = time.perf_counter()
    session.connection_count = 0  # the tab closed
    assert job.finished.wait(5)
    assert time.perf_counter() - start < 1.0
    assert not runner.connected and not runner.destroyed


def test_a_frame_split_into_calls_lets_a_waiting_session_go_between_its_calls():
    """A heavy frame polls ``job.take_turn`` between its compiled calls (as
    ``SimulationState.step_frame(cancelled=job.take_turn)`` does): a light session's job
    waiting for the only slot runs before the heavy frame's next call, not after the frame."""
    pool = FairPool(slots=1)
    calls, light_ran_after = [], []
    started = threading.Event()

    def heavy_frame(job):
        for _ in range(50):
            if job.take_turn():
                return "stopped"
            calls.append(1)  # one compiled call of the frame
            started.set()
            if light_ran_after:
                return "done"
            threading.Event().wait(0.01)
        return "done"

    heavy = pool.submit(Job(heavy_frame, session="heavy"))
    assert started.wait(10)
    light = pool.submit(Job(lambda job: light_ran_after.append(len(calls)), session="light"))
    assert light.finished.wait(10) and heavy.finished.wait(10)
    assert light_ran_after and light_ran_after[0] < 50  # it went between two calls of the frame
    assert heavy.result == "done"

    outcome, running = [], threading.Event()

    def endless_frame(job):
        running.set()
        while not job.take_turn():
            threading.Event().wait(0.01)
        outcome.append("stopped")

    stopped = pool.submit(Job(endless_frame, session="heavy"))
    assert running.wait(10)
    stopped.cancel()
    assert stopped.finished.wait(10) and outcome == ["stopped"]  # take_turn says so once stopped
