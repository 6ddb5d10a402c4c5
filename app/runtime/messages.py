"""What a session tells its user: text shown literally in Markdown, in a message box.

Contract: :func:`public_text` is what a page may see of an exception (never a class, a
parameter's internal name, a path or a traceback); :func:`escape_markdown` is the one
escaping for user- or file-derived text in any Markdown pane (shown exactly as typed: no emphasis, link, HTML, emoji or list),
:func:`show_message` puts a message in a tab's alert box (inline, never a toast: a toast
covered the very plot it warned about, issue 28), and :func:`dismissable` gives that box a
Dismiss button.

Why every ASCII punctuation character is escaped (CommonMark lets any of them be escaped with
a backslash): Panel's Markdown pane renders with markdown-it's "gfm-like" preset plus plugins,
which turn more than the classic syntax into markup. Escaping only emphasis, code, brackets
and line starts left ``http://x`` a live link (linkify; with ``_`` in the URL the link even
pointed elsewhere), ``example.com`` and ``:name:`` shortcodes too.
"""

from __future__ import annotations

import re
import string

import panel as pn

__all__ = ["dismissable", "escape_markdown", "public_text", "show_message"]

# What marks text as internal: "SimulationState.dt", "state.py", "<class 'float'>", "IndexError: ...".
_INTERNAL_NAME = re.compile(r"\b[A-Z][a-z]+[A-Z]\w*\.\w+|\w+\.py\b|\b[A-Z]\w*(Error|Exception)\b")
_INTERNAL_MARKERS = ("Traceback", 'File "', "site-packages", "parameter '", "<class", "object has no attribute",
                     "Parameterized")
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


def public_text(error: BaseException, *, fallback: str) -> str:
    """What a page may show of ``error``: its text when that names nothing internal (a refusal
    from app/state/validation.py is one sentence in the user's words), else ``fallback``.

    Internal: a class or exception name, a parameter's owner-qualified name
    ("Integer parameter 'SimulationState.steps_per_frame' ..."), a file path, a traceback.
    """
    text = str(error).strip()
    if not text or any(marker in text for marker in _INTERNAL_MARKERS) or _INTERNAL_NAME.search(text):
        return fallback
    return text


def show_message(message: pn.pane.Alert, text: str, *, level: str = "error") -> None:
    """Show ``text`` in a tab's alert box, in place (no toast: a popup covered the plots).

    Args:
        message: the tab's alert pane (made visible, coloured by ``level``); an
            :class:`~nbody_explorer.compat.alert.AnnouncedAlert` is also read out by screen readers.
        text: the message; messages quote user text (file names, typed values), so the box
            shows it through :func:`escape_markdown`.
        level: ``"error"``, ``"warning"`` or ``"info"``.
    """
    message.object = escape_markdown(text)
    message.alert_type = {"error": "danger", "warning": "warning"}.get(level, "info")
    message.visible = True


def dismissable(message: pn.pane.Alert, *, name: str) -> pn.Row:
    """``message`` beside a Dismiss button that hides it; the button shows only with the message.

    Args:
        message: an alert pane that :func:`show_message` fills.
        name: the row's name (browser tests find the button by its label, "Dismiss").
    """
    button = pn.widgets.Button(label="Dismiss", width=100, height=36, visible=message.visible,
                               description="Hide this message", margin=(5, 10, 5, 0),
                               align="start")

    def hide(_event) -> None:
        message.visible = False

    def follow(event) -> None:
        button.visible = event.new

    button.on_click(hide)
    message.param.watch(follow, "visible")
    return pn.Row(message, button, sizing_mode="stretch_width", name=name)
