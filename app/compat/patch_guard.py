"""What a page sends, checked before Bokeh applies it; Bokeh's error replies without internals.

A page changes the server's models with PATCH-DOC messages, and a tampered page can put
anything in them: a slider's index past its options, ``"abc"`` for a number, NaN. Bokeh applies
what its property types accept (NaN is a float; an index past a ``DiscreteSlider``'s options
raised IndexError in Panel; -1 silently picked the last option) and answers what they refuse
with an ERROR reply carrying ``repr(exception)`` and the server's traceback (site-packages
paths), while the page shows nothing. Bokeh has no public hook for either, so
:func:`install_patch_guard` (tested Bokeh versions only, :data:`PRIVATE_USES`):

- wraps ``patch_doc.apply_to_document``: each ``ModelChanged`` event is first shown to the
  document's checker (``check(model, attr, value)`` returns the refusal sentence or None); a
  refused event is dropped, the model's current value is sent back (the widget shows it again)
  and the document's ``notify(text)`` runs as a next-tick callback (with the session's lock);
- replaces ``ServerConnection.error``: every ERROR reply says only that the message was not
  applied, never the exception or a traceback; a PATCH-DOC that failed still has its values
  sent back and a plain sentence shown in the page.

Elsewhere nothing is patched: the app's own checks behind Panel still refuse in words, and
Bokeh's replies to values its types refuse carry its traceback, as Bokeh writes them.
"""

from __future__ import annotations

import logging
import math
import weakref
from typing import Any, Callable

from nbody_explorer.compat import PrivateUse, version_tested

__all__ = ["ERROR_TEXT", "FAILED_PATCH_TEXT", "PRIVATE_USES", "install_patch_guard", "wire_value"]

PRIVATE_USES = (
    PrivateUse(
        "bokeh", "bokeh.protocol.messages.patch_doc.patch_doc.apply_to_document (method wrapped)",
        "a tampered widget value (slider index 99 or -1, NaN, ±inf, 'abc') is refused before Bokeh or "
        "Panel apply it, in words on the page, and the widget shows the kept value again "
        "(tests/ui/test_fuzz_ui.py, tests/app/test_patch_guard.py)",
        "not installed: Panel and the app's own checks refuse most values in words; an index past a "
        "discrete slider's options raises inside Panel (a plain message), -1 picks the last option",
    ),
    PrivateUse(
        "bokeh", "bokeh.server.connection.ServerConnection.error (method replaced)",
        "Bokeh's ERROR reply to a message it could not apply carries no exception text or server "
        "traceback (site-packages paths) (tests/ui/test_fuzz_ui.py, tests/app/test_patch_guard.py)",
        "not installed: such replies carry Bokeh's repr of the exception and the traceback",
    ),
)

#: The only text of an ERROR reply once installed.
ERROR_TEXT = "The server did not apply this message."
#: Shown in the page when a PATCH-DOC failed inside Bokeh (a value its types refuse).
FAILED_PATCH_TEXT = "A change sent by this page could not be applied; the page shows the kept values again."

_LOG = logging.getLogger(__name__)
# document -> (check, notify); weak, so a closed session's document is not kept alive.
_GUARDS: "weakref.WeakKeyDictionary[Any, tuple[Callable, Callable]]" = weakref.WeakKeyDictionary()
_installed = False


def wire_value(value: Any) -> Any:
    """A value as it arrived in a PATCH-DOC, made plain: BokehJS sends NaN and ±inf as
    ``{"type": "number", "value": "nan" | "+inf" | "-inf"}``."""
    if isinstance(value, dict) and value.get("type") == "number":
        text = str(value.get("value"))
        return {"nan": math.nan, "+inf": math.inf, "inf": math.inf, "-inf": -math.inf}.get(text, value)
    return value


def _send_back(doc, model, attr: str) -> None:
    """Send ``model.attr``'s server value to the page again (the page holds the refused one)."""
    from bokeh.document.events import ModelChangedEvent

    try:
        doc.callbacks.trigger_on_change(ModelChangedEvent(doc, model, attr, getattr(model, attr)))
    except Exception:  # noqa: BLE001 - a revert that fails leaves the page as it was; logged
        _LOG.warning("could not send %s.%s back to the page", type(model).__name__, attr, exc_info=True)


def _notify_later(doc, notify: Callable[[str], None], text: str) -> None:
    doc.add_next_tick_callback(lambda: notify(text))


