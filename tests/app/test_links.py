"""Shared links (app/state/links.py): every setting the Simulate tab shows is a URL key, each key
works alone (state and widget), and the URL the app writes back opens the same setup."""

from __future__ import annotations

import pytest

from nbody_explorer.state.links import FOLLOW_KEYS, RECORD_KEYS, apply_link, checked_value, url_values
from nbody_explorer.state.simulate import URL_PARAMETERS, SimulationState
from nbody_explorer.views.simulate import SimulateView

#: For each URL key: a value other than the default, and the sidebar widget that shows it.
#: Values keep compiles small (2-3 bodies except for ``n``, which the default figure-eight ignores).
LINK_VALUES = {
    "preset": ("kepler", "preset_select"),
    "n": ("64", "num_bodies_input"),
    "seed": ("7", "seed_input"),
    "e": ("0.9", "eccentricity_input"),
    "integrator": ("yoshida4", "integrator_select"),
    "forces": ("analytic", "force_select"),
    "precision": ("float32", "precision_select"),
    "dt": ("0.002", "dt_slider"),
    "softening": ("0.05", "softening_slider"),
    "steps": ("20", "steps_slider"),
    "fps": ("60", "speed_slider"),
    "trails": ("false", "trails_switch"),
    "trail": ("50", "trail_slider"),
    "view": ("xz", "projection_select"),
    "color": ("speed", "color_select"),
    "size": ("false", "size_switch"),
}


def test_every_setting_of_the_simulate_tab_has_a_url_key():
    settings = [name for name in SimulationState.param if name != "name"]
    assert sorted(settings) == sorted(URL_PARAMETERS)
    assert sorted(LINK_VALUES) == sorted(URL_PARAMETERS.values())


@pytest.mark.parametrize("key", list(LINK_VALUES))
def test_each_link_key_alone_sets_its_setting_and_widget_and_is_written_back(key):
    raw, widget_name = LINK_VALUES[key]
    name = {query: parameter for parameter, query in URL_PARAMETERS.items()}[key]
    view = SimulateView(sync_url=False)  # a link's values go through apply_settings, as served
    default = getattr(view.state, name)
    assert view.state.apply_settings({key: raw}) == []
    value = getattr(view.state, name)
    assert value != default and value == checked_value(SimulationState.param[name], raw)
    assert view.state.url_settings()[key] == raw  # written back as given
    shown = getattr(view, widget_name).value
    assert shown == value, f"?{key}={raw} alone: the {widget_name} shows {shown!r}, the setting is {value!r}"
    # The rewritten URL opens the same setup.
    again = SimulationState()
    assert again.apply_settings(view.state.url_settings()) == []
    assert again.url_settings() == view.state.url_settings()
    view.close()


def test_a_link_with_every_key_round_trips_through_the_rewrite():
    state = SimulationState()
    assert state.apply_settings({key: raw for key, (raw, _) in LINK_VALUES.items()}) == []
    written = state.url_settings()
    assert {key: written[key] for key in ("preset", "n", "fps", "view", "trails")} == {
        "preset": "kepler", "n": "64", "fps": "60", "view": "xz", "trails": "false"}
    again = SimulationState()
    assert again.apply_settings(written) == [] and again.url_settings() == written


def test_a_given_value_equal_to_the_current_one_wins_over_the_new_presets_default():
    # A lesson step (kepler, dt = 0.01) after a run at dt = 0.01 of another preset: the kepler
    # preset's default dt (0.001) replaced the given value, which equalled the current one.
    state = SimulationState()
    assert state.apply_settings({"preset": "pythagorean", "integrator": "ias15", "dt": "0.01"}) == []
    assert state.dt == 0.01
    assert state.apply_settings({"preset": "kepler", "integrator": "leapfrog", "dt": "0.01"}) == []
    assert state.preset == "kepler" and state.dt == 0.01


#: The tab's other settings (issue 21 item 5): the camera's follow switch and the Record panel.
#: key -> (a link value other than the default, the object's path on the view, parameter, widget).
EXTRA_LINK_VALUES = {
    "follow": ("true", "scene", "follow_com", "follow_switch", True),
    "distances": ("log", "scene", "distance_scale", "distance_select", "log"),
    "record_s": ("7", "recorder.settings", "seconds", "recorder.seconds", 7),
    "record_fps": ("24", "recorder.settings", "fps", "recorder.fps", 24),
    "record_format": (".gif", "recorder.settings", "suffix", "recorder.format", ".gif"),
    "record_size": ("1280x720", "recorder.settings", "size", "recorder.size", (1280, 720)),
}


def _path(view, dotted: str):
    for part in dotted.split("."):
        view = getattr(view, part)
    return view


def test_every_other_setting_of_the_tab_has_a_url_key():
    assert sorted(EXTRA_LINK_VALUES) == sorted([*FOLLOW_KEYS.values(), *RECORD_KEYS.values()])


@pytest.mark.parametrize("key", list(EXTRA_LINK_VALUES))
def test_each_camera_and_record_key_alone_sets_its_widget_and_is_written_back(key):
    raw, owner, name, widget, expected = EXTRA_LINK_VALUES[key]
    keys = FOLLOW_KEYS if key in FOLLOW_KEYS.values() else RECORD_KEYS
    view = SimulateView(sync_url=False)
    settings = _path(view, owner)
    assert apply_link(settings, keys, {key: raw}) == []
    assert getattr(settings, name) == expected
    assert _path(view, widget).value == expected  # the widget shows it
    assert url_values(settings, keys)[key] == raw  # and the rewritten URL keeps it
    view.close()


def test_a_refused_record_value_is_said_and_the_widget_and_link_keep_the_setting():
    view = SimulateView(sync_url=False)
    settings = view.recorder.settings
    assert apply_link(settings, RECORD_KEYS, {"record_s": "nan", "record_size": "99x99"}) == [
        "record_s=nan: Movie length (s) must be a whole number from 1 to 20; kept 3.",
        "record_size=99x99: Size (pixels) must be one of 480×360, 640×480, 1280×720; kept 640×480.",
    ]
    view.recorder.seconds.value = 99  # past the widget's end, as a tampered page sends
    assert settings.seconds == 3 and view.recorder.seconds.value == 3
    assert view.last_message == "Movie length (s) must be a whole number from 1 to 20; kept 3."
    assert url_values(settings, RECORD_KEYS)["record_s"] == "3"
    view.close()
