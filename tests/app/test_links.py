"""Shared links (app/state/links.py): every setting the Simulate tab shows is a URL key, each key
works alone (state and widget), and the URL the app writes back opens the same setup."""

from __future__ import annotations

import pytest

from app.state.links import checked_value
from app.state.simulate import URL_PARAMETERS, SimulationState
from app.views.simulate import SimulateView

#: For each URL key: a value other than the default, and the sidebar widget that shows it.
#: Values keep compiles small (2-3 bodies except for ``n``, which the default figure-eight ignores).
LINK_VALUES = {
    "preset": ("kepler", "preset_select"),
    "n": ("64", "num_bodies_input"),
    "seed": ("7", "seed_input"),
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
