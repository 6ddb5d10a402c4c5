"""The process's one bounded, fair pool for JAX work: who computes now, who waits.

Contract: a :class:`Job` submitted to :data:`POOL` runs on a pool thread once one of the
:data:`JAX_SLOTS` slots is free, sessions taking turns round-robin; a long job calls
:meth:`Job.checkpoint` between bounded pieces, which gives the slot to a waiting session and
raises :class:`Cancelled` within one piece of a stop. Nothing here touches a page or Panel.

XLA:CPU runs about two computations at a time on this 2-core machine (a third only waits),
hence two slots. :func:`queue_text` is the waiting line a page shows for a place in the queue.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections import OrderedDict, deque
from typing import Any, Callable, Hashable

__all__ = ["Cancelled", "FairPool", "Job", "JAX_SLOTS", "POOL", "queue_text"]

_LOG = logging.getLogger(__name__)

#: JAX jobs computing at once in this process (2 cores: XLA:CPU runs ~2 computations at a
#: time, a third one only waits; measured in issue 16).
JAX_SLOTS = 2
_IDLE_THREAD_S = 30.0  # a pool thread with nothing to do for this long exits
_POLL_S = 0.05  # how often a waiting job looks at its stop event (cancellation latency)


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
        """Queue ``job`` behind its session's earlier jobs; it runs once a slot is its turn."""
        job.pool = self
        with self._cond:
            self._waiting.setdefault(job.session, deque()).append(job)
            self._dispatch()
        return job

    def run_at_once(self, job: Job) -> Job:
        """Run ``job`` now on the calling thread, without a slot (a page that is not served:
        notebooks and tests, where nothing else waits); its outcome is set when this returns."""
        self._run(job)
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
