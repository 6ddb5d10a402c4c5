"""Session guards: an exception in any widget callback becomes a visible message.

Panel runs widget -> parameter links and watchers inside the session; a value a hostile (or
buggy) client sends that a parameter refuses raises there, and by default only reaches the
server log while the page silently keeps the refused value. :func:`install_session_guards`
gives every session a message box at the top of the dashboard and routes such exceptions
into it (the session keeps working, the parameter keeps its previous valid value).

Messages are shown as Markdown text with every Markdown/HTML control character escaped
(:func:`nbody_explorer.runtime.messages.escape_markdown`), so user-controlled text (a file name, a URL
value) is displayed verbatim and never rendered or run. (The session cap and the memory
released after the last session: app/runtime/admission.py; link values too long for ``int()``:
app/compat/query.py.)
"""

from __future__ import annotations

import logging

import panel as pn

from nbody_explorer.runtime.messages import escape_markdown, public_text

__all__ = ["install_session_guards", "SESSION_MESSAGE_NAME"]

SESSION_MESSAGE_NAME = "session-message"
_LOG = logging.getLogger("nbody_explorer.reliability")


def _describe(exception: BaseException) -> str:
    # Never the exception's class, a parameter's internal name or a path (issue 26): the words
    # of a refusal (app/state/validation.py), or a plain sentence.
    if isinstance(exception, MemoryError):
        return "Out of memory: the request was too large for this server; try fewer bodies, members or steps."
    if isinstance(exception, (ValueError, TypeError)):
        return "Refused: " + public_text(exception, fallback="a value from this page is not allowed there; "
                                                             "the previous value is kept.")
    return "Something went wrong with that action; the session keeps running."


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
        _LOG.warning("session callback failed: %s: %s", type(exception).__name__, exception, exc_info=exception)
        box.object = escape_markdown(_describe(exception))
        box.visible = True

    pn.config.exception_handler = report  # per session: set while the session's document is current
    return box
