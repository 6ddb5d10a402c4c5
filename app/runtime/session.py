"""One session runner per view: where a session's work runs and how its results reach the page.

Contract: a :class:`SessionRunner` is built inside a view's constructor (it captures the
session's document); :meth:`~SessionRunner.submit` runs work on the process's pool
(app/runtime/scheduler.py) and hands its outcome back in the session under the document lock;
closing the tab sets its one stop ``Event``, cancels its jobs and runs its destroy hooks.

It also keeps at most :data:`FRAMES_IN_FLIGHT` frames in flight to the browser
(:meth:`~SessionRunner.frame_sent` / :meth:`~SessionRunner.frame_acknowledged`). Modelled on
Panel's concurrency how-to (``SessionTaskRunner``): threads compute, the document is only
touched under its lock. Not served (notebook, tests), work runs at once on the caller's thread.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from functools import partial, wraps
from typing import Any, Callable, Hashable, Iterator

import panel as pn
import param

from nbody_explorer.compat.session import set_websocket_nodelay
from nbody_explorer.runtime.document import (
    call_in_document,
    combined_changes,
    document_destroyed,
    try_run_locked,
)
from nbody_explorer.runtime.scheduler import POOL, FairPool, Job

__all__ = ["FRAMES_IN_FLIGHT", "SessionRunner"]

_LOG = logging.getLogger(__name__)

#: Frames sent to a browser and not yet acknowledged before the next one waits. Two: the next
#: frame is computed and sent while the browser paints the previous one, so a round trip
#: (send, wait for the animation frame, paint, acknowledge, compute) longer than one display
#: frame no longer halves the rate. With one, a single viewer of the figure-eight got 43.7
#: painted frames/s on a 60 Hz display (benchmarks/results/dashboard.md).
FRAMES_IN_FLIGHT = 2


class SessionRunner(param.Parameterized):
    """Session plumbing for one view: document, lock, jobs, stop event, frames in flight.

    Build it inside the view's constructor (it reads ``pn.state.curdoc``). Served, work
    submitted with :meth:`submit` runs on :data:`POOL` and its callbacks run in the session
    under the document lock; not served, everything runs at once on the caller's thread.
    """

    queue_position = param.Integer(0, bounds=(0, None), doc="Place of this session's next job in the pool's queue (0: not waiting).")

    def __init__(self, label: str = "view", *, pool: FairPool = POOL, **params):
        super().__init__(**params)
        self.label = label
        self.pool = pool
        self.doc = pn.state.curdoc
        self.served = bool(self.doc is not None and getattr(self.doc, "session_context", None))
        self.stop = threading.Event()  # the one stop event: set when the session is destroyed
        self._jobs: set[Job] = set()
        self._jobs_lock = threading.Lock()
        self._hooks: list[Callable[[], None]] = []
        self._closed_logged = False
        self._seen_connection = False
        self._in_flight = 0  # frames sent to the browser and not yet acknowledged
        self._frame_sent_at = 0.0
        self._nodelay_done = False  # TCP_NODELAY set on the session's websocket (see frame_sent)
        if self.served:
            pn.state.on_session_destroyed(self._on_session_destroyed)

    # ----------------------------------------------------------------- session
    @property
    def session_key(self) -> Hashable:
        return id(self.doc) if self.doc is not None else id(self)

    @property
    def destroyed(self) -> bool:
        return self.stop.is_set()

    @property
    def connected(self) -> bool:
        """False once the browser's connection is gone (the session itself is destroyed
        only ~20-30 s later): nothing should be computed or sent for it meanwhile."""
        if not self.served:
            return True
        if self.stop.is_set():
            return False
        session = getattr(getattr(self.doc, "session_context", None), "session", None)
        if session is None:
            return True  # still being built (or destroyed: then stop is set, or comes soon)
        if session.destroyed:
            return False
        if session.connection_count > 0:
            self._seen_connection = True
            return True
        return not self._seen_connection  # not yet connected (page loading) counts as alive

    def on_destroyed(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` (no arguments) when the session is destroyed."""
        self._hooks.append(hook)

    def _on_session_destroyed(self, _session_context) -> None:
        self.close()

    def close(self) -> None:
        """Stop this session's work for good, as its destruction does: set :attr:`stop`, cancel
        its jobs and call the :meth:`on_destroyed` hooks (once; later calls do nothing)."""
        if self.stop.is_set():
            return
        self.stop.set()
        with self._jobs_lock:
            jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        self.pool.forget(self.session_key)  # its charge goes once its last job has left
        for hook in self._hooks:
            try:
                hook()
            except Exception:  # noqa: BLE001 - one failing hook must not keep the others from running
                _LOG.exception("%s: session-destroyed hook failed", self.label)
        _LOG.info("session destroyed: %s stopped %d job(s)", self.label, len(jobs))

    def _log_closed(self, reason: str) -> None:
        if not self._closed_logged:
            self._closed_logged = True
            _LOG.info("%s: session closed (%s); nothing more is sent to it", self.label, reason)

    # ----------------------------------------------------------------- page updates
    def in_session(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` in the session under its document lock (from any thread); at once
        when not served; dropped once the session is destroyed or closed."""
        if not self.served:
            fn()
            return
        if self.stop.is_set():
            return
        if document_destroyed(self.doc):
            # Bokeh destroyed the document before the session-destroyed hook ran: the tab is
            # gone, nothing to draw.
            self._log_closed("document destroyed")
            return
        failure = try_run_locked(self.doc, fn)  # destroyed between the check and the call?
        if failure is not None:
            self._log_closed(failure)

    def later(self, seconds: float, fn: Callable[[], None]) -> None:
        """Run ``fn()`` in the session after ``seconds`` (served only; the event loop is
        not blocked meanwhile)."""
        if not self.served or self.stop.is_set():
            return
        try:
            # A timeout callback already runs under the document lock: one callback, not a
            # timeout that schedules a next-tick one (two Bokeh session-callback events per
            # paced frame, measured ~10 % of the frame path's server time).
            self.doc.add_timeout_callback(partial(self._run_here, fn), max(1, int(seconds * 1000)))
        except (AttributeError, RuntimeError) as error:
            self._log_closed(type(error).__name__)

    def _run_here(self, fn: Callable[[], None]) -> None:
        """Bokeh callback thread, document lock held: ``fn()`` unless the session is gone."""
        if self.stop.is_set() or document_destroyed(self.doc):
            return
        call_in_document(self.doc, fn)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Send the model changes made inside as one message, in order with every other change
        of this session (app/runtime/document.py's :func:`combined_changes`; nothing to combine
        when not served)."""
        with combined_changes(self.doc if self.served else None):
            yield

    def locked(self, callback: Callable) -> Callable:
        """``callback`` (a widget callback or param watcher) run under the document lock."""

        @wraps(callback)
        def run(*args, **kwargs):
            self.in_session(partial(callback, *args, **kwargs))

        return run

    # ----------------------------------------------------------------- work
    def submit(self, fn: Callable[[Job], Any], *, done: Callable[[Any], None] | None = None,
               failed: Callable[[BaseException], None] | None = None,
               interrupted: Callable[[], None] | None = None, report_position: bool = True) -> Job:
        """Run ``fn(job)`` on the pool; then one of ``done(result)``, ``failed(error)`` or
        ``interrupted()`` in the session (under its lock).

        - ``fn`` returned: ``done(result)``, also when the browser's connection was gone
          meanwhile (the result is valid, and a page that reconnects pulls the document
          again; a page gone for good is destroyed with its session 20-30 s later).
        - ``fn`` raised: ``failed(error)``.
        - stopped by :meth:`Job.cancel` or the session's destruction: nothing (who stopped
          it knows).
        - stopped only because the browser's connection was gone (dropped before it started,
          or at a ``job.checkpoint()``): ``interrupted()``. A zero connection count can be a
          moment of a slow or dropped websocket that Bokeh reconnects: the view must be able
          to carry on (clear its "busy" state, ask again later), never wait for a callback
          that does not come.

        ``fn`` must not touch the page; a long ``fn`` calls ``job.checkpoint()`` between
        bounded pieces (each well under a second) so that it can be stopped and shares the
        pool fairly. Not served, ``fn`` runs at once on the caller's thread.
        """
        # A frame (a few ms) does not report its place in the queue: with 30 sessions every
        # dispatch moved ~28 waiting frames one place, each a status-line redraw in its page
        # (O(sessions^2) page updates: measured 38 ms of server CPU per frame at 30 sessions).
        job = Job(fn, session=self.session_key, stop=self.stop, label=self.label,
                  on_position=self._on_position if report_position else None)
        if self.served:
            job.session_alive = lambda: self.connected
        if not self.served:
            self.pool.run_at_once(job)  # on this thread (no slot: nothing else waits here)
            self._finish(job, done, failed, interrupted)
            return job
        with self._jobs_lock:
            self._jobs.add(job)
        job.on_finished = partial(self._finished, job, done, failed, interrupted)
        self.pool.submit(job)
        return job

    def _finished(self, job: Job, done, failed, interrupted) -> None:
        """Pool thread, slot released: hand the outcome to the session."""
        with self._jobs_lock:
            self._jobs.discard(job)
        if not self.stop.is_set():
            self.in_session(partial(self._finish, job, done, failed, interrupted))

    @staticmethod
    def _finish(job: Job, done, failed, interrupted) -> None:
        """In the session: the one callback of this job's outcome (see :meth:`submit`)."""
        if job.error is not None:
            if failed is not None:
                failed(job.error)
            else:
                _LOG.error("job failed", exc_info=job.error)
        elif job.stopped_on_purpose():
            return
        elif job.completed:
            if done is not None:
                done(job.result)
        elif interrupted is not None:
            interrupted()

    def _on_position(self, position: int) -> None:
        if self.served:
            self.in_session(partial(setattr, self, "queue_position", position))
        else:
            self.queue_position = position

    def cancel_all(self) -> None:
        """Stop every job of this runner (queued ones are dropped)."""
        with self._jobs_lock:
            jobs = list(self._jobs)
        for job in jobs:
            job.cancel()

    # ----------------------------------------------------------------- frames
    def frame_slot_free(self, *, timeout_s: float) -> bool:
        """True when fewer than :data:`FRAMES_IN_FLIGHT` frames wait for the browser:
        back-pressure, so a slow browser slows the animation instead of queueing frames (and
        a click is drawn at most a frame or two later). When no acknowledgement came within
        ``timeout_s`` of the last frame sent (hidden tab, lost message) the slot is free anyway."""
        if self._in_flight >= FRAMES_IN_FLIGHT and time.perf_counter() - self._frame_sent_at < timeout_s:
            return False
        return True

    @property
    def frames_in_flight(self) -> int:
        """Frames sent and not yet acknowledged."""
        return self._in_flight

    def frame_sent(self) -> None:
        if not self._nodelay_done:
            self._set_nodelay()
        self._in_flight += 1
        self._frame_sent_at = time.perf_counter()

    def _set_nodelay(self) -> None:
        """Turn Nagle's algorithm off on this session's websocket(s) (app/compat/session.py:
        with it on, a frame's acknowledgement took ~85 ms, ~11 frames/s with the server idle)."""
        if set_websocket_nodelay(self.doc):
            self._nodelay_done = True

    def frame_acknowledged(self, outstanding: int = 0) -> None:
        """The browser painted a frame; ``outstanding`` frames were sent after it (they are
        still in flight; never more than were counted by :meth:`frame_sent`)."""
        self._in_flight = max(0, min(self._in_flight, outstanding))
