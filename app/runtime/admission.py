"""Session admission: the viewers of this server counted against its caps, memory freed after them.

Contract: a session counts as a viewer while its browser is connected (Bokeh's public
``ServerSession.connection_count``), and for a short grace after its connection drops, so a
page that reconnects keeps its place. A page request whose websocket never connects (a plain
``GET /app``, a link preview, a script) is never counted. :func:`admit_session` refuses a new
session past the server cap or past the per-address cap, with the reason; :func:`confirm_session`
checks again once the browser has connected (requests that connect together cannot all pass).
When the last session is destroyed, :class:`SessionRegistry` returns freed memory to the OS.
With a coordinator (several processes serving one class, app/runtime/coordinator.py), the caps
count the viewers of every process: each decision and each process's list of viewers are one
transaction of the shared file.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple

import panel as pn

from nbody_explorer.runtime.compile_cache import prune_configured_cache

__all__ = [
    "ADDRESS_FULL",
    "Admission",
    "FULL",
    "SESSIONS",
    "SessionRegistry",
    "admit_session",
    "client_address",
    "confirm_session",
    "release_memory",
]

_LOG = logging.getLogger(__name__)

#: :attr:`Admission.reason` when the server holds its cap of viewers.
FULL = "full"
#: :attr:`Admission.reason` when the client's address holds its cap of viewers.
ADDRESS_FULL = "address"


def _load_malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim  # glibc only: musl (Alpine) has no malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


#: ``NBODY_MALLOC_TRIM=0`` turns the trim off (benchmarks/bench_memory.py measures without it).
_MALLOC_TRIM = None if os.environ.get("NBODY_MALLOC_TRIM", "").strip() == "0" else _load_malloc_trim()


def release_memory(*, clear_jax_caches: bool = False) -> bool:
    """Return freed memory to the OS: a full ``gc.collect()`` (closed sessions are cycles of
    Bokeh models), then glibc's ``malloc_trim(0)`` (freed arena pages otherwise stay mapped:
    ~46 MiB after a burst of sessions, issue 16). ``clear_jax_caches`` also empties JAX's
    in-memory compilation caches (``jax.clear_caches()``; JAX has no size knob for them, and
    the next compile of a frame function reloads it from the persistent disk cache) and the
    ensembles' executable cache (``nbody_core.ensembles.runner.clear_compiled``).

    Returns:
        Whether ``malloc_trim`` was available (glibc) and called.
    """
    if clear_jax_caches and "jax" in sys.modules:
        sys.modules["jax"].clear_caches()
        runner = sys.modules.get("nbody_core.ensembles.runner")
        if runner is not None:
            runner.clear_compiled()  # the ensembles' batched functions (up to 32) and their executables
    gc.collect()  # after the caches let go of their executables
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


class Admission(NamedTuple):
    """The answer to a session asking in: true when admitted.

    Attributes:
        admitted: whether the session may have a dashboard.
        reason: ``""`` when admitted, else :data:`FULL` or :data:`ADDRESS_FULL`.
        live: viewers counted when the answer was given (the refused session not included).
        cap: the cap that refused it (the server's or the address's), or the server's cap.
    """

    admitted: bool
    reason: str
    live: int
    cap: int

    def __bool__(self) -> bool:
        return self.admitted


@dataclass
class _Entry:
    address: str
    connections: Callable[[], int] | None  # None: always a viewer (built outside a server)
    last_connected: float  # when last seen connected (or admitted)
    ever_connected: bool = False


class SessionRegistry:
    """The sessions of this process and which of them are viewers.

    :meth:`admit` registers a session when it is built; its ``on_session_destroyed`` callback
    calls :meth:`release`. A session counts against the caps (:attr:`live`) while
    ``connections()`` is positive, and for :attr:`disconnect_grace_s` seconds after it was last
    seen connected; one that has never connected does not count. When no session is left
    (the last tab of a burst destroyed), memory is returned to the OS :attr:`trim_delay`
    seconds later, unless a new session arrived meanwhile.

    Args:
        trim_delay: seconds between the last session's destruction and the memory release.
        disconnect_grace_s: seconds a viewer whose connection dropped keeps its place.
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(self, *, trim_delay: float = 2.0, disconnect_grace_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, _Entry] = {}
        self._timer: threading.Timer | None = None
        self.trim_delay = trim_delay
        self.disconnect_grace_s = disconnect_grace_s
        self._clock = clock
        self.trims = 0  # how many times memory was released (tests and the load benchmark)
        #: The other processes serving the class (app/runtime/coordinator.py): their viewers
        #: count against the caps too. None: this process alone.
        self.coordinator = None

    # ------------------------------------------------------------------ counting
    def _is_viewer(self, entry: _Entry, now: float) -> bool:
        if entry.connections is None:
            return True
        try:
            connected = entry.connections() > 0
        except Exception:  # noqa: BLE001 - a session taken apart meanwhile: not a viewer
            connected = False
        if connected:
            entry.last_connected, entry.ever_connected = now, True
            return True
        return entry.ever_connected and now - entry.last_connected <= self.disconnect_grace_s

    def _viewers(self, *, excluding: str | None = None) -> list[_Entry]:
        now = self._clock()
        return [entry for key, entry in self._sessions.items() if key != excluding and self._is_viewer(entry, now)]

    @contextmanager
    def _shared(self) -> Iterator[list[str]]:
        """The other processes' viewers' addresses, in one transaction with what follows (lock held)."""
        if self.coordinator is None:
            yield []
            return
        with self.coordinator.transaction():
            yield self.coordinator.other_viewers()

    def _publish(self) -> None:
        """Tell the other processes which of this process's sessions are viewers now (lock held)."""
        if self.coordinator is not None:
            now = self._clock()
            self.coordinator.publish_viewers(
                {key: entry.address for key, entry in self._sessions.items() if self._is_viewer(entry, now)})

    def publish(self) -> None:
        """:meth:`_publish` (the coordinator calls it every second)."""
        with self._lock:
            self._publish()

    @property
    def live(self) -> int:
        """Viewers now: connected sessions, and those within the grace after a drop (of every
        process serving the class when a coordinator is set)."""
        with self._lock, self._shared() as others:
            return len(self._viewers()) + len(others)

    @property
    def sessions(self) -> int:
        """Sessions not yet destroyed, viewers or not (a plain GET's session lives ~15-30 s)."""
        with self._lock:
            return len(self._sessions)

    def _decide(self, session_id: str, address: str, cap: int, per_address: int, others: list[str]) -> Admission:
        viewers = self._viewers(excluding=session_id)
        live = len(viewers) + len(others)
        if live >= cap:
            return Admission(False, FULL, live, cap)
        same = sum(entry.address == address for entry in viewers) + others.count(address)
        if per_address > 0 and same >= per_address:
            return Admission(False, ADDRESS_FULL, live, per_address)
        return Admission(True, "", live, cap)

    # ------------------------------------------------------------------ asking in
    def admit(self, session_id: str, cap: int, *, address: str = "", per_address: int = 0,
              connections: Callable[[], int] | None = None) -> Admission:
        """Register ``session_id`` if the viewers leave room for it.

        Args:
            session_id: the Bokeh session's id (asking again with a known id is admitted).
            cap: most viewers of the server.
            address: the client's address (:func:`client_address`).
            per_address: most viewers of one address; 0 for no such cap.
            connections: returns the session's open connection count; None counts the
                session as a viewer always (a session built outside a server).

        Returns:
            The :class:`Admission` (true when admitted).
        """
        with self._lock, self._shared() as others:
            if session_id in self._sessions:
                return Admission(True, "", len(self._viewers(excluding=session_id)) + len(others), cap)
            answer = self._decide(session_id, address, cap, per_address, others)
            if not answer:
                return answer
            self._sessions[session_id] = _Entry(address, connections, self._clock())
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return answer

    def ever_connected(self, session_id: str) -> bool:
        """Whether ``session_id``'s browser has been seen connected (False when unknown)."""
        with self._lock:
            entry = self._sessions.get(session_id)
            if entry is None:
                return False
            self._is_viewer(entry, self._clock())  # looks at its connections now
            return entry.ever_connected

    def confirm(self, session_id: str, cap: int, *, per_address: int = 0) -> Admission:
        """Check a registered session again once its browser has connected: pages requested
        together pass :meth:`admit` before any of them connects. Refused, the session stops
        counting at once (it is unregistered)."""
        with self._lock, self._shared() as others:
            entry = self._sessions.get(session_id)
            if entry is None:
                return Admission(False, FULL, len(self._viewers()) + len(others), cap)
            answer = self._decide(session_id, entry.address, cap, per_address, others)
            if not answer:
                del self._sessions[session_id]
            else:  # its page has connected: a later drop is a viewer's, with its grace
                entry.last_connected, entry.ever_connected = self._clock(), True
            self._publish()  # in the same transaction as the decision: another process sees it
            return answer

    def release(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)
            self._publish()
            if self._sessions:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.trim_delay, self._trim_if_idle)
            self._timer.daemon = True
            self._timer.start()

    def _trim_if_idle(self) -> None:
        with self._lock:
            if self._sessions:
                return
            self._timer = None
        release_memory(clear_jax_caches=True)
        prune_configured_cache()  # the disk cache's bound, when JAX cannot evict (no filelock)
        self.trims += 1
        _LOG.info("all sessions closed: released memory (malloc_trim=%s)", _MALLOC_TRIM is not None)


