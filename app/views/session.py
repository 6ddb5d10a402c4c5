"""One session runner for every tab: where work runs and how its results reach the page.

A :class:`SessionRunner` belongs to one view of one browser session. It captures the
session's document, knows whether it is served, runs page updates under the document lock
(:meth:`SessionRunner.in_session`), submits JAX work with done/failed callbacks
(:meth:`SessionRunner.submit`), owns the one stop ``Event`` that closing the tab sets, and
keeps at most :data:`FRAMES_IN_FLIGHT` frames in flight to the browser (:meth:`SessionRunner.frame_sent` /
:meth:`SessionRunner.frame_acknowledged`). Modelled on Panel's concurrency how-to
(``SessionTaskRunner``): threads compute, the document is only touched under its lock.

All JAX work of the process runs on :data:`POOL`, one bounded :class:`FairPool`: at most
:data:`JAX_SLOTS` jobs compute at once (XLA:CPU runs about two computations at a time on
this 2-core machine; a third only waits), sessions take turns round-robin, and a long job
cuts itself into bounded pieces with :meth:`Job.checkpoint`, which gives the slot to a
waiting session and raises :class:`Cancelled` within one piece of a stop. Nothing here runs
JAX on the Tornado event-loop thread. Not served (notebook, tests), work runs at once on
the caller's thread.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from functools import partial, wraps
from typing import Any, Callable, Hashable

import panel as pn
import param
from bokeh.io.state import curstate

from app.views._common import call_in_document, run_locked

__all__ = ["Cancelled", "FairPool", "FRAMES_IN_FLIGHT", "Job", "POOL", "JAX_SLOTS", "SessionRunner"]

_LOG = logging.getLogger(__name__)

#: JAX jobs computing at once in this process (2 cores: XLA:CPU runs ~2 computations at a
#: time, a third one only waits; measured in issue 16).
JAX_SLOTS = 2
_IDLE_THREAD_S = 30.0  # a pool thread with nothing to do for this long exits
_POLL_S = 0.05  # how often a waiting job looks at its stop event (cancellation latency)
#: Frames sent to a browser and not yet acknowledged before the next one waits. Two: the next
#: frame is computed and sent while the browser paints the previous one, so a round trip
#: (send, wait for the animation frame, paint, acknowledge, compute) longer than one display
#: frame no longer halves the rate. With one, a single viewer of the figure-eight got 43.7
#: painted frames/s on a 60 Hz display (benchmarks/results/dashboard.md).
FRAMES_IN_FLIGHT = 2


def queue_text(position: int) -> str:
    """The waiting line shown to a user whose job is at ``position`` in the pool's queue
    (1: next to get a slot; 0: not waiting, the empty string)."""
    if position <= 0:
        return ""
    if position == 1:
        return "waiting: you are next (the server is busy with other sessions)"
    return f"waiting: {position - 1} ahead of you (the server is busy with other sessions)"


class Cancelled(Exception):
    """Raised inside a job by :meth:`Job.checkpoint` once the job has been stopped."""


class Job:
    """One unit of work submitted to the pool for one session.

    Attributes:
        session: key of the session that submitted it (round-robin turns are per session).
        stop: set by :meth:`cancel`, by the session's stop event, or when the tab closes.
    """

    _ids = itertools.count(1)

    def __init__(self, fn: Callable[["Job"], Any], *, session: Hashable, stop: threading.Event | None = None,
                 on_position: Callable[[int], None] | None = None, pool: "FairPool | None" = None):
        self.id = next(Job._ids)
        self.fn = fn
        self.session = session
        self.stop = threading.Event()
        self._session_stop = stop
        self.on_position = on_position
        self.position = 0
        self.pool = pool
        self.holds_slot = False
        self.started = False
        self.finished = threading.Event()
        self.on_finished: Callable[[], None] | None = None  # called on the pool thread at the end
        self.session_alive: Callable[[], bool] | None = None  # False once the session's browser is gone
        self.result: Any = None
        self.error: BaseException | None = None
        self.completed = False  # ``fn`` returned: ``result`` is valid

    def stopped_on_purpose(self) -> bool:
        """True once :meth:`cancel` or the session's stop event (the session destroyed) stopped
        this job; a browser connection that is gone, perhaps only for a moment (a slow or
        dropped websocket that Bokeh reconnects), is not a stop on purpose."""
        return self.stop.is_set() or (self._session_stop is not None and self._session_stop.is_set())

    def cancelled(self) -> bool:
        """True once this job (or its whole session) has been told to stop, or the session's
        browser has gone (a closed tab frees its CPU at the next checkpoint, not when Bokeh
        destroys the session 20-30 s later)."""
        if self.stop.is_set() or (self._session_stop is not None and self._session_stop.is_set()):
            return True
        return self.session_alive is not None and not self.session_alive()

    def cancel(self) -> None:
        """Stop this job: dropped if still queued, told to stop (at its next
        :meth:`checkpoint`) if running."""
        self.stop.set()
        if self.pool is not None:
            self.pool._drop(self)

    def checkpoint(self) -> None:
        """Call between bounded pieces of a long computation: raises :class:`Cancelled`
        once stopped, and lets another session's waiting job take this job's slot first."""
        if self.cancelled():
            raise Cancelled()
        if self.pool is not None and self.holds_slot:
            self.pool._yield_slot(self)
        if self.cancelled():
            raise Cancelled()

    def take_turn(self) -> bool:
        """:meth:`checkpoint` for loops that poll a flag instead of catching
        :class:`Cancelled` (e.g. ``SimulationState.step_frame(cancelled=job.take_turn)``):
        lets another session's waiting job go first, then returns True once stopped."""
        try:
            self.checkpoint()
        except Cancelled:
            return True
        return False


