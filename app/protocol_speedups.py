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
document when the encoder meets it. The message it produces is identical (see
``tests/app/test_protocol_speedups.py``).
"""

from __future__ import annotations

import importlib
from typing import Any

from bokeh.core.serialization import Ref, Serializer
from bokeh.model import Model

# The module (``bokeh.protocol.messages`` re-exports its class under the same name).
_patch_doc_module = importlib.import_module("bokeh.protocol.messages.patch_doc")

__all__ = ["SyncedSerializer", "install_patch_doc_speedup", "original_patch_doc_create"]


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
        return id(obj) in self._references or self._synced(obj)

    def get_ref(self, obj: Any) -> Ref | None:
        ref = self._references.get(id(obj))
        if ref is None and self._synced(obj):
            ref = self._references[id(obj)] = obj.ref
        return ref


#: Bokeh's own ``patch_doc.create`` (kept for tests and to undo the speed-up).
original_patch_doc_create = _patch_doc_module.patch_doc.create


def _create(cls, events, **metadata: Any):
    """``patch_doc.create`` of Bokeh 3.x with :class:`SyncedSerializer` (otherwise unchanged)."""
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


def _supported() -> bool:
    """The Bokeh internals the speed-up relies on are there (else Bokeh's path stays)."""
    from bokeh.document.models import DocumentModelManager

    names = DocumentModelManager.__init__.__code__.co_names
    return (
        hasattr(Serializer, "get_ref") and hasattr(Serializer, "has_ref")
        and hasattr(_patch_doc_module, "PatchJson") and hasattr(DocumentModelManager, "flush_synced")
        and "_models" in names and "_new_models" in names
    )


def install_patch_doc_speedup() -> bool:
    """Build every ``PATCH-DOC`` message of this process with :class:`SyncedSerializer`.

    Idempotent. Returns whether the speed-up is installed (False when this Bokeh's internals
    differ from the 3.x ones it was written against: then nothing changes).
    """
    current = _patch_doc_module.patch_doc.__dict__["create"]
    if getattr(current, "__func__", None) is _create:
        return True
    if not _supported():
        return False
    _patch_doc_module.patch_doc.create = classmethod(_create)
    return True
