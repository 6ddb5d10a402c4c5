"""What a session tells its user: text shown literally in Markdown, a message box, a toast.

Contract: :func:`escape_markdown` is the one escaping for user- or file-derived text in any
Markdown pane (shown exactly as typed: no emphasis, link, HTML, emoji or list), and
:func:`show_message` puts a message in a tab's alert box and, when asked, a toast.

Why every ASCII punctuation character is escaped (CommonMark lets any of them be escaped with
a backslash): Panel's Markdown pane renders with markdown-it's "gfm-like" preset plus plugins,
which turn more than the classic syntax into markup. Escaping only emphasis, code, brackets
and line starts left ``http://x`` a live link (linkify; with ``_`` in the URL the link even
pointed elsewhere), ``example.com`` and ``:name:`` shortcodes too.
"""

from __future__ import annotations

import html
import re
import string

import panel as pn

__all__ = ["escape_markdown", "show_message"]

_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")


def escape_markdown(text, *, max_length: int = 2000) -> str:
    """``text`` escaped so that a Markdown pane shows it literally.

    Every ASCII punctuation character gets a backslash (so ``<`` is text, never a tag, and no
    Markdown, link, emoji or math syntax survives); line breaks are kept (``\\r\\n`` and
    ``\\r`` become ``\\n``).

    Args:
        text: any text, possibly user-controlled (converted with ``str``).
        max_length: longer text is cut to this many characters plus an ellipsis, so that a
            huge value cannot flood the page.

    Returns:
        Markdown source whose rendering reads as ``text``.
    """
    text = str(text)
    if len(text) > max_length:
        text = text[:max_length] + "…"
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _PUNCTUATION.sub(r"\\\1", text)


def show_message(message: pn.pane.Alert, text: str, *, level: str = "error", toast: bool = True) -> None:
    """Show ``text`` in a tab's alert box and, if ``toast``, as a toast notification.

    Args:
        message: the tab's alert pane (made visible, coloured by ``level``).
        text: the message; messages quote user text (file names, typed values), so the box
            shows it through :func:`escape_markdown` and the toast HTML-escaped (toasts
            render HTML).
        level: ``"error"``, ``"warning"`` or ``"info"``.
        toast: also pop up a toast notification (when the session has notifications).
    """
    message.object = escape_markdown(text)
    message.alert_type = {"error": "danger", "warning": "warning"}.get(level, "info")
    message.visible = True
    notifications = getattr(pn.state, "notifications", None)
    if toast and notifications is not None:
        kind = level if level in ("error", "warning") else "info"
        getattr(notifications, kind)(html.escape(text), duration=8000)