class FairPool:
    """A bounded pool for JAX work: ``slots`` jobs compute at once, sessions take turns.

    Jobs wait in one queue per session; a free slot goes to the next session in
    round-robin order (a session that just got a slot goes to the back). Threads are started
    on demand, kept while busy and leave after ``_IDLE_THREAD_S`` idle; their number stays at
    ``slots`` plus the long jobs that yielded their slot at a :meth:`Job.checkpoint`.
    """

    def __init__(self, slots: int = JAX_SLOTS):
        self.slots = slots
        self._cond = threading.Condition()
        self._waiting: OrderedDict[Hashable, deque[Job]] = OrderedDict()
        self._free = slots
        self._handoff: queue.SimpleQueue = queue.SimpleQueue()
        self._idle_threads = 0
        self._running: set[Job] = set()

    # ----------------------------------------------------------------- public
    def submit(self, job: Job) -> Job:
        job.pool = self
        with self._cond:
            self._waiting.setdefault(job.session, deque()).append(job)
            self._dispatch()
        return job

    def busy(self) -> int:
        """Jobs computing now (holding a slot)."""
        with self._cond:
            return self.slots - self._free

    def waiting(self) -> int:
        """Jobs waiting for a slot."""
        with self._cond:
            return sum(len(jobs) for jobs in self._waiting.values())

    # ----------------------------------------------------------------- scheduling
    def _order(self) -> list[Job]:
        """Waiting jobs in the order they will get a slot (round-robin over sessions)."""
        queues = [list(jobs) for jobs in self._waiting.values()]
        order = []
        for rank in range(max((len(q) for q in queues), default=0)):
            order.extend(q[rank] for q in queues if rank < len(q))
        return order

    def _dispatch(self) -> None:
        """Hand free slots to the next waiting jobs (lock held)."""
        while self._free > 0 and self._waiting:
            session, jobs = next(iter(self._waiting.items()))
            job = jobs.popleft()
            del self._waiting[session]
            if jobs:
                self._waiting[session] = jobs  # back of the round
            if job.cancelled() and not job.started:
                job.finished.set()
                if job.on_finished is not None:
                    job.on_finished()
                continue
            self._free -= 1
            job.holds_slot = True
            self._running.add(job)
            if job.started:
                self._cond.notify_all()  # a yielded job waits in _yield_slot
            else:
                job.started = True
                self._start(job)
        self._report_positions()

    def _report_positions(self) -> None:
        for position, job in enumerate(self._order(), start=1):
            self._set_position(job, position)
        for job in self._running:
            self._set_position(job, 0)

    @staticmethod
    def _set_position(job: Job, position: int) -> None:
        if job.position != position:
            job.position = position
            if job.on_position is not None:
                job.on_position(position)

    def _start(self, job: Job) -> None:
        if self._idle_threads > 0:
            self._idle_threads -= 1
            self._handoff.put(job)
        else:
            threading.Thread(target=self._thread, args=(job,), name="nbody-pool", daemon=True).start()

    def _thread(self, job: Job | None) -> None:
        while job is not None:
            self._run(job)
            with self._cond:
                self._idle_threads += 1
            try:
                job = self._handoff.get(timeout=_IDLE_THREAD_S)
            except queue.Empty:
                with self._cond:
                    # A job may have been handed over just as the wait timed out.
                    try:
                        job = self._handoff.get_nowait()
                    except queue.Empty:
                        self._idle_threads -= 1
                        job = None

    def _run(self, job: Job) -> None:
        try:
            if job.cancelled():
                raise Cancelled()
            job.result = job.fn(job)
            job.completed = True
        except Cancelled:
            pass  # stopped at a checkpoint: no result, no error
        except BaseException as error:  # noqa: BLE001 - handed to the job's failed callback
            if not job.cancelled():  # else raised because it was told to stop (its own cancel exception)
                job.error = error
        finally:
            with self._cond:
                if job.holds_slot:
                    job.holds_slot = False
                    self._free += 1
                self._running.discard(job)
                self._dispatch()
            if job.on_finished is not None:
                try:
                    job.on_finished()
                except Exception:  # noqa: BLE001 - the pool thread must live on
                    _LOG.exception("job callback failed")
            job.finished.set()  # after the outcome was handed on

    def _yield_slot(self, job: Job) -> None:
        """Give ``job``'s slot to another session's waiting job, if any, and wait for the
        next turn (raises :class:`Cancelled` if stopped meanwhile)."""
        with self._cond:
            if not any(session != job.session for session in self._waiting):
                return
            job.holds_slot = False
            self._free += 1
            self._running.discard(job)
            self._waiting.setdefault(job.session, deque()).append(job)
            self._dispatch()
            while not job.holds_slot:
                if job.cancelled():
                    self._remove_waiting(job)
                    self._report_positions()
                    raise Cancelled()
                self._cond.wait(_POLL_S)

    def _drop(self, job: Job) -> None:
        """A cancelled job leaves the queue at once (a running one stops at its checkpoint)."""
        with self._cond:
            if not job.started and self._remove_waiting(job):
                job.finished.set()
                self._report_positions()
            else:
                return
        if job.on_finished is not None:
            job.on_finished()

    def _remove_waiting(self, job: Job) -> bool:
        jobs = self._waiting.get(job.session)
        if jobs is None or job not in jobs:
            return False
        jobs.remove(job)
        if not jobs:
            del self._waiting[job.session]
        return True


