"""One class across several server processes: viewers, compute slots and the waiting line in one file.

Contract: the processes serving one class (``nbody serve --processes K``, or K containers that
share a volume) share a :class:`Coordinator`, a SQLite file in a runtime directory
(``NBODY_RUNTIME_DIR``) written under an ``fcntl`` lock. Each process renews a lease every
second; a process that crashed (its pid gone on this host, or its lease older than ``lease_s``)
loses its viewers, slots and waiting tickets at the next transaction of any other. The session
cap counts the viewers of every process (:class:`nbody_explorer.runtime.admission.SessionRegistry`), the
compute slots are one number for all processes (:class:`SlotGate`, asked by
:class:`nbody_explorer.runtime.scheduler.FairPool` before a job takes a slot), and a waiting job's place in
the queue counts the other processes' waiting sessions ahead of it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from bisect import bisect_left
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping

__all__ = [
    "Coordinator", "DEFAULT_LEASE_S", "LONG_PENALTY_S", "SlotGate", "install_from_environment",
    "runtime_directory_from_environment",
]

_LOG = logging.getLogger(__name__)

#: A process whose lease is older than this many seconds is taken for dead, with its viewers,
#: slots and tickets (a process on this host whose pid is gone is taken for dead at once).
DEFAULT_LEASE_S = 5.0
#: How often a process renews its lease and republishes its viewers, seconds.
BEAT_S = 1.0
#: A long session (its last pieces took over ``scheduler.SHORT_PIECE_S``) waiting for a slot
#: ranks as if it had asked this many seconds later than it did: short work (a playing view's
#: frame, a click) goes first across processes, as the slot kept for short work does inside one
#: (app/runtime/scheduler.py), and a long session still gets a slot within this long.
LONG_PENALTY_S = 0.5
_REAP_EVERY_S = 0.25
_SCHEMA = """
CREATE TABLE IF NOT EXISTS processes (key TEXT PRIMARY KEY, host TEXT, pid INTEGER, beat REAL);
CREATE TABLE IF NOT EXISTS viewers (session TEXT PRIMARY KEY, process TEXT, address TEXT);
CREATE TABLE IF NOT EXISTS slots (job TEXT PRIMARY KEY, process TEXT);
CREATE TABLE IF NOT EXISTS tickets (job TEXT PRIMARY KEY, process TEXT, rank REAL);
"""


def runtime_directory_from_environment(environ: Mapping[str, str] | None = None) -> Path | None:
    """``NBODY_RUNTIME_DIR`` (``nbody serve --runtime-dir``; ``--processes K`` sets one), or None:
    one process, nothing shared."""
    environ = os.environ if environ is None else environ
    text = environ.get("NBODY_RUNTIME_DIR", "").strip()
    return Path(text) if text else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


class Coordinator:
    """The shared state of the processes serving one class, in ``directory/coordinator.sqlite``.

    Args:
        directory: a local directory every process can write (created if missing; tmpfs is best).
        lease_s: seconds after its last renewal that a silent process is taken for dead.
        clock: wall-clock seconds, the same in every process (``time.time``).

    Every method is one short transaction (~20 us measured here) under an exclusive
    ``fcntl.flock`` of ``directory/coordinator.lock``: the kernel queues the processes, and a
    lock held by a process that dies is released with it.
    """

    def __init__(self, directory: str | os.PathLike, *, lease_s: float = DEFAULT_LEASE_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.lease_s = lease_s
        self.clock = clock
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.key = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self._thread_lock = threading.RLock()
        self._lock_file = open(self.directory / "coordinator.lock", "a+")  # noqa: SIM115 - held for life
        self._db = sqlite3.connect(self.directory / "coordinator.sqlite", isolation_level=None,
                                   check_same_thread=False, timeout=30.0)
        self._last_reap = float("-inf")
        self._depth = 0
        self._beat_thread: threading.Thread | None = None
        self._closed = threading.Event()
        self.on_beat: list[Callable[[], None]] = []  # called after each renewal (publish viewers)
        with self._flock():
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        self._db.execute("PRAGMA synchronous=OFF")  # the file holds leases, not data worth an fsync
        self.beat()

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def _flock(self) -> Iterator[None]:
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction, exclusive among all processes (re-entrant inside one thread); dead
        processes' rows are removed first."""
        with self._thread_lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._db
                finally:
                    self._depth -= 1
                return
            with self._flock():
                self._db.execute("BEGIN IMMEDIATE")
                self._depth = 1
                try:
                    self._reap()
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                else:
                    self._db.execute("COMMIT")
                finally:
                    self._depth = 0

    def _reap(self) -> None:
        now = self.clock()
        if now - self._last_reap < _REAP_EVERY_S:
            return
        self._last_reap = now
        dead = [key for key, host, pid, beat in self._db.execute("SELECT key, host, pid, beat FROM processes")
                if key != self.key and (beat < now - self.lease_s or (host == self.host and not _pid_alive(pid)))]
        for key in dead:
            for table in ("viewers", "slots", "tickets"):
                self._db.execute(f"DELETE FROM {table} WHERE process = ?", (key,))  # noqa: S608 - fixed names
            self._db.execute("DELETE FROM processes WHERE key = ?", (key,))
            _LOG.warning("coordinator: process %s stopped renewing its lease; its sessions and slots are freed", key)

    # ------------------------------------------------------------------ lease
    def beat(self) -> None:
        """Renew this process's lease (and register it the first time)."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO processes VALUES (?, ?, ?, ?)",
                       (self.key, self.host, self.pid, self.clock()))

    def start(self) -> "Coordinator":
        """Renew the lease every :data:`BEAT_S` seconds on a daemon thread (and run ``on_beat``)."""
        if self._beat_thread is None:
            self._beat_thread = threading.Thread(target=self._beat_loop, name="nbody-coordinator", daemon=True)
            self._beat_thread.start()
        return self

    def _beat_loop(self) -> None:
        while not self._closed.wait(BEAT_S):
            try:
                self.beat()
                for callback in list(self.on_beat):
                    callback()
            except Exception:  # noqa: BLE001 - the lease must keep being renewed
                _LOG.exception("coordinator: renewing the lease failed")

    def close(self) -> None:
        """Leave: this process's rows are removed now (a crash leaves them to the lease)."""
        self._closed.set()
        with self.transaction() as db:
            for table in ("viewers", "slots", "tickets"):
                db.execute(f"DELETE FROM {table} WHERE process = ?", (self.key,))  # noqa: S608 - fixed names
            db.execute("DELETE FROM processes WHERE key = ?", (self.key,))
        self._db.close()
        self._lock_file.close()

    def processes(self) -> int:
        """Processes with a live lease (this one included)."""
        with self.transaction() as db:
            return db.execute("SELECT COUNT(*) FROM processes").fetchone()[0]

    # ------------------------------------------------------------------ viewers
    def other_viewers(self) -> list[str]:
        """The client addresses of the other processes' viewers (one entry per viewer)."""
        with self.transaction() as db:
            return [row[0] for row in db.execute("SELECT address FROM viewers WHERE process != ?", (self.key,))]

    def publish_viewers(self, viewers: Mapping[str, str]) -> None:
        """This process's viewers now: ``{session id: client address}`` (replaces the last list)."""
        with self.transaction() as db:
            db.execute("DELETE FROM viewers WHERE process = ?", (self.key,))
            db.executemany("INSERT OR REPLACE INTO viewers VALUES (?, ?, ?)",
                           [(session, self.key, address) for session, address in viewers.items()])

    def viewers(self) -> int:
        """Viewers of every process."""
        with self.transaction() as db:
            return db.execute("SELECT COUNT(*) FROM viewers").fetchone()[0]

    # ------------------------------------------------------------------ slots
    def _job(self, job_id: int) -> str:
        return f"{self.key}/{job_id}"

    def try_acquire(self, job_id: int, rank: float, total: int) -> bool:
        """Take one of the ``total`` slots for ``job_id`` if one is free and fewer other
        processes' waiting jobs rank before ``rank`` (seconds: when it asked, later for long
        work) than slots are free; else leave (or keep) a ticket for it in the waiting line."""
        job = self._job(job_id)
        with self.transaction() as db:
            held = db.execute("SELECT COUNT(*) FROM slots").fetchone()[0]
            ahead = db.execute("SELECT COUNT(*) FROM tickets WHERE process != ? AND rank < ?",
                               (self.key, rank)).fetchone()[0]
            if held < total and ahead < total - held:
                db.execute("DELETE FROM tickets WHERE job = ?", (job,))
                db.execute("INSERT OR REPLACE INTO slots VALUES (?, ?)", (job, self.key))
                return True
            db.execute("INSERT OR REPLACE INTO tickets VALUES (?, ?, ?)", (job, self.key, rank))
            return False

    def release(self, job_id: int) -> None:
        """Give ``job_id``'s slot back."""
        with self.transaction() as db:
            db.execute("DELETE FROM slots WHERE job = ?", (self._job(job_id),))

    def replace_tickets(self, tickets: Mapping[int, float]) -> None:
        """This process's waiting jobs now, ``{job id: rank}`` (replaces its last list)."""
        with self.transaction() as db:
            db.execute("DELETE FROM tickets WHERE process = ?", (self.key,))
            db.executemany("INSERT OR REPLACE INTO tickets VALUES (?, ?, ?)",
                           [(self._job(job_id), self.key, rank) for job_id, rank in tickets.items()])

    def held(self) -> int:
        """Slots held by every process."""
        with self.transaction() as db:
            return db.execute("SELECT COUNT(*) FROM slots").fetchone()[0]

    def other_ranks(self) -> list[float]:
        """The ranks of the other processes' waiting jobs, ascending."""
        with self.transaction() as db:
            return [row[0] for row in db.execute("SELECT rank FROM tickets WHERE process != ? ORDER BY rank",
                                                 (self.key,))]

    def waiting(self) -> int:
        """Jobs of every process waiting for a slot."""
        with self.transaction() as db:
            return db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0]


