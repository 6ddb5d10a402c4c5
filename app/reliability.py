"""Session guards: an exception in any widget callback becomes a visible message.

Panel runs widget -> parameter links and watchers inside the session; a value a hostile (or
buggy) client sends that a parameter refuses raises there, and by default only reaches the
server log while the page silently keeps the refused value. :func:`install_session_guards`
gives every session a message box at the top of the dashboard and routes such exceptions
into it (the session keeps working, the parameter keeps its previous valid value).

Messages are shown as Markdown text with every Markdown/HTML control character escaped, so
user-controlled text (a file name, a URL value) is displayed verbatim and never rendered or
run: :func:`plain_markdown` is the escaping, for any pane that shows user text.

Server-wide guards live here too: :class:`SessionRegistry` counts live sessions against the
cap (``NBODY_MAX_SESSIONS``) and, once the last session of a burst is destroyed, returns
freed memory to the OS (``malloc_trim``, glibc only); :func:`oversized_query_values` finds
link values with more digits than ``int()`` takes (4301+), which
``app.compat.query.install_query_guard`` keeps from blanking the session.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import re
import sys
import threading
import urllib.parse

import panel as pn

__all__ = [
    "install_session_guards",
    "plain_markdown",
    "SESSION_MESSAGE_NAME",
    "SessionRegistry",
    "SESSIONS",
    "release_memory",
    "oversized_query_values",
]

SESSION_MESSAGE_NAME = "session-message"
_LOG = logging.getLogger("app.reliability")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~&=:\"'])")


def plain_markdown(text: str, *, max_length: int = 2000) -> str:
    """``text`` escaped so that Markdown shows it literally (no emphasis, links or HTML).

    Args:
        text: any text, possibly user-controlled.
        max_length: longer text is cut (with an ellipsis) so a huge value cannot flood the page.
    """
    text = str(text)
    if len(text) > max_length:
        text = text[:max_length] + "…"
    text = text.replace("\r", " ").replace("\n", " ")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _describe(exception: BaseException) -> str:
    message = str(exception).strip() or type(exception).__name__
    if isinstance(exception, (ValueError, TypeError)):
        return f"Refused: {message}"
    if isinstance(exception, MemoryError):
        return "Out of memory: the request was too large for this server; try fewer bodies, members or steps."
    return f"Something went wrong ({type(exception).__name__}: {message}); the session keeps running."


def install_session_guards(template) -> pn.pane.Alert:
    """Add a per-session message box to ``template`` and route callback exceptions to it.

    Call once per session (``app/main.py``), before ``template.servable()``.

    Args:
        template: the dashboard template of this session (its ``main`` area gets the box).

    Returns:
        The message box (hidden until a message arrives).
    """
    box = pn.pane.Alert(
        "", alert_type="danger", visible=False, sizing_mode="stretch_width", name=SESSION_MESSAGE_NAME,
        margin=(5, 10),
    )
    template.main.insert(0, box)

    def report(exception: BaseException) -> None:
        _LOG.warning("session callback failed: %s: %s", type(exception).__name__, exception)
        box.object = plain_markdown(_describe(exception))
        box.visible = True

    pn.config.exception_handler = report  # per session: set while the session's document is current
    return box


# ------------------------------------------------------------------ memory


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


# ------------------------------------------------------------------ sessions


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


# ------------------------------------------------------------------ query strings


def oversized_query_values(query, *, max_digits: int | None = None) -> list[str]:
    """Keys of ``query`` whose value is a run of digits too long for ``int()`` (Python refuses
    more than ``sys.get_int_max_str_digits()`` = 4300 digits).

    Args:
        query: ``"?a=1&b=..."``, or a list of one key's raw values (``bytes`` or ``str``, as in
            Bokeh's ``request.arguments``): then ``["value"]`` if any is too long, else ``[]``.
    """
    max_digits = sys.get_int_max_str_digits() if max_digits is None else max_digits
    if max_digits <= 0:
        return []
    if isinstance(query, str):
        pairs = urllib.parse.parse_qsl(query.lstrip("?"), keep_blank_values=True)
    else:
        pairs = [("value", v.decode("latin-1") if isinstance(v, bytes) else str(v)) for v in query]
    return [key for key, value in pairs if value.isdigit() and len(value) > max_digits]
