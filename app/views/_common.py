"""Run view code that changes Bokeh models under the session's document lock.

Panel does not always hold the lock when it calls a widget callback: a button click that
reaches the server while a debounced widget change is still pending (type a value, press
Enter, click at once) is dispatched by ``Reactive._server_event`` as an *unlocked* coroutine
(``state.execute`` -> ``async_execute`` marks it ``nolock``), and the pending change is
applied inside it too. Panel's own widgets cope (``unlocked()`` writes their events straight
to the socket), but setting a plain Bokeh model (``source.data``, ``figure.visible``) there
raises ``RuntimeError('_pending_writes should be non-None ...')`` and the callback stops
half way. ``SessionRunner.locked`` (app/views/session.py) wraps such a callback so it always runs in
a locked next-tick callback of its session; :func:`run_locked` does that for one call from
any thread, and :func:`call_in_document` is the call itself. Also: escaping of user text and
the tabs' message boxes.
"""

from __future__ import annotations

import html
import re
from functools import partial

import panel as pn
from panel.io.state import set_curdoc

__all__ = ["call_in_document", "escape_markdown", "run_locked", "show_message"]

_MARKDOWN_INLINE = re.compile(r"([\\`*_{}\[\]|~])")  # emphasis, code, links, tables, strike
_MARKDOWN_LINE_START = re.compile(r"(?m)^(\s*)([#+\-=])")  # headings, bullet lists, rules
_MARKDOWN_ORDERED = re.compile(r"(?m)^(\s*\d+)([.)])")  # ordered lists: escape the "." / ")"


def escape_markdown(text: str) -> str:
    """User- or file-derived text shown literally in a Markdown pane: HTML-escaped (no
    tags, no script) and with every character that would start Markdown formatting escaped."""
    escaped = _MARKDOWN_INLINE.sub(r"\\\1", html.escape(str(text), quote=False))
    escaped = _MARKDOWN_LINE_START.sub(r"\1\\\2", escaped)
    return _MARKDOWN_ORDERED.sub(r"\1\\\2", escaped)


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
    doc.add_next_tick_callback(partial(call_in_document, doc, fn))  # without `nolock`: locked


def call_in_document(doc, fn) -> None:
    """``fn()`` with ``doc`` as Panel's current document (called on the document's callback
    thread, lock held); an exception goes to the session's ``pn.config.exception_handler``
    (shown in the page), as any Panel callback's would."""
    with set_curdoc(doc):
        try:
            fn()
        except Exception as error:  # noqa: BLE001 - the session's handler shows it
            handler = pn.config.exception_handler
            if handler is None:
                raise
            handler(error)


def show_message(message: pn.pane.Alert, text: str, *, level: str = "error", pane_text: str | None = None) -> None:
    """Show ``text`` in a tab's alert box and as a toast notification.

    Args:
        message: the tab's alert pane (made visible, coloured by ``level``).
        text: the message; the toast gets it HTML-escaped (toasts render HTML, and messages
            may quote user text such as file names or URL values).
        level: ``"error"``, ``"warning"`` or ``"info"``.
        pane_text: what the alert pane (Markdown) shows, if not ``text`` escaped with
            :func:`escape_markdown` (messages quote user text: file names, typed values).
    """
    message.object = escape_markdown(text) if pane_text is None else pane_text
    message.alert_type = {"error": "danger", "warning": "warning"}.get(level, "info")
    message.visible = True
    notifications = getattr(pn.state, "notifications", None)
    if notifications is not None:
        kind = level if level in ("error", "warning") else "info"
        getattr(notifications, kind)(html.escape(text), duration=8000)
