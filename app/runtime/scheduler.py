"""The process's one bounded pool for JAX work, shared fairly by measured cost.

Contract: a :class:`Job` submitted to :data:`POOL` runs on a pool thread once one of the
pool's slots is free and its session's turn has come; a session holds at most one slot (its
second job waits behind its first). A long job calls :meth:`Job.checkpoint` between bounded
pieces: the piece's cost is charged to its session, the slot goes to a waiting session that
has been charged less, and :class:`Cancelled` is raised within one piece of a stop.

Scheduling is fair queueing by virtual time (Linux CFS's vruntime, start-time fair queueing):
each session's charged seconds grow with every piece it runs, and a free slot goes to the
waiting session charged least, so a session asking for 200 steps of N = 2000 per frame slows
itself, not the class; with two slots or more, sessions in long pieces leave one slot to short
work while it is about (pieces cannot be interrupted). Cost is the piece's wall time on its
slot: XLA:CPU runs compiled code on its own thread pool, so ``time.thread_time()`` of the pool
thread reads ~0 (0.4-0.7 ms for pieces of 50 ms to 2.5 s measured here), and process CPU time
counts every session's threads.
:func:`queue_text` is the waiting line a page shows for a place in the queue; :meth:`FairPool.health`
is what the health endpoint reports (app/runtime/health.py).
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
from collections import deque
from typing import Any, Callable, Hashable, Mapping

__all__ = [
    "Cancelled", "FairPool", "Job", "JAX_SLOTS", "POOL", "DEFAULT_JAX_SLOTS", "queue_text",
    "slots_from_environment",
]

_LOG = logging.getLogger(__name__)

#: JAX jobs computing at once when ``NBODY_JAX_SLOTS`` (``nbody serve --jax-slots``) does not
#: say otherwise: the cores this process may run on (2 on this 2-core machine, where XLA:CPU
#: runs about two computations at a time and a third one only waits, measured in issue 16).
#: With several processes sharing a coordinator (app/runtime/coordinator.py) it is the number
#: of slots of all of them together, not of each.
DEFAULT_JAX_SLOTS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
_SLOTS_CEILING = 256
_IDLE_THREAD_S = 30.0  # a pool thread with nothing to do for this long exits
_POLL_S = 0.05  # how often a waiting job looks at its stop event (cancellation latency)
_GATE_POLL_S = 0.01  # how often a pool refused by the other processes' slots asks again
#: A running session gives its slot up at a checkpoint only to a waiting session charged at
#: least this much less (no ping-pong between two sessions of equal cost).
GRANULARITY_S = 0.005
#: A session that was idle (its page painting, paused, ...) comes back charged at most this
#: far below the least-charged busy session (CFS's sleeper credit): enough to go first at the
#: next checkpoint, never a hoard of idle time that would starve the busy sessions.
WAKE_CREDIT_S = 0.05
#: A session whose last two pieces both took longer than this is a long one (one long piece,
#: e.g. a view's first compile, does not make a session long: it would then wait for the slot
#: kept for short work and never run the short piece that shows it is short): it may not take the last free slot while a short session (a playing view's
#: frames, a click) asked for work within the last RESERVE_HOLD_S. Pieces cannot be
#: interrupted, so with every slot held by long pieces a short job waits up to a whole piece
#: (~100 ms: a light view at <= 10 frames/s); one slot kept for short work serves it at once.
SHORT_PIECE_S = 0.05
RESERVE_HOLD_S = 0.5


def slots_from_environment(environ: Mapping[str, str] | None = None) -> int:
    """The pool's slots: ``NBODY_JAX_SLOTS`` (``nbody serve --jax-slots``) or :data:`DEFAULT_JAX_SLOTS`.

    Raises:
        ValueError: naming the variable, if it is not a whole number in [1, 256].
    """
    environ = os.environ if environ is None else environ
    text = environ.get("NBODY_JAX_SLOTS", "")
    if not text.strip():
        return DEFAULT_JAX_SLOTS
    cleaned = text.strip().replace("_", "")
    if not cleaned.isdigit() or not 1 <= int(cleaned) <= _SLOTS_CEILING:
        raise ValueError(f"NBODY_JAX_SLOTS must be a whole number of slots in [1, {_SLOTS_CEILING}], got {text!r}")
    return int(cleaned)


#: JAX jobs computing at once in this process (read once, at import, from the environment).
JAX_SLOTS = slots_from_environment()


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
        session: key of the session that submitted it (the unit of fairness: cost is charged
            per session, and a session holds at most one slot).
        label: what submitted it ("Simulate"), for the server log and the health report.
        stop: set by :meth:`cancel`, by the session's stop event, or when the tab closes.
    """

    _ids = itertools.count(1)

    def __init__(self, fn: Callable[["Job"], Any], *, session: Hashable, stop: threading.Event | None = None,
                 on_position: Callable[[int], None] | None = None, pool: "FairPool | None" = None,
                 label: str = ""):
        self.id = next(Job._ids)
        self.fn = fn
        self.session = session
        self.label = label
        self.stop = threading.Event()
        self._session_stop = stop
        self.on_position = on_position
        self.position = 0
        self.pool = pool
        self.holds_slot = False
        self.started = False
        self.piece_started = 0.0  # pool clock when the piece now running began (holds_slot)
        self.asked_wall = 0.0  # time.time() when it last asked for a slot (ranks it across processes)
        self.charged = 0.0  # cost charged for this job so far (seconds of slot time)
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
        """Call between bounded pieces of a long computation: charges the piece just done to
        the session, raises :class:`Cancelled` once stopped, and gives the slot to a waiting
        session charged less (this job then waits for its next turn)."""
        if self.cancelled():
            raise Cancelled()
        if self.pool is not None and self.holds_slot:
            self.pool._end_piece(self)
        if self.cancelled():
            raise Cancelled()

    def take_turn(self) -> bool:
        """:meth:`checkpoint` for loops that poll a flag instead of catching
        :class:`Cancelled` (e.g. ``SimulationState.step_frame(cancelled=job.take_turn)``):
        lets a waiting session charged less go first, then returns True once stopped."""
        try:
            self.checkpoint()
        except Cancelled:
            return True
        return False


