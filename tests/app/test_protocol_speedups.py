"""The PATCH-DOC speed-up (app/protocol_speedups.py) builds the same messages as Bokeh."""

from __future__ import annotations

import inspect
import logging

import bokeh
import bokeh.document.events as document_events
import numpy as np
import pytest
from bokeh.document import Document
from bokeh.document.events import MessageSentEvent
from bokeh.document.models import DocumentModelManager
from bokeh.models import Column, ColumnDataSource, Div
from bokeh.protocol.messages.patch_doc import patch_doc

import app.protocol_speedups as speedups
from app.protocol_speedups import SyncedSerializer, _create, install_patch_doc_speedup, original_patch_doc_create


def _document():
    source = ColumnDataSource(data={"x": np.arange(4.0)})
    layout = Column(children=[Div(text="a"), Div(text="b")], name="layout")
    doc = Document()
    doc.add_root(layout)
    doc.add_root(source)
    doc.models.flush_synced()  # as after the page loaded: every model is in the browser
    return doc, layout, source


def _held_events(doc, change):
    doc.hold("collect")
    change()
    events = list(doc.callbacks._held_events)
    doc.callbacks._held_events = []
    doc.callbacks._hold = None
    return events


def _normalised(msg) -> tuple[str, list[bytes]]:
    """Content with buffer ids replaced by their order, and the buffers' bytes."""
    text = msg.content_json
    for k, buffer in enumerate(msg.buffers):
        text = text.replace(str(buffer.id), f"buffer-{k}")
    return text, [bytes(buffer.data) for buffer in msg.buffers]


def _both(doc, events):
    """(Bokeh's message, the speed-up's message) for the same events and synced state."""
    new_models = set(doc.models._new_models)
    ours = _create(patch_doc, events)
    ours_left = set(doc.models._new_models)
    doc.models._new_models = new_models
    theirs = original_patch_doc_create.__func__(patch_doc, events)
    assert set(doc.models._new_models) == ours_left  # the same models count as sent afterwards
    return theirs, ours


def test_a_change_to_a_synced_model_refers_to_it_by_id():
    doc, layout, _ = _document()
    div = layout.children[0]
    events = _held_events(doc, lambda: setattr(div, "text", "changed"))
    theirs, ours = _both(doc, events)
    assert _normalised(ours) == _normalised(theirs)
    assert ours.content["events"][0]["model"] == {"id": div.id}


def test_a_new_model_is_sent_in_full_and_then_counts_as_synced():
    doc, layout, _ = _document()
    events = _held_events(doc, lambda: layout.children.append(Div(text="new")))
    theirs, ours = _both(doc, events)
    assert _normalised(ours) == _normalised(theirs)
    assert "\"new\"" in ours.content_json  # the full model, not a bare reference
    assert not doc.models._new_models


def test_binary_messages_and_streams_travel_as_the_same_buffers():
    doc, _, source = _document()
    payload = np.arange(12, dtype="<f4").tobytes()

    def change():
        doc.callbacks.trigger_on_change(MessageSentEvent(doc, "custom", payload))
        source.stream({"x": np.array([4.0, 5.0])})

    events = _held_events(doc, change)
    theirs, ours = _both(doc, events)
    assert _normalised(ours) == _normalised(theirs)
    assert payload in _normalised(ours)[1]


def test_the_serializer_looks_up_only_the_models_it_meets():
    doc, layout, _ = _document()
    serializer = SyncedSerializer(doc.models)
    assert serializer.has_ref(layout) and serializer.get_ref(layout) == {"id": layout.id}
    assert not serializer.has_ref(Div(text="not in the document"))
    assert not serializer.has_ref("text") and serializer.get_ref(3.0) is None
    assert len(serializer._references) == 1  # only the model it was asked about


def test_install_is_idempotent():
    assert install_patch_doc_speedup()
    assert install_patch_doc_speedup()
    assert patch_doc.__dict__["create"].__func__ is _create


def _root_added(doc, layout, source):
    doc.add_root(Div(text="another root"))


#: One change per kind of document event a PATCH-DOC message carries (checked below to be every
#: concrete DocumentPatchedEvent of this Bokeh).
CHANGES = {
    "ModelChangedEvent": lambda doc, layout, source: setattr(layout.children[1], "text", "changed"),
    "ColumnDataChangedEvent": lambda doc, layout, source: setattr(source, "data", {"x": np.arange(3.0)}),
    "ColumnsStreamedEvent": lambda doc, layout, source: source.stream({"x": np.array([7.0])}),
    "ColumnsPatchedEvent": lambda doc, layout, source: source.patch({"x": [(0, 9.0)]}),
    "TitleChangedEvent": lambda doc, layout, source: setattr(doc, "title", "a new title"),
    "RootAddedEvent": _root_added,
    "RootRemovedEvent": lambda doc, layout, source: doc.remove_root(source),
    "MessageSentEvent": lambda doc, layout, source: doc.callbacks.trigger_on_change(
        MessageSentEvent(doc, "custom", np.arange(3, dtype="<f8").tobytes())),
}


def test_every_kind_of_document_event_is_covered():
    kinds = {name for name, cls in inspect.getmembers(document_events, inspect.isclass)
             if issubclass(cls, document_events.DocumentPatchedEvent) and cls is not document_events.DocumentPatchedEvent}
    assert kinds == set(CHANGES)


@pytest.mark.parametrize("kind", sorted(CHANGES))
def test_each_kind_of_event_gives_bokehs_message(kind):
    doc, layout, source = _document()
    events = _held_events(doc, lambda: CHANGES[kind](doc, layout, source))
    assert kind in {type(event).__name__ for event in events}
    theirs, ours = _both(doc, events)
    assert _normalised(ours) == _normalised(theirs)


@pytest.fixture
def bokehs_create(monkeypatch):
    """Bokeh's own create in place (undone afterwards) and the one-warning flag cleared."""
    monkeypatch.setattr(patch_doc, "create", original_patch_doc_create)
    monkeypatch.setattr(speedups, "_fallback_logged", False)


def _install_falls_back(caplog) -> str:
    with caplog.at_level(logging.WARNING, logger="app.protocol_speedups"):
        assert not install_patch_doc_speedup()
        assert not install_patch_doc_speedup()
    assert patch_doc.__dict__["create"] is original_patch_doc_create  # Bokeh's serializer stays
    warnings = [r for r in caplog.records if r.name == "app.protocol_speedups"]
    assert len(warnings) == 1  # one warning per process, not one per session
    return warnings[0].getMessage()


def test_install_falls_back_outside_the_tested_bokeh_versions(bokehs_create, monkeypatch, caplog):
    monkeypatch.setattr(bokeh, "__version__", "3.10.0")
    assert "outside the tested range" in _install_falls_back(caplog)


def test_install_falls_back_when_the_document_internals_changed(bokehs_create, monkeypatch, caplog):
    init = DocumentModelManager.__init__

    def renamed(self, document):  # as if a release renamed _new_models
        init(self, document)
        self._pending_models = self.__dict__.pop("_new_models")

    monkeypatch.setattr(DocumentModelManager, "__init__", renamed)
    assert "_new_models" in _install_falls_back(caplog)


def test_install_falls_back_when_bokehs_create_changed(bokehs_create, monkeypatch, caplog):
    def create(cls, events, **metadata):  # a create built some other way
        return None

    monkeypatch.setattr(speedups, "original_patch_doc_create", classmethod(create))
    assert "patch_doc.create no longer uses" in _install_falls_back(caplog)


def test_the_installed_bokeh_is_supported():
    assert speedups.unsupported_reason() is None
