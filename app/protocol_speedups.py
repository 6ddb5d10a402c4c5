"""Cheaper Bokeh ``PATCH-DOC`` messages for large documents (process-wide, idempotent).

Every ``PATCH-DOC`` message the server sends (an orbit-scene frame, a status line, a
plot's new points) is built by Bokeh's ``patch_doc.create``, which starts with
``Serializer(references=doc.models.synced_references)``: a fresh ``{id: Ref}`` entry for
*every* model of the session's document, thousands for the whole dashboard, although a
frame refers to one model. Measured with py-spy (10 frame-only clients playing N = 200,
GIL-holding samples of the server): 22 % of the server's Python time went there, ~1 ms
per message.

:func:`install_patch_doc_speedup` replaces that serializer with :class:`SyncedSerializer`,
which answers "is this model already in the browser?" by looking the model up in the
document when the encoder meets it. The message it produces is identical for every kind of
document event (see ``tests/app/test_protocol_speedups.py``). It reads Bokeh internals, so it
installs only on the Bokeh releases it was tested on (:data:`TESTED_BOKEH`) after checking those
internals' shape (:func:`unsupported_reason`); otherwise Bokeh's own serializer stays, with one
logged warning.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from bokeh.core.serialization import Ref, Serializer
from bokeh.model import Model

# The module (``bokeh.protocol.messages`` re-exports its class under the same name).
_patch_doc_module = importlib.import_module("bokeh.protocol.messages.patch_doc")

__all__ = ["SyncedSerializer", "TESTED_BOKEH", "install_patch_doc_speedup", "original_patch_doc_create",
           "unsupported_reason"]

_LOG = logging.getLogger(__name__)


class SyncedSerializer(Serializer):
    """A Bokeh serializer whose references are a document's synced models, found on demand.

    Bokeh's own takes them as a set and builds a reference for each one up front (O(models)
    per message); this one checks ``document.models`` only for the models a message
    actually contains. A model counts as synced when the document holds it and it is not
    among the models added since the last message (those are sent in full, as before).
    """

    def __init__(self, models, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._document_models = models  # bokeh.document.models.DocumentModelManager

    def _synced(self, obj: Any) -> bool:
        if not isinstance(obj, Model):
            return False
        manager = self._document_models
        return manager._models.get(obj.id) is obj and obj not in manager._new_models

    def has_ref(self, obj: Any) -> bool:
        """Whether ``obj`` is encoded as a bare ``{"id": ...}`` reference (already referenced
        in this message, or a synced model of the document)."""
        return id(obj) in self._references or self._synced(obj)

    def get_ref(self, obj: Any) -> Ref | None:
        """The reference of ``obj`` (remembered for the rest of the message), or None when
        it must be encoded in full."""
        ref = self._references.get(id(obj))
        if ref is None and self._synced(obj):
            ref = self._references[id(obj)] = obj.ref
        return ref


#: Bokeh's own ``patch_doc.create`` (kept for tests and to undo the speed-up).
original_patch_doc_create = _patch_doc_module.patch_doc.create


def _create(cls, events, **metadata: Any):
    """``patch_doc.create`` of Bokeh 3.9 with :class:`SyncedSerializer` (otherwise unchanged)."""
    header = cls.create_header()
    if not events:
        raise ValueError("PATCH-DOC message requires at least one event")
    docs = {event.document for event in events}
    if len(docs) != 1:
        raise ValueError("PATCH-DOC message configured with events for more than one document")
    [doc] = docs
    serializer = SyncedSerializer(doc.models)
    patch_json = _patch_doc_module.PatchJson(events=serializer.encode(events))
    doc.models.flush_synced(lambda model: not serializer.has_ref(model))
    msg = cls(header, metadata, patch_json)
    msg.add_buffers(*serializer.buffers)
    return msg


#: Bokeh releases whose internals :class:`SyncedSerializer` and :func:`_create` were read from
#: and tested on (3.9.2): ``[low, high)``. pyproject.toml bounds bokeh below ``high`` too.
TESTED_BOKEH = ((3, 9), (3, 10))

_fallback_logged = False


def _bokeh_version() -> tuple[int, int]:
    """``(major, minor)`` of the installed Bokeh (``"3.9.2"`` -> ``(3, 9)``)."""
    import bokeh

    major, minor = bokeh.__version__.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def unsupported_reason() -> str | None:
    """Why the speed-up cannot be installed on this Bokeh, or None when it can.

    Checks the version against :data:`TESTED_BOKEH`, then the internals it relies on, with
    their shape, on a throwaway document: ``DocumentModelManager._models`` (a dict id ->
    model holding an added model), ``_new_models`` (a set holding it until
    ``flush_synced()``), ``Serializer._references`` (a dict) with ``has_ref`` / ``get_ref``,
    and Bokeh's own ``patch_doc.create`` still built from ``Serializer``,
    ``synced_references``, ``PatchJson`` and ``flush_synced`` (the steps :func:`_create` copies).
    """
    version = _bokeh_version()
    low, high = TESTED_BOKEH
    if not low <= version < high:
        return (f"Bokeh {version[0]}.{version[1]} is outside the tested range "
                f"{low[0]}.{low[1]} to below {high[0]}.{high[1]}")
    try:
        from bokeh.document import Document
        from bokeh.models import Div

        original = original_patch_doc_create.__func__
        names = set(original.__code__.co_names)
        steps = {"Serializer", "synced_references", "PatchJson", "flush_synced", "add_buffers"}
        if not steps <= names or not hasattr(_patch_doc_module, "PatchJson"):
            return f"patch_doc.create no longer uses {sorted(steps - names)}"
        if not (callable(getattr(Serializer, "has_ref", None)) and callable(getattr(Serializer, "get_ref", None))
                and isinstance(getattr(Serializer(), "_references", None), dict)):
            return "Serializer has no has_ref/get_ref or no _references dict"
        doc, div = Document(), Div()
        doc.add_root(div)
        manager = doc.models
        models, new_models = getattr(manager, "_models", None), getattr(manager, "_new_models", None)
        if not isinstance(models, dict) or not isinstance(new_models, set):
            return "DocumentModelManager has no _models dict or no _new_models set"
        if models.get(div.id) is not div or div not in new_models:
            return "an added model is not in DocumentModelManager._models / _new_models"
        manager.flush_synced()
        if div in manager._new_models or div not in manager.synced_references:
            return "flush_synced() does not move a new model to the synced ones"
    except Exception as error:  # noqa: BLE001 - any surprise in the probe means: do not patch
        return f"probing Bokeh's internals failed ({type(error).__name__}: {error})"
    return None


def install_patch_doc_speedup() -> bool:
    """Build every ``PATCH-DOC`` message of this process with :class:`SyncedSerializer`.

    Idempotent. Returns whether the speed-up is installed. When this Bokeh is outside
    :data:`TESTED_BOKEH` or its internals differ (:func:`unsupported_reason`), nothing changes:
    Bokeh's own serializer stays, and one warning per process says why.
    """
    global _fallback_logged
    current = _patch_doc_module.patch_doc.__dict__["create"]
    if getattr(current, "__func__", None) is _create:
        return True
    reason = unsupported_reason()
    if reason is not None:
        if not _fallback_logged:
            _fallback_logged = True
            _LOG.warning("PATCH-DOC speed-up not installed, Bokeh's own serializer is used: %s", reason)
        return False
    _patch_doc_module.patch_doc.create = classmethod(_create)
    return True
