"""Session admission: live sessions counted against the server's cap, memory freed after them.

Contract: :func:`admit_session` counts the session being built against the cap and releases
it when the session is destroyed; past the cap it refuses (the caller shows a "full" page).
When the last session of a burst is gone, :class:`SessionRegistry` returns freed memory to
the OS (:func:`release_memory`: ``gc.collect``, JAX's caches, glibc's ``malloc_trim``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import sys
import threading

import panel as pn

__all__ = ["SESSIONS", "SessionRegistry", "admit_session", "release_memory"]

_LOG = logging.getLogger(__name__)


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


_MALLOC_TRIM = _load_malloc_trim()


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


class SessionRegistry:
    """Live dashboard sessions of this process, against a cap.

    :meth:`admit` is called when a session is built; its ``on_session_destroyed`` callback
    calls :meth:`release`. When the count falls to zero (the last tab of a burst closed),
    memory is returned to the OS :attr:`trim_delay` seconds later, unless a new session
    arrived meanwhile.
    """

    def __init__(self, *, trim_delay: float = 2.0) -> None:
        self._lock = threading.Lock()
        self._live: set[str] = set()
        self._timer: threading.Timer | None = None
        self.trim_delay = trim_delay
        self.trims = 0  # how many times memory was released (tests and the load benchmark)

    @property
    def live(self) -> int:
        with self._lock:
            return len(self._live)

    def admit(self, session_id: str, cap: int) -> bool:
        """Count ``session_id`` and return True, or return False if ``cap`` sessions are live."""
        with self._lock:
            if session_id in self._live:
                return True
            if len(self._live) >= cap:
                return False
            self._live.add(session_id)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return True

    def release(self, session_id: str) -> None:
        with self._lock:
            self._live.discard(session_id)
            if self._live:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.trim_delay, self._trim_if_idle)
            self._timer.daemon = True
            self._timer.start()

    def _trim_if_idle(self) -> None:
        with self._lock:
            if self._live:
                return
            self._timer = None
        release_memory(clear_jax_caches=True)
        self.trims += 1
        _LOG.info("all sessions closed: released memory (malloc_trim=%s)", _MALLOC_TRIM is not None)


#: The sessions of this server process.
SESSIONS = SessionRegistry()


def admit_session(cap: int, *, registry: SessionRegistry | None = None) -> bool:
    """Count the session being built (``pn.state.curdoc``'s) against ``cap``.

    Call it while the session's document is current (``app/main.py`` -> ``serve_session``).
    An admitted served session is released when it is destroyed
    (``pn.state.on_session_destroyed``); one built outside a server (tests) is counted under
    its document's id and never released.

    Args:
        cap: most live sessions (``app.limits.max_sessions_from_environment``).
        registry: the sessions to count in (:data:`SESSIONS` by default).

    Returns:
        True when admitted; False when ``cap`` sessions are live already.
    """
    registry = SESSIONS if registry is None else registry
    document = pn.state.curdoc
    context = document.session_context if document is not None else None
    session_id = getattr(context, "id", None) or str(id(document))
    if not registry.admit(session_id, cap):
        return False
    if context is not None:
        pn.state.on_session_destroyed(lambda _context: registry.release(session_id))
    return True