#: The process's one pool for JAX work (every session of every tab).
POOL = FairPool(JAX_SLOTS)


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
    def lock_doc(self):
        """The document whose lock page updates need (None when not served)."""
        return self.doc if self.served else None

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
        session = getattr(getattr(self.doc, "session_context", None), "_session", None)
        if session is None:
            return True  # still being built
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
        if not hasattr(self.doc.callbacks, "_change_callbacks"):
            # Bokeh destroyed the document (it deletes its callback manager's attributes)
            # before the session-destroyed hook ran: the tab is gone, nothing to draw.
            self._log_closed("document destroyed")
            return
        state = curstate()
        current = state.document
        try:
            run_locked(self.doc, fn)
        except (AttributeError, RuntimeError) as error:
            # Destroyed between the check and the call. Bokeh made it its global current
            # document on the way: put the previous one back.
            state._document = current
            self._log_closed(type(error).__name__)

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
        if self.stop.is_set() or not hasattr(self.doc.callbacks, "_change_callbacks"):
            return
        call_in_document(self.doc, fn)

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
        job = Job(fn, session=self.session_key, stop=self.stop,
                  on_position=self._on_position if report_position else None)
        if self.served:
            job.session_alive = lambda: self.connected
        if not self.served:
            self.pool._run(job)  # at once, on this thread (no slot: nothing else waits here)
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
        """Turn Nagle's algorithm off on this session's websocket(s).

        Bokeh writes one message as several websocket frames (header, metadata, content,
        binary buffer); with Nagle on, the later ones wait for the TCP acknowledgement of the
        first, which the receiver delays ~40 ms: measured ~85 ms from sending a frame to its
        acknowledgement arriving, capping a session at ~11 frames/s with the server idle.
        """
        session = getattr(getattr(self.doc, "session_context", None), "_session", None)
        connections = getattr(session, "_subscribed_connections", ())
        for connection in list(connections):
            socket = getattr(connection, "_socket", None)
            try:
                socket.set_nodelay(True)
            except Exception:  # noqa: BLE001 - closed meanwhile, or not a TCP socket: nothing to tune
                continue
            self._nodelay_done = True

    def frame_acknowledged(self, outstanding: int = 0) -> None:
        """The browser painted a frame; ``outstanding`` frames were sent after it (they are
        still in flight; never more than were counted by :meth:`frame_sent`)."""
        self._in_flight = max(0, min(self._in_flight, outstanding))
