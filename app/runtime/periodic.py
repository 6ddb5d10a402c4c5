"""A session's periodic work: one callback every so many milliseconds, gone with the session.

Contract: a :class:`Periodic` owns one Panel periodic callback of the session it is built in;
:meth:`~Periodic.start` and :meth:`~Periodic.stop` may alternate, and once the session is
destroyed (or its view's :class:`~nbody_explorer.runtime.session.SessionRunner` is closed) it is stopped
for good and never starts again. Every periodic callback of the app goes through it.
"""

from __future__ import annotations

from typing import Callable

import panel as pn

from nbody_explorer.runtime.session import SessionRunner

__all__ = ["Periodic"]


class Periodic:
    """``fn()`` every ``period_ms`` milliseconds while started, in the session it is built in.

    Args:
        fn: a callable with no arguments (Panel runs it under the document lock).
        period_ms: milliseconds between two calls (at least 1).
        runner: the view's session runner: stopped for good when it closes (the session is
            destroyed, or a test or notebook closes it). Without one, stopped for good when the
            served session it is built in is destroyed (``pn.state.on_session_destroyed``).

    Raises:
        ValueError: if ``period_ms`` is below 1.
    """

    def __init__(self, fn: Callable[[], None], *, period_ms: int, runner: SessionRunner | None = None):
        self.fn = fn
        self._period_ms = _checked_period(period_ms)
        self._callback = None  # Panel's PeriodicCallback while started
        self._closed = False
        if runner is not None:
            runner.on_destroyed(self.close)
        else:
            doc = pn.state.curdoc
            if doc is not None and doc.session_context is not None:
                pn.state.on_session_destroyed(lambda _context: self.close())

    @property
    def running(self) -> bool:
        """Whether the callback is started."""
        return self._callback is not None

    @property
    def closed(self) -> bool:
        """True once the session is gone: :meth:`start` does nothing any more."""
        return self._closed

    @property
    def period_ms(self) -> int:
        """Milliseconds between two calls; setting it applies at once, also while running."""
        return self._period_ms

    @period_ms.setter
    def period_ms(self, value: int) -> None:
        self._period_ms = _checked_period(value)
        if self._callback is not None:
            self._callback.period = self._period_ms

    def start(self) -> None:
        """Start calling ``fn`` (nothing if already started, or once the session is gone)."""
        if self._closed or self._callback is not None:
            return
        self._callback = pn.state.add_periodic_callback(self.fn, period=self._period_ms, start=True)

    def stop(self) -> None:
        """Stop calling ``fn`` (it may be started again)."""
        callback, self._callback = self._callback, None
        if callback is not None:
            callback.stop()

    def close(self) -> None:
        """Stop for good (the session is destroyed)."""
        self._closed = True
        self.stop()


def _checked_period(period_ms) -> int:
    period = int(period_ms)
    if period < 1:
        raise ValueError(f"period_ms must be at least 1 millisecond, got {period_ms!r}")
    return period
