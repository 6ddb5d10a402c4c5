"""The dashboard shell: the directory app builds, the tab registry loads every tab."""

from pathlib import Path
from unittest import mock

import panel as pn
import pytest
from bokeh.application.handlers.directory import DirectoryHandler
from bokeh.document import Document

from nbody_explorer import dashboard

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
    tabs = dashboard.build_tabs(lazy=False)
    assert len(tabs) == max(1, len(dashboard.TABS))
    for title, _ in dashboard.TABS:
        assert title in tabs._names
    errors = [obj for obj in tabs.objects if str(getattr(obj, "name", "")).startswith("tab-error-")]
    assert errors == []


def test_a_broken_tab_shows_its_error_and_the_rest_still_build():
    tabs = dashboard.build_tabs([("Broken", "nbody_explorer.views.does_not_exist:View"), ("Fine", "panel:Column")])
    assert tabs._names == ["Broken", "Fine"]
    assert isinstance(tabs.objects[0], pn.pane.Alert)
    assert "does_not_exist" in tabs.objects[0].object
    assert isinstance(tabs.objects[1], pn.Column)


def test_bad_tab_spec_is_a_clear_error():
    with pytest.raises(ValueError, match="module:Class"):
        dashboard.load_view_class("nbody_explorer.views.simulate")


def test_tabs_are_built_when_first_opened():
    # Issue 16 point 5 / issue 11: a page (or a bare GET /app) builds one view, not four.
    specs = [("One", "panel:Column"), ("Two", "panel:Row"), ("Three", "panel:Spacer")]
    tabs = dashboard.build_tabs(specs)
    assert isinstance(tabs.objects[0], pn.Column) and not tabs.objects[0].objects
    for index, title in ((1, "Two"), (2, "Three")):
        (placeholder,) = tabs.objects[index].objects
        assert placeholder.name == f"tab-placeholder-{title}"
    tabs.active = 2
    assert isinstance(tabs.objects[2].objects[0], pn.Spacer)
    assert tabs.objects[1].objects[0].name == "tab-placeholder-Two"  # still not built
    tabs.active = 1
    view = tabs.objects[1].objects[0]
    assert isinstance(view, pn.Row)
    tabs.active = 0
    tabs.active = 1
    assert tabs.objects[1].objects[0] is view  # built once, kept


def test_session_registry_caps_and_trims_after_the_last_session():
    from nbody_explorer.runtime.admission import SessionRegistry

    registry = SessionRegistry(trim_delay=0.0)
    assert registry.admit("a", 2) and registry.admit("b", 2)
    assert registry.admit("a", 2)  # the same session again is not a new one
    assert not registry.admit("c", 2)
    assert registry.live == 2
    registry.release("a")
    assert registry.admit("c", 2)
    registry.release("b")
    registry.release("c")
    timer = registry._timer
    timer.join(timeout=30)
    assert registry.live == 0 and registry.trims == 1


def test_releasing_memory_after_the_last_session_empties_the_compile_caches():
    from nbody_explorer.runtime.admission import release_memory
    from nbody_core.ensembles import EnsembleSpec, run_ensemble, runner

    run_ensemble(EnsembleSpec(system="kepler", num_members=2, num_steps=4))
    assert runner._batched.cache_info().currsize > 0
    release_memory(clear_jax_caches=True)
    assert runner._batched.cache_info().currsize == 0


def test_query_guard_drops_values_int_cannot_parse():
    import panel.io.location as location

    from nbody_explorer.compat.query import install_query_guard, oversized_query_values

    huge = "9" * 4301
    assert oversized_query_values(f"?utm_id={huge}&n=64") == ["utm_id"]
    assert oversized_query_values([huge.encode()]) == ["value"]
    assert install_query_guard()
    assert install_query_guard()  # idempotent
    assert location.parse_query(f"?utm_id={huge}&n=64&preset=plummer") == {"n": 64, "preset": "plummer"}


class _RecordsCurdoc(pn.Column):
    """A stand-in view: remembers the document current while it was built (as a runner does)."""

    def __init__(self, **params):
        super().__init__(**params)
        self.built_in = pn.state.curdoc


def test_a_tab_opened_later_is_built_with_its_own_sessions_document_current(monkeypatch):
    # A view's runner captures pn.state.curdoc; a tab opened in a widget callback where another
    # (destroyed) session's document was left current sent its jobs' outcomes there (the Forces
    # tab stayed on "Computing the forces ..." in CI).
    monkeypatch.setattr(dashboard, "load_view_class", lambda spec: _RecordsCurdoc)
    own, other = Document(), Document()
    with pn.io.server.set_curdoc(own):
        tabs = dashboard.build_tabs([("First", "x:y"), ("Later", "x:y")])
    with pn.io.server.set_curdoc(other):  # what the thread has current when the click arrives
        tabs.active = 1
    (view,) = tabs.objects[1].objects
    assert view.built_in is own
