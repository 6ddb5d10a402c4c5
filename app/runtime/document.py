"""Calls into a session's Bokeh document: under its lock, with it current, or all at once.

Contract: :func:`run_locked` runs a callable on the document's next tick with its lock held
(safe from any thread; at once when there is no document), :func:`call_in_document` is that
call itself (the document current, an exception shown by the session's handler), and
:func:`combined_changes` sends the model changes made inside it as one message.

Why this exists: Panel does not always hold the lock when it calls a widget callback. A
button click that reaches the server while a debounced widget change is still pending (type
a value, press Enter, click at once) is dispatched by ``Reactive._server_event`` as an
*unlocked* coroutine (``state.execute`` -> ``async_execute`` marks it ``nolock``), and the
pending change is applied inside it too. Panel's own widgets cope (``unlocked()`` writes their
events straight to the socket), but setting a plain Bokeh model (``source.data``,
``figure.visible``) there raises ``RuntimeError('_pending_writes should be non-None ...')`` and
the callback stops half way. ``SessionRunner.locked`` (app/runtime/session.py) wraps such a
callback so that it always runs in a locked next-tick callback of its session.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from functools import partial
from typing import Callable, Iterator

import panel as pn
from bokeh.io.state import curstate
from panel.io.state import set_curdoc

from nbody_explorer.compat.session import forget_curdoc_patch

__all__ = ["call_in_document", "combined_changes", "document_destroyed", "run_locked", "try_run_locked"]


def document_destroyed(doc) -> bool:
    """Whether Bokeh has destroyed ``doc``, the document of a served session (its tab closed).

    Bokeh's and Panel's ``Document.destroy`` drop the session context first, before they take
    the document's callback manager apart, so a destroyed document is one whose public
    ``session_context`` is gone.
    """
    return getattr(doc, "session_context", None) is None


def run_locked(doc, fn: Callable[[], None]) -> None:
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
    doc.add_next_tick_callback(partial(call_in_document, doc, fn))  # without `nolock`: locked


def try_run_locked(doc, fn: Callable[[], None]) -> str | None:
    """:func:`run_locked` for a served document that may be destroyed meanwhile.

    Returns:
        None once ``fn`` is scheduled; else the name of the error Bokeh raised because the
        document was destroyed (``"AttributeError"``, ``"RuntimeError"``). Bokeh leaves the
        destroyed document as its current one on the way (``patch_curdoc`` has no
        try/finally); it is taken off again (app/compat/session.py) and the previous one kept.
    """
    state = curstate()
    current = state.document
    try:
        run_locked(doc, fn)
    except (AttributeError, RuntimeError) as error:
        forget_curdoc_patch(doc)
        state.document = current
        return type(error).__name__
    return None


_CALLBACK = threading.local()


def in_session_callback() -> bool:
    """Whether this thread is running a session callback of the app (:func:`call_in_document`:
    Bokeh's locked callback, the document held), where a model change goes out on Bokeh's
    queue in order with the session's other callbacks; False in a widget callback that Panel
    runs (its changes go out on Panel's own queue)."""
    return getattr(_CALLBACK, "depth", 0) > 0


def call_in_document(doc, fn: Callable[[], None]) -> None:
    """``fn()`` with ``doc`` as Panel's current document (called on the document's callback
    thread, lock held); an exception goes to the session's ``pn.config.exception_handler``
    (shown in the page), as any Panel callback's would."""
    # Held ("combine"): every model change of the callback goes to the page on Bokeh's path,
    # in order with the session's other callbacks (combined_changes).
    _CALLBACK.depth = getattr(_CALLBACK, "depth", 0) + 1
    try:
        with set_curdoc(doc), combined_changes(doc):
            try:
                fn()
            except Exception as error:  # noqa: BLE001 - the session's handler shows it
                handler = pn.config.exception_handler
                if handler is None:
                    raise
                handler(error)
    finally:
        _CALLBACK.depth -= 1


@contextmanager
def combined_changes(doc) -> Iterator[None]:
    """Send the model changes made inside as one message, in order with every other change of
    the session (Bokeh's ``Document.hold("combine")``; nothing when ``doc`` is None or already
    held). Bokeh's own hold, not ``pn.io.hold``: in a locked callback the latter writes to the
    socket on Panel's separate path, where a frame's stream could arrive after a later redraw
    (the browser drew a point of the previous run)."""
    callbacks = getattr(doc, "callbacks", None)  # None: not served (or a test's stand-in document)
    if callbacks is None or callbacks.hold_value is not None:
        yield
        return
    doc.hold("combine")
    try:
        yield
    finally:
        doc.unhold()