class SlotGate:
    """The compute slots of every process as one number, for :class:`~nbody_explorer.runtime.scheduler.FairPool`.

    The pool asks :meth:`acquire` before a job takes one of its own slots and calls
    :meth:`release` when the job gives it up; a refused pool polls (:meth:`FairPool.poll_gate`)
    until a slot of any process frees. Ranks are wall-clock seconds, comparable across
    processes: when the job's session asked, plus :data:`LONG_PENALTY_S` for a long session.
    """

    def __init__(self, coordinator: Coordinator, total: int) -> None:
        if total < 1:
            raise ValueError(f"total must be at least 1, got {total}")
        self.coordinator = coordinator
        self.total = total
        self.held_here: set[int] = set()
        self.ticketed: dict[int, float] = {}  # this process's jobs in the waiting line, and their ranks

    def rank(self, asked: float, *, long: bool) -> float:
        return asked + (LONG_PENALTY_S if long else 0.0)

    def acquire(self, job_id: int, rank: float) -> bool:
        granted = self.coordinator.try_acquire(job_id, rank, self.total)
        if granted:
            self.held_here.add(job_id)
            self.ticketed.pop(job_id, None)
        else:
            self.ticketed[job_id] = rank
        return granted

    def release(self, job_id: int) -> None:
        if job_id in self.held_here:
            self.held_here.discard(job_id)
            self.coordinator.release(job_id)

    def sync(self, tickets: Mapping[int, float]) -> None:
        """This process's sessions waiting for a slot now, ``{job id: rank}`` (one transaction
        when it changed): the other processes count them ahead of their own later ones."""
        if tickets != self.ticketed:
            self.coordinator.replace_tickets(tickets)
            self.ticketed = dict(tickets)

    def others_ahead(self, ranks: list[float]) -> list[int]:
        """For each rank, how many other processes' waiting jobs rank before it."""
        others = self.coordinator.other_ranks()
        return [bisect_left(others, rank) for rank in ranks]

    def contended(self, rank: float) -> bool:
        """Whether another process's job waits, ranked before ``rank``, while every slot is held:
        a running job then gives its slot up at its checkpoint."""
        with self.coordinator.transaction() as db:
            held = db.execute("SELECT COUNT(*) FROM slots").fetchone()[0]
            if held < self.total:
                return False
            return db.execute("SELECT COUNT(*) FROM tickets WHERE process != ? AND rank < ?",
                              (self.coordinator.key, rank)).fetchone()[0] > 0

    def state(self) -> dict:
        """``slots_total``, ``busy_all`` (slots held by every process), ``waiting_all``, ``processes``."""
        with self.coordinator.transaction() as db:
            return {
                "slots_total": self.total,
                "busy_all": db.execute("SELECT COUNT(*) FROM slots").fetchone()[0],
                "waiting_all": db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0],
                "processes": db.execute("SELECT COUNT(*) FROM processes").fetchone()[0],
            }


_INSTALLED: dict[str, Coordinator] = {}
_INSTALL_LOCK = threading.Lock()


def install_from_environment(pool, registry, environ: Mapping[str, str] | None = None) -> Coordinator | None:
    """Share ``pool``'s slots and ``registry``'s viewers with the other processes of
    ``NBODY_RUNTIME_DIR`` (once per process; None when the variable is unset: one process).
    Call it in the serving process (after any fork), e.g. when its first session is built."""
    directory = runtime_directory_from_environment(environ)
    if directory is None:
        return None
    with _INSTALL_LOCK:
        key = f"{os.getpid()}:{directory}"
        coordinator = _INSTALLED.get(key)
        if coordinator is None:
            coordinator = Coordinator(directory)
            registry.coordinator = coordinator
            pool.gate = SlotGate(coordinator, pool.slots)
            coordinator.on_beat.append(registry.publish)
            coordinator.start()
            _INSTALLED[key] = coordinator
        return coordinator
