"""Fixtures of the app tests: a served session without a server."""

from __future__ import annotations

from types import SimpleNamespace

import panel as pn
import pytest
from bokeh.document import Document
from bokeh.io.doc import curdoc as bokeh_curdoc
from bokeh.io.doc import set_curdoc as bokeh_set_curdoc


@pytest.fixture
def served_document(monkeypatch):
    """A Bokeh ``Document`` that :class:`~app.views.session.SessionRunner` takes for a served
    session (build the view under ``panel.io.state.set_curdoc(doc)``). Its session callbacks
    wait in ``doc.session_callbacks`` until a test runs them. Bokeh's add_next_tick_callback
    on it replaces Bokeh's global current document: the original is put back afterwards, so
    later tests are not 'served'."""
    original = bokeh_curdoc()
    doc = Document()
    context = SimpleNamespace(_session=None, id="test-session", request=SimpleNamespace(arguments={}))
    doc._session_context = lambda: context  # Bokeh keeps a weak reference: a callable
    monkeypatch.setattr(pn.state, "on_session_destroyed", lambda callback: None)
    yield doc
    bokeh_set_curdoc(original)


def mark_served(view) -> None:
    """Make ``view`` (and its session runner) act as served, on a document that drops
    next-tick callbacks: for tests that only watch the pool work a served view starts."""

    class DroppingDocument:
        callbacks = SimpleNamespace(_change_callbacks={})

        def add_next_tick_callback(self, fn):
            pass

    view.runner.served, view.runner.doc, view._served = True, DroppingDocument(), True