def _screened(doc, events: list) -> tuple[list, list]:
    """``(kept events, [(model, attr, refusal text)])`` for a PATCH-DOC's events."""
    check, _ = _GUARDS[doc]
    kept, refused = [], []
    for event in events:
        model = None
        if isinstance(event, dict) and event.get("kind") == "ModelChanged" and isinstance(event.get("model"), dict):
            model = doc.get_model_by_id(event["model"].get("id"))
        if model is None:
            kept.append(event)
            continue
        try:
            text = check(model, event.get("attr"), wire_value(event.get("new")))
        except Exception:  # noqa: BLE001 - a checker bug must not drop a valid change; logged
            _LOG.exception("patch checker failed")
            text = None
        if text is None:
            kept.append(event)
        else:
            refused.append((model, event.get("attr"), text))
    return kept, refused


def _guarded_apply(original):
    def apply_to_document(self, doc, setter=None):
        if doc not in _GUARDS or not isinstance(self.content, dict):
            return original(self, doc, setter)
        kept, refused = _screened(doc, list(self.content.get("events") or []))
        if refused:
            self.content["events"] = kept
        try:
            if kept:
                original(self, doc, setter)
        finally:
            notify = _GUARDS[doc][1]
            for model, attr, text in refused:
                _send_back(doc, model, attr)
                _notify_later(doc, notify, text)

    apply_to_document.nbody_guarded = True
    apply_to_document.original = original
    return apply_to_document


def _quiet_error(original):
    def error(self, message, text):
        reply = original(self, message, ERROR_TEXT)
        if isinstance(reply.content, dict):
            reply.content["traceback"] = None
            reply.content["text"] = ERROR_TEXT
        try:
            _after_failed_patch(self, message)
        except Exception:  # noqa: BLE001 - the reply goes out whatever happens here
            _LOG.warning("could not report a failed patch in the page", exc_info=True)
        return reply

    error.nbody_guarded = True
    error.original = original
    return error


def _after_failed_patch(connection, message) -> None:
    """A PATCH-DOC that Bokeh could not apply: send its models' values back and say so."""
    if getattr(message, "msgtype", None) != "PATCH-DOC":
        return
    try:
        session = connection.session
    except (AssertionError, AttributeError):
        # A message that arrived as its page's connection closed (Bokeh's connection has no
        # session any more): nobody to tell. It filled the server log with tracebacks before.
        return
    doc = getattr(session, "document", None)
    if doc is None or doc not in _GUARDS:
        return
    changed = []
    for event in (message.content or {}).get("events") or []:
        if isinstance(event, dict) and event.get("kind") == "ModelChanged" and isinstance(event.get("model"), dict):
            model = doc.get_model_by_id(event["model"].get("id"))
            if model is not None and isinstance(event.get("attr"), str) and event["attr"] in model.properties():
                changed.append((model, event["attr"]))
    notify = _GUARDS[doc][1]

    def report() -> None:  # a next-tick callback: under the session's lock, as sending needs
        for model, attr in changed:
            _send_back(doc, model, attr)
        notify(FAILED_PATCH_TEXT)

    doc.add_next_tick_callback(report)


def _install_process_wide() -> None:
    global _installed
    if _installed:
        return
    from bokeh.protocol.messages.patch_doc import patch_doc
    from bokeh.server.connection import ServerConnection

    if not getattr(patch_doc.apply_to_document, "nbody_guarded", False):
        patch_doc.apply_to_document = _guarded_apply(patch_doc.apply_to_document)
    if not getattr(ServerConnection.error, "nbody_guarded", False):
        ServerConnection.error = _quiet_error(ServerConnection.error)
    _installed = True


def install_patch_guard(document, *, check: Callable[[Any, str, Any], str | None],
                        notify: Callable[[str], None], tested: bool | None = None) -> bool:
    """Check every change the page of ``document`` sends before Bokeh applies it, and keep
    Bokeh's error replies free of internals (the latter process-wide, once).

    Args:
        document: the session's Bokeh ``Document``.
        check: ``check(model, attr, value)`` -> the refusal sentence, or None to let it through;
            ``value`` as sent (NaN and ±inf as floats).
        notify: shows a refusal in the page; runs as a next-tick callback of ``document``.
        tested: override the version check (tests).

    Returns:
        Whether the guard is installed (False outside the tested Bokeh versions).
    """
    if not (version_tested("bokeh") if tested is None else tested):
        return False
    _install_process_wide()
    _GUARDS[document] = (check, notify)
    return True
