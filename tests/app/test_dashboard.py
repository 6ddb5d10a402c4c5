"""The dashboard shell: the directory app builds, the tab registry loads every tab."""

from pathlib import Path
from unittest import mock

import panel as pn
import pytest
from bokeh.application.handlers.directory import DirectoryHandler
from bokeh.document import Document

from app import dashboard

APP_DIR = Path(__file__).resolve().parents[2] / "app"


def test_directory_app_builds_a_document(tmp_path, monkeypatch):
    # What `panel serve app` runs per session, without a server: main.py must not fail.
    monkeypatch.setenv("NBODY_JAX_CACHE_DIR", str(tmp_path / "jax-cache"))
    handler = DirectoryHandler(filename=str(APP_DIR))
    doc = Document()
    session_context = mock.MagicMock(request=mock.MagicMock(arguments={}, headers={}, cookies={}))
    doc._session_context = lambda: session_context
    with pn.io.server.set_curdoc(doc):
        handler.modify_document(doc)
    assert not handler.failed, handler.error_detail
    assert doc.roots


def test_every_registered_tab_builds():
    tabs = dashboard.build_tabs()
    assert len(tabs) == max(1, len(dashboard.TABS))
    for title, _ in dashboard.TABS:
        assert title in tabs._names
    errors = [obj for obj in tabs.objects if str(getattr(obj, "name", "")).startswith("tab-error-")]
    assert errors == []


def test_a_broken_tab_shows_its_error_and_the_rest_still_build():
    tabs = dashboard.build_tabs([("Broken", "app.views.does_not_exist:View"), ("Fine", "panel:Column")])
    assert tabs._names == ["Broken", "Fine"]
    assert isinstance(tabs.objects[0], pn.pane.Alert)
    assert "does_not_exist" in tabs.objects[0].object
    assert isinstance(tabs.objects[1], pn.Column)


def test_bad_tab_spec_is_a_clear_error():
    with pytest.raises(ValueError, match="module:Class"):
        dashboard.load_view_class("app.views.simulate")