class _Flow:
    """One session's place in the pool: its waiting jobs, its running one, its charge."""

    __slots__ = ("key", "number", "jobs", "running", "vtime", "charged", "pieces", "since", "forgotten",
                 "recent", "asked")

    def __init__(self, key: Hashable, number: int):
        self.key = key
        self.number = number  # "session 3" in the health report (never the session's id)
        self.jobs: deque[Job] = deque()  # waiting, in order (a job that gave its slot up is first)
        self.running: Job | None = None
        self.vtime = 0.0  # virtual time: charged seconds, lifted to the pool's floor on waking
        self.charged = 0.0  # seconds of slot time charged in all (reported)
        self.pieces = 0
        self.since = 0  # order in which flows started waiting (ties go to the earlier)
        self.forgotten = False  # its session closed: removed once idle
        self.recent: deque[float] = deque(maxlen=2)  # its last pieces' measured seconds
        self.asked = float("-inf")  # pool clock at its latest submitted job

    @property
    def long(self) -> bool:
        """Its last two pieces both took longer than SHORT_PIECE_S."""
        return len(self.recent) == 2 and min(self.recent) > SHORT_PIECE_S

    @property
    def active(self) -> bool:
        return self.running is not None or bool(self.jobs)


class FairPool:
    """A bounded pool for JAX work: ``slots`` jobs compute at once, one per session, and a
    free slot goes to the waiting session charged least.

    Args:
        slots: jobs computing at once.
        clock: seconds, monotonic (``time.perf_counter``; tests drive a fake one).
        charge: ``"time"``: a piece costs its wall time on the slot (fair by cost, the
            default); ``"turn"``: every piece costs the same, i.e. sessions take turns piece by
            piece whatever a piece costs (the round robin of earlier releases; benchmarks
            compare the two).
        reserve: keep the last slot from long sessions while short work is about (see
            SHORT_PIECE_S); False lets long sessions take every slot.

    Threads are started on demand, kept while busy and leave after ``_IDLE_THREAD_S`` idle;
    their number stays at ``slots`` plus the long jobs waiting at a :meth:`Job.checkpoint`.
    """

    def __init__(self, slots: int = JAX_SLOTS, *, clock: Callable[[], float] = time.perf_counter,
                 charge: str = "time", reserve: bool = True):
        if slots < 1:
            raise ValueError(f"slots must be at least 1, got {slots}")
        if charge not in ("time", "turn"):
            raise ValueError(f"charge must be 'time' or 'turn', got {charge!r}")
        self.slots = slots
        self.clock = clock
        self.charge = charge
        self.reserve = reserve
        self._cond = threading.Condition()
        self._flows: dict[Hashable, _Flow] = {}
        self._numbers = itertools.count(1)
        self._since = itertools.count()
        self._floor = 0.0  # least virtual time of the busy sessions (never decreases)
        self._free = slots
        self._handoff: queue.SimpleQueue = queue.SimpleQueue()
        self._idle_threads = 0
        self._running: set[Job] = set()
        #: The slots of every process serving the class (app/runtime/coordinator.py), asked
        #: before a job takes one of this pool's slots; None: this process alone.
        self.gate = None
        self._gate_polling = False

    # ----------------------------------------------------------------- public
    def submit(self, job: Job) -> Job:
        """Queue ``job`` behind its session's earlier jobs; it runs once a slot is its turn."""
        job.pool = self
        with self._cond:
            flow = self._flow(job.session)
            self._wake(flow)
            flow.asked = self.clock()
            job.asked_wall = time.time()
            flow.jobs.append(job)
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
        """Jobs waiting for a slot (including long jobs waiting for their next piece)."""
        with self._cond:
            return sum(len(flow.jobs) for flow in self._flows.values())

    def forget(self, session: Hashable) -> None:
        """The session closed: drop its charge once its last job has left."""
        with self._cond:
            flow = self._flows.get(session)
            if flow is not None:
                flow.forgotten = True
                self._prune(flow)

    def health(self) -> dict:
        """What the pool is doing now: ``slots``, ``busy``, ``waiting`` (jobs), and per
        session with work or charge (``sessions``, busiest first): its name, jobs waiting,
        whether it computes, the age of its running piece and the seconds charged to it;
        ``oldest_piece_s``: age of the oldest running piece (0 when none)."""
        with self._cond:
            now = self.clock()
            sessions = []
            for flow in self._flows.values():
                running = flow.running
                age = now - running.piece_started if running is not None and running.holds_slot else None
                sessions.append({
                    "session": f"session {flow.number}",
                    "label": (running or (flow.jobs[0] if flow.jobs else None)).label if flow.active else "",
                    "waiting": len(flow.jobs),
                    "running": running is not None and running.holds_slot,
                    "piece_age_s": round(age, 4) if age is not None else None,
                    "charged_s": round(flow.charged, 4),
                    "pieces": flow.pieces,
                })
            ages = [now - job.piece_started for job in self._running if job.holds_slot]
            sessions.sort(key=lambda s: (-(s["piece_age_s"] or 0.0), -s["waiting"], -s["charged_s"]))
            everywhere = self.gate.state() if self.gate is not None else {}
            return {
                **everywhere,
                "slots": self.slots,
                "busy": self.slots - self._free,
                "waiting": sum(s["waiting"] for s in sessions),
                "oldest_piece_s": round(max(ages, default=0.0), 4),
                "charge": self.charge,
                "sessions": sessions,
            }

    # ----------------------------------------------------------------- scheduling
    def _flow(self, session: Hashable) -> _Flow:
        flow = self._flows.get(session)
        if flow is None:
            flow = self._flows[session] = _Flow(session, next(self._numbers))
        return flow

    def _update_floor(self) -> None:
        busy = [flow.vtime for flow in self._flows.values() if flow.active]
        if busy:
            self._floor = max(self._floor, min(busy))

    def _wake(self, flow: _Flow) -> None:
        """``flow`` gets work: an idle session comes back at most WAKE_CREDIT_S below the
        least-charged busy one (what it did not use while idle is not saved up)."""
        if flow.active:
            return
        self._update_floor()
        flow.vtime = max(flow.vtime, self._floor - self._credit())
        flow.since = next(self._since)

    def _credit(self) -> float:
        return WAKE_CREDIT_S if self.charge == "time" else 0.5

    def _granularity(self) -> float:
        return GRANULARITY_S if self.charge == "time" else 0.0

    def _eligible(self) -> list[_Flow]:
        """Sessions with a waiting job and no slot, least charged first; long sessions left
        out while they hold every slot but one and short work is about (:meth:`_reserved`)."""
        flows = [flow for flow in self._flows.values() if flow.jobs and flow.running is None]
        if self._reserved():
            flows = [flow for flow in flows if not flow.long]
        flows.sort(key=lambda flow: (flow.vtime, flow.since))
        return flows

    def _long_running(self) -> int:
        return sum(1 for job in self._running if self._flows[job.session].long)

    def _reserved(self) -> bool:
        """Whether the last slot is kept from long sessions now: two slots or more, long
        sessions hold all but one, and a short session asked for work within RESERVE_HOLD_S."""
        if not self.reserve or self.slots < 2 or self._long_running() < self.slots - 1:
            return False
        recent = self.clock() - RESERVE_HOLD_S
        return any(not flow.long and flow.asked >= recent for flow in self._flows.values())

    def _order(self) -> list[Job]:
        """Waiting jobs in the order they are expected to get a slot: sessions least charged
        first, one job per session per round (a forecast: charges change as pieces run)."""
        flows = sorted((flow for flow in self._flows.values() if flow.jobs),
                       key=lambda flow: (flow.running is not None, flow.vtime, flow.since))
        order = []
        for rank in range(max((len(flow.jobs) for flow in flows), default=0)):
            order.extend(flow.jobs[rank] for flow in flows if rank < len(flow.jobs))
        return order

    def _dispatch(self) -> None:
        """Hand free slots to the least-charged waiting sessions (lock held)."""
        while self._free > 0:
            eligible = self._eligible()
            if not eligible:
                break
            flow = eligible[0]
            job = flow.jobs[0]
            if not (job.cancelled() and not job.started) and not self._gate_acquire(job, flow):
                break  # every slot of every process is held (or another process's job is first)
            flow.jobs.popleft()
            if job.cancelled() and not job.started:
                self._prune(flow)
                job.finished.set()
                if job.on_finished is not None:
                    job.on_finished()
                continue
            self._free -= 1
            flow.running = job
            job.holds_slot = True
            job.piece_started = self.clock()
            self._running.add(job)
            if job.started:
                self._cond.notify_all()  # a job that gave its slot up waits in _end_piece
            else:
                job.started = True
                self._start(job)
        self._report_positions()

    def _gate_acquire(self, job: Job, flow: _Flow) -> bool:
        """Whether ``job`` may take a slot as far as the other processes go (lock held); a
        refused pool looks again every ``_GATE_POLL_S`` until the gate lets it in."""
        if self.gate is None:
            return True
        if self.gate.acquire(job.id, self.gate.rank(job.asked_wall, long=flow.long)):
            return True
        if not self._gate_polling:
            self._gate_polling = True
            threading.Thread(target=self._gate_poll, name="nbody-pool-gate", daemon=True).start()
        return False

    def _gate_poll(self) -> None:
        with self._cond:
            while any(flow.jobs and flow.running is None for flow in self._flows.values()):
                self._cond.wait(_GATE_POLL_S)
                self._dispatch()
            self._gate_polling = False
            self.gate.sync({})

    def _report_positions(self) -> None:
        order = self._order()
        ahead = [0] * len(order)  # waiting jobs of other processes ranked before each
        if self.gate is not None:  # the sessions waiting for a slot, in the line of every process
            self.gate.sync({flow.jobs[0].id: self.gate.rank(flow.jobs[0].asked_wall, long=flow.long)
                            for flow in self._flows.values() if flow.jobs and flow.running is None})
            if any(job.on_position is not None for job in order):
                ranks = [self.gate.rank(job.asked_wall, long=self._flows[job.session].long) for job in order]
                ahead = self.gate.others_ahead(ranks)
        for position, (job, others) in enumerate(zip(order, ahead), start=1):
            self._set_position(job, position + others)
        for job in self._running:
            self._set_position(job, 0)

    @staticmethod
    def _set_position(job: Job, position: int) -> None:
        if job.position != position:
            job.position = position
            if job.on_position is not None:
                job.on_position(position)

    def _charge(self, job: Job) -> None:
        """Charge the piece ``job`` ran since it got its slot or its last checkpoint (lock held)."""
        now = self.clock()
        measured = now - job.piece_started
        cost = measured if self.charge == "time" else 1.0
        job.piece_started = now
        job.charged += cost
        flow = self._flows[job.session]
        flow.recent.append(measured)
        flow.vtime += cost
        flow.charged += cost
        flow.pieces += 1

    def _release(self, job: Job) -> None:
        """``job`` leaves its slot (lock held)."""
        job.holds_slot = False
        self._free += 1
        if self.gate is not None:
            self.gate.release(job.id)
        self._running.discard(job)
        flow = self._flows[job.session]
        if flow.running is job:
            flow.running = None

    def _prune(self, flow: _Flow) -> None:
        if flow.forgotten and not flow.active and self._flows.get(flow.key) is flow:
            del self._flows[flow.key]

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
                    self._charge(job)
                    self._release(job)
                flow = self._flows.get(job.session)
                if flow is not None:
                    self._prune(flow)
                self._dispatch()
            if job.on_finished is not None:
                try:
                    job.on_finished()
                except Exception:  # noqa: BLE001 - the pool thread must live on
                    _LOG.exception("job callback failed")
            job.finished.set()  # after the outcome was handed on

    def _end_piece(self, job: Job) -> None:
        """At ``job``'s checkpoint: charge its piece; if a waiting session is charged less
        (by more than the granularity), give it the slot and wait for the next turn, first
        in this session's line (raises :class:`Cancelled` if stopped meanwhile)."""
        with self._cond:
            self._charge(job)
            flow = self._flows[job.session]
            eligible = self._eligible()
            # A long session in the slot kept for short work gives it up while short work is
            # about (asked lately), waiting or not: the next short job then starts at once.
            over = flow.long and self._long_running() > self.slots - 1 and self._reserved()
            # Another process's job waits before this one would if it asked now: the slot goes.
            elsewhere = self.gate is not None and self.gate.contended(self.gate.rank(time.time(), long=flow.long))
            if not over and not elsewhere and (not eligible or eligible[0].vtime + self._granularity() >= flow.vtime):
                if self._free > 0:
                    self._dispatch()  # a slot kept for short work that nobody asked for lately
                return
            self._release(job)
            job.asked_wall = time.time()
            flow.jobs.appendleft(job)  # its session's next piece is this job's, not a later job's
            self._dispatch()
            while not job.holds_slot:
                if job.cancelled():
                    if job in flow.jobs:
                        flow.jobs.remove(job)
                    self._dispatch()
                    raise Cancelled()
                self._cond.wait(_POLL_S)
                if not job.holds_slot and self._free > 0:
                    self._dispatch()  # the slot kept for short work may be free for it by now

    def _drop(self, job: Job) -> None:
        """A cancelled job leaves the queue at once (a running one stops at its checkpoint)."""
        with self._cond:
            flow = self._flows.get(job.session)
            if job.started or flow is None or job not in flow.jobs:
                return
            flow.jobs.remove(job)
            self._prune(flow)
            job.finished.set()
            self._report_positions()
        if job.on_finished is not None:
            job.on_finished()


#: The process's one pool for JAX work (every session of every tab).
POOL = FairPool(JAX_SLOTS)
