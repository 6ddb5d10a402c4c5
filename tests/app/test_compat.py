"""app/compat: the installed Bokeh, Panel and param lie in the tested ranges, pyproject.toml says
the same ranges, every private use is recorded, and each guard takes its public fallback outside
those ranges."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from bokeh.document import Document
from packaging.requirements import Requirement

import nbody_explorer.compat as compat
from nbody_explorer.compat import TESTED_VERSIONS, PrivateUse, installed_version, private_uses, untested_versions, version_tested

REPO = Path(__file__).resolve().parents[2]


def test_the_installed_versions_are_the_tested_ones():
    # Fails when an upgrade moves Bokeh, Panel or param outside the range the app was tested on:
    # test the app on the new version, then move TESTED_VERSIONS and pyproject.toml together.
    assert untested_versions() == {}, f"installed outside TESTED_VERSIONS {TESTED_VERSIONS}: {untested_versions()}"
    for library in TESTED_VERSIONS:
        assert version_tested(library), (library, installed_version(library))


@pytest.mark.parametrize(("installed", "tested"), [
    ("3.9", True), ("3.9.0", True), ("3.9.2", True), ("3.9.0rc1", True), ("3.9.0.dev3", True),
    ("3.9.2.post1", True), ("3.9.2+local.1", True), ("3.9.99", True),
    ("3.8.9", False), ("3.8.99rc1", False), ("3.10", False), ("3.10.0", False), ("3.10.0.dev1", False),
    ("3.10.0rc1", False), ("4.0", False), ("2.9", False), ("not a version", False), ("", False),
])
def test_version_tested_at_the_edges_of_the_range(installed, tested):
    assert version_tested("bokeh", installed) is tested


def test_version_tested_for_a_missing_library_or_an_unknown_name(monkeypatch):
    monkeypatch.setattr(compat, "installed_version", lambda library: None)
    assert not version_tested("panel")
    assert untested_versions() == {library: "None" for library in TESTED_VERSIONS}
    with pytest.raises(ValueError, match="no tested range for 'numpy'"):
        version_tested("numpy", "1.26")


def test_pyproject_bounds_are_the_tested_versions():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = {Requirement(text).name: Requirement(text) for text in project["dependencies"]}
    for library, (low, high) in TESTED_VERSIONS.items():
        specifiers = {(s.operator, s.version) for s in requirements[library].specifier}
        assert specifiers == {(">=", low), ("<", high)}, (library, requirements[library])


def test_every_compat_module_lists_its_private_uses_and_is_named_in_modules():
    names = {info.name for info in pkgutil.iter_modules(compat.__path__)}
    assert names <= set(compat.MODULES), f"modules missing from nbody_explorer.compat.MODULES: {names - set(compat.MODULES)}"
    uses = private_uses()
    assert set(uses) == names
    for module, records in uses.items():
        assert records, f"nbody_explorer.compat.{module} has no PRIVATE_USES"
        for record in records:
            assert isinstance(record, PrivateUse)
            assert record.library in TESTED_VERSIONS, (module, record)
            assert record.name and record.buys and record.fallback, (module, record)


# ------------------------------------------------------------------ fallbacks


def test_the_query_guard_is_not_installed_outside_the_tested_panel(monkeypatch, caplog):
    import panel.io.location as location

    import nbody_explorer.compat.query as query

    # Panel's own parse_query (an earlier test may have installed the guard), restored afterwards.
    original = getattr(location.parse_query, "original", location.parse_query)
    monkeypatch.setattr(location, "parse_query", original)
    monkeypatch.setattr(query, "version_tested", lambda library: False)
    monkeypatch.setattr(query, "_warned", False)
    assert not query.install_query_guard()
    assert not query.install_query_guard()
    assert location.parse_query is original
    assert [r.getMessage() for r in caplog.records if r.name == "nbody_explorer.compat.query"] == [
        "query guard not installed on this Panel: a link value of 4301+ digits can blank the page"]
    monkeypatch.setattr(query, "version_tested", lambda library: True)
    assert query.install_query_guard() and location.parse_query is not original
    assert location.parse_query("?utm_id=" + "7" * 4301 + "&n=5") == {"n": 5}


def _document_ready_callbacks(document: Document) -> list:
    return [callback for callback in document.callbacks.js_event_callbacks.get("document_ready", [])]


def test_the_upload_guard_is_installed_only_on_the_tested_bokeh(monkeypatch):
    import nbody_explorer.compat.upload as upload

    document = Document()
    assert upload.install_upload_guard(document, 1000)
    [callback] = _document_ready_callbacks(document)
    assert callback.args == {"limit": 1000} and "readAsDataURL" in callback.code
    monkeypatch.setattr(upload, "version_tested", lambda library: False)
    other = Document()
    assert not upload.install_upload_guard(other, 1000)
    assert _document_ready_callbacks(other) == []


def test_accessibility_wraps_bokehjs_views_only_on_the_tested_bokeh(monkeypatch):
    import nbody_explorer.compat.accessibility as accessibility

    document = Document()
    assert accessibility.install_accessibility(document)
    [callback] = _document_ready_callbacks(document)
    assert callback.args == {"wrap_views": True}
    monkeypatch.setattr(accessibility, "version_tested", lambda library: False)
    other = Document()
    assert not accessibility.install_accessibility(other)
    [callback] = _document_ready_callbacks(other)
    assert callback.args == {"wrap_views": False}
    # The landmark part runs before the script stops for untested versions.
    code = callback.code
    assert code.index('setAttribute("role", "main")') < code.index("if (!wrap_views) return;")


def test_the_orbit_scene_takes_the_short_path_on_the_tested_versions():
    from panel.custom import JSComponent

    from nbody_explorer.compat.param_sync import SHORT_PATH
    from nbody_explorer.components.orbit_scene import OrbitScene

    assert SHORT_PATH
    assert OrbitScene._process_events is not JSComponent._process_events
    assert OrbitScene._busy__ignore == list(OrbitScene.idle_reports)
    assert OrbitScene._priority_changes == list(OrbitScene.urgent_reports)


def test_browser_reports_fall_back_to_panels_path_outside_the_tested_versions():
    # In a fresh interpreter: param_sync decides once, at import, from version_tested.
    code = (
        "import nbody_explorer.compat as compat\n"
        "compat.version_tested = lambda library, installed=None: False\n"
        "import param\n"
        "from panel.custom import JSComponent\n"
        "from nbody_explorer.compat.param_sync import SHORT_PATH, BrowserReports\n"
        "class Scene(BrowserReports, JSComponent):\n"
        "    drawn = param.List([-1, -1])\n"
        "    direct_reports = frozenset({'drawn'})\n"
        "    idle_reports = ('drawn',)\n"
        "    urgent_reports = ('drawn',)\n"
        "    _esm = 'export function render() {}'\n"
        "scene = Scene()\n"
        "scene._process_events({'drawn': [1, 2]})\n"
        "print(SHORT_PATH, Scene._process_events is JSComponent._process_events,\n"
        "      Scene._update_properties is JSComponent._update_properties,\n"
        "      Scene._priority_changes == [], Scene._busy__ignore == [], scene.drawn)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[-2] == "False True True True True [1, 2]"



def test_a_discrete_slider_speaks_its_label_and_its_value_in_units_after_every_change():
    import panel as pn

    from nbody_explorer.compat.accessibility import speak_discrete_slider

    unit = {"words": "time units"}
    slider = pn.widgets.DiscreteSlider(name="dt (time step, time units)", options=[0.001, 0.002, 0.005],
                                       value=0.002, formatter="%.3g")
    speak_discrete_slider(slider, unit=lambda: unit["words"])
    args = slider._slider.format.args
    assert args == {"texts": ["0.001", "0.002", "0.005"], "label": "dt (time step, time units)", "unit": "time units"}
    # New options build a new index slider: it gets the formatter too, with the new texts.
    slider.options = [0.01, 0.02]
    assert slider._slider.format.args["texts"] == ["0.01", "0.02"]
    unit["words"] = "yr"
    slider.name = "dt (time step, yr)"
    assert slider._slider.format.args["label"] == "dt (time step, yr)" and slider._slider.format.args["unit"] == "yr"
