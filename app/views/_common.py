"""Run view code that changes Bokeh models under the session's document lock.

Panel does not always hold the lock when it calls a widget callback: a button click that
reaches the server while a debounced widget change is still pending (type a value, press
Enter, click at once) is dispatched by ``Reactive._server_event`` as an *unlocked* coroutine
(``state.execute`` -> ``async_execute`` marks it ``nolock``), and the pending change is
applied inside it too. Panel's own widgets cope (``unlocked()`` writes their events straight
to the socket), but setting a plain Bokeh model (``source.data``, ``figure.visible``) there
raises ``RuntimeError('_pending_writes should be non-None ...')`` and the callback stops
half way. :func:`locked` wraps such a callback so it always runs in a locked next-tick
callback of its session; :func:`run_locked` does the same for one call from any thread.
"""

from __future__ import annotations

from functools import partial, wraps

import panel as pn
from panel.io.state import set_curdoc

__all__ = ["locked", "run_locked"]


def run_locked(doc, fn) -> None:
    """Run ``fn()`` on ``doc``'s next tick, with its lock held (safe from any thread), or at
    once when ``doc`` is None (not served: notebook, tests). An exception ``fn`` raises goes
    to the session's ``pn.config.exception_handler``, like any Panel callback's.

    Args:
        doc: the session's document (``pn.state.curdoc`` captured while building the view),
            or None when the view is not served.
        fn: a plain (not async) callable with no arguments.
    """
    if doc is None:
        fn()
        return

    def guarded() -> None:
        with set_curdoc(doc):
            try:
                fn()
            except Exception as error:  # noqa: BLE001 - the session's handler shows it
                handler = pn.config.exception_handler
                if handler is None:
                    raise
                handler(error)

    doc.add_next_tick_callback(guarded)  # a next-tick callback without `nolock` runs locked


def locked(doc, callback):
    """``callback`` (a widget ``on_click`` callback or a param watcher) made to run under
    ``doc``'s lock (see :func:`run_locked`), whichever path Panel called it from.

    Args:
        doc: the session's document, or None when the view is not served (runs at once).
        callback: the function to wrap; its arguments are passed on.
    """

    @wraps(callback)
    def run(*args, **kwargs):
        run_locked(doc, partial(callback, *args, **kwargs))

    return run
