"""Fixtures of the app tests: a served session without a server."""

from __future__ import annotations

import html
import re
from types import SimpleNamespace

import panel as pn
import pytest
from bokeh.document import Document
from bokeh.io.doc import curdoc as bokeh_curdoc
from bokeh.io.doc import set_curdoc as bokeh_set_curdoc


@pytest.fixture
def served_document(monkeypatch):
    """A Bokeh ``Document`` that :class:`~nbody_explorer.runtime.session.SessionRunner` takes for a served
    session (build the view under ``panel.io.state.set_curdoc(doc)``). Its session callbacks
    wait in ``doc.session_callbacks`` until a test runs them. Bokeh's add_next_tick_callback
    on it replaces Bokeh's global current document: the original is put back afterwards, so
    later tests are not 'served'."""
    original = bokeh_curdoc()
    doc = Document()
    context = SimpleNamespace(session=None, id="test-session", request=SimpleNamespace(arguments={}))
    doc._session_context = lambda: context  # Bokeh keeps a weak reference: a callable
    monkeypatch.setattr(pn.state, "on_session_destroyed", lambda callback: None)
    yield doc
    bokeh_set_curdoc(original)


def mark_served(view) -> None:
    """Make ``view`` (and its session runner) act as served, on a document that drops
    next-tick callbacks: for tests that only watch the pool work a served view starts."""

    class DroppingDocument:
        session_context = SimpleNamespace(session=None)  # a live (not destroyed) document

        def add_next_tick_callback(self, fn):
            pass

    view.runner.served, view.runner.doc = True, DroppingDocument()


def shown_text(markdown: str) -> str:
    """What a reader sees in a Markdown pane showing ``markdown`` (rendered as Panel renders
    it), after checking that the rendering holds no markup but paragraphs: no link, image,
    emphasis or script made from the user text a message quotes."""
    rendered = html.unescape(pn.pane.Markdown(markdown)._transform_object(markdown)["object"])  # Panel escapes once
    tags = re.findall(r"<(?!/?p>)[a-zA-Z/][^>]*>", rendered)
    assert tags == [], f"{markdown!r} renders markup: {tags}"
    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip()
