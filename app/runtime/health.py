"""The server's health beside ``/liveness``: ``/health`` sees a stalled piece of work.

Contract: :func:`health_report` says what the compute pool is doing (queue length per session
and in all, the age of the oldest running piece, live sessions, RSS) and whether a running
piece has overrun its bound (``NBODY_PIECE_BOUND_S``); :data:`ROUTES` serves it as JSON at
``/health`` (HTTP 200 "healthy", 503 "unhealthy") when the server loads this module as a Panel
plugin (``panel serve app --plugins nbody_explorer.runtime.health``, which ``nbody serve`` passes).

``/liveness`` only says that the event loop answers: it answers in milliseconds while every
compute slot is stuck in one long piece (issue 26, item 5). Work runs in bounded pieces with a
checkpoint between them (app/runtime/scheduler.py), so a piece older than its bound is a stall.
"""

from __future__ import annotations

import json
import os
from typing import Mapping

import tornado.web

from nbody_explorer.runtime.admission import SESSIONS
from nbody_explorer.runtime.coordinator import install_from_environment
from nbody_explorer.runtime.scheduler import POOL, FairPool

__all__ = ["DEFAULT_PIECE_BOUND_S", "HealthHandler", "ROUTES", "health_report", "piece_bound_from_environment"]

#: Longest a running piece may take before the server reports itself unhealthy, seconds, when
#: ``NBODY_PIECE_BOUND_S`` does not say otherwise. Work is cut into pieces of ~0.1 s at the
#: caps; a JAX compile is one piece that cannot be cut, 0.25-1.6 s on a quiet 2-core machine
#: (NOTES.md) and several times that under load, hence 5 s, not 1 s.
DEFAULT_PIECE_BOUND_S = 5.0


def piece_bound_from_environment(environ: Mapping[str, str] | None = None) -> float:
    """``NBODY_PIECE_BOUND_S`` (``nbody serve --piece-bound``) or :data:`DEFAULT_PIECE_BOUND_S`.

    Raises:
        ValueError: naming the variable, if it is not a number of seconds in (0, 3600].
    """
    environ = os.environ if environ is None else environ
    text = environ.get("NBODY_PIECE_BOUND_S", "")
    if not text.strip():
        return DEFAULT_PIECE_BOUND_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= 3600.0:  # also refuses NaN
        raise ValueError(f"NBODY_PIECE_BOUND_S must be a number of seconds in (0, 3600], got {text!r}")
    return value


def _rss_mib() -> float | None:
    """Resident memory of this process, MiB (Linux ``/proc``; None elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def health_report(*, pool: FairPool | None = None, live_sessions: int | None = None,
                  bound_s: float | None = None) -> tuple[int, dict]:
    """The health endpoint's answer: ``(HTTP status, body)``.

    Args:
        pool: the compute pool (:data:`~nbody_explorer.runtime.scheduler.POOL`).
        live_sessions: dashboard sessions (default: the session cap's count).
        bound_s: a piece's bound (default :func:`piece_bound_from_environment`).

    Returns:
        ``(200, body)`` when no running piece is older than ``bound_s``, else ``(503, body)``.
        ``body``: ``status`` ("healthy" / "unhealthy"), ``reason`` (a sentence, when
        unhealthy), ``piece_bound_s``, ``oldest_piece_s``, ``queue`` (``total`` and
        ``per_session``: jobs waiting per session, by the pool's session names), ``slots``,
        ``busy``, ``sessions`` (live), ``compute`` (the pool's per-session detail) and ``rss_mib``.
    """
    pool = POOL if pool is None else pool
    bound_s = piece_bound_from_environment() if bound_s is None else bound_s
    state = pool.health()
    overrun = [s for s in state["sessions"] if s["piece_age_s"] is not None and s["piece_age_s"] > bound_s]
    body = {
        "status": "unhealthy" if overrun else "healthy",
        "piece_bound_s": bound_s,
        "oldest_piece_s": state["oldest_piece_s"],
        "queue": {
            "total": state["waiting"],
            "per_session": {s["session"]: s["waiting"] for s in state["sessions"] if s["waiting"] or s["running"]},
        },
        "slots": state["slots"],
        "busy": state["busy"],
        "sessions": SESSIONS.live if live_sessions is None else live_sessions,
        "compute": state["sessions"],
        "rss_mib": _rss_mib(),
        "pid": os.getpid(),  # which server process answered (several behind one port or proxy)
    }
    if "slots_total" in state:  # several processes share the slots and the caps (NBODY_RUNTIME_DIR)
        body["all_processes"] = {key: state[key] for key in ("processes", "slots_total", "busy_all", "waiting_all")}
    if overrun:
        worst = overrun[0]  # the pool lists the oldest running piece first
        what = f" ({worst['label']})" if worst["label"] else ""
        body["reason"] = (f"{worst['session']}{what} has run one piece of work for {worst['piece_age_s']:.1f} s; "
                          f"the bound is {bound_s:g} s")
    return (503 if overrun else 200), body


class HealthHandler(tornado.web.RequestHandler):
    """``GET /health``: :func:`health_report` as JSON (never cached)."""

    def get(self) -> None:
        install_from_environment(POOL, SESSIONS)  # the counts of every process (NBODY_RUNTIME_DIR)
        status, body = health_report()
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))


#: The Panel plugin's routes (``panel serve --plugins nbody_explorer.runtime.health``).
ROUTES = [(r"/health", HealthHandler)]