#: The sessions of this server process.
SESSIONS = SessionRegistry()


def client_address(request) -> str:
    """The client's IP address as the server sees it (Tornado's ``remote_ip``: the proxy's
    address behind a reverse proxy, unless the server runs with ``--use-xheaders``)."""
    return str(getattr(request, "remote_ip", None) or "")


def _connection_count(context) -> Callable[[], int]:
    def connections() -> int:
        session = getattr(context, "session", None)  # None while the session is being built
        if session is None or getattr(session, "destroyed", False):
            return 0
        return int(session.connection_count)

    return connections


def _expire_if_never_connected(context, registry: SessionRegistry, session_id: str) -> None:
    """Ask Bokeh to discard a served session whose browser never connected (a plain GET): its
    next unused-session check (``--check-unused-sessions``) destroys it. A browser that connects
    later still gets a dashboard: Bokeh builds a new session for the page's signed id."""
    session = getattr(context, "session", None)
    if session is None or getattr(session, "destroyed", False) or session.connection_count > 0:
        return
    if registry.ever_connected(session_id):
        return  # a viewer whose connection dropped: Bokeh's unused-session lifetime applies
    session.request_expiration()


def admit_session(cap: int, *, per_address: int = 0, connect_timeout_s: float | None = None,
                  registry: SessionRegistry | None = None) -> Admission:
    """Register the session being built (``pn.state.curdoc``'s) if the viewers leave room.

    Call it while the session's document is current (``app/main.py`` -> ``serve_session``).
    An admitted served session counts once its browser connects and is unregistered when it
    is destroyed (``pn.state.on_session_destroyed``); one built outside a server (tests) is
    counted at once under its document's id and never released.

    Args:
        cap: most viewers (``nbody_explorer.limits.max_sessions_from_environment``).
        per_address: most viewers of one client address, 0 for no such cap
            (``nbody_explorer.limits.max_sessions_per_address_from_environment``).
        connect_timeout_s: a served session whose browser has not connected this many seconds
            after the request is handed back to Bokeh for destruction (None: Bokeh's own
            unused-session lifetime, 15 s by default).
        registry: the sessions to count in (:data:`SESSIONS` by default).

    Returns:
        The :class:`Admission`: true when admitted; else its reason and the cap that refused.
    """
    registry = SESSIONS if registry is None else registry
    document = pn.state.curdoc
    context = document.session_context if document is not None else None
    session_id = getattr(context, "id", None) or str(id(document))
    served = context is not None and hasattr(context, "request")
    answer = registry.admit(
        session_id, cap, address=client_address(getattr(context, "request", None)), per_address=per_address,
        connections=_connection_count(context) if served else None,
    )
    if answer and context is not None:
        pn.state.on_session_destroyed(lambda _context: registry.release(session_id))
        if served and connect_timeout_s is not None:
            document.add_timeout_callback(lambda: _expire_if_never_connected(context, registry, session_id),
                                          max(1, int(connect_timeout_s * 1000)))
    return answer


def confirm_session(cap: int, *, per_address: int = 0, registry: SessionRegistry | None = None) -> Admission:
    """:meth:`SessionRegistry.confirm` for the current session (call it once the browser has
    connected, e.g. from ``pn.state.onload``)."""
    registry = SESSIONS if registry is None else registry
    document = pn.state.curdoc
    context = document.session_context if document is not None else None
    session_id = getattr(context, "id", None) or str(id(document))
    return registry.confirm(session_id, cap, per_address=per_address)
