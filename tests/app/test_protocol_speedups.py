"""The PATCH-DOC speed-up (app/protocol_speedups.py) builds the same messages as Bokeh."""

from __future__ import annotations


import numpy as np
from bokeh.document import Document
from bokeh.document.events import MessageSentEvent
from bokeh.models import Column, ColumnDataSource, Div
from bokeh.protocol.messages.patch_doc import patch_doc

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
