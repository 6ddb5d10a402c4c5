"""The one validation boundary (issue 26, item 5), fuzzed without a server.

Every URL key of the Simulate tab, every widget model of the Simulate tab (as a tampered page
would send to it) and the Predict fields get NaN, ±inf, -1, a 400-digit number, a wrong type and
an index out of range: each must be refused in one sentence in the user's words (the label
they see, what is allowed, what is kept), with no class, parameter path or traceback in it,
and the previous value must stay (in the state, in the widget, in the URL the app writes).
The served path (Bokeh's replies, the page's message box) is tests/ui/test_fuzz_ui.py.
"""

from __future__ import annotations

import math
import re

import param
import pytest
from bokeh.document import Document
from bokeh.models import Widget

from nbody_explorer.reliability import _describe
from nbody_explorer.runtime.messages import public_text
from nbody_explorer.state.links import SETTING_LABELS, URL_PARAMETERS
from nbody_explorer.state.simulate import SimulationState
from nbody_explorer.state.validation import Refused, checked_value
from nbody_explorer.views.page_values import widget_refusal
from nbody_explorer.views.simulate import SimulateView

#: What a tampered link or page sends (as text for links; as values for widgets).
HOSTILE_TEXT = ["nan", "NaN", "inf", "-inf", "-1", "1" + "0" * 400, "9" * 5000, "abc", "", "1.5e", "0x10",
                "<script>alert(1)</script>", "None", "[]"]
HOSTILE_VALUES = ["abc", math.nan, math.inf, -math.inf, -1, 10**400, 10**9, 1.5, [1], {"a": 1}, ""]

#: Text that names internals: a class or exception name, a parameter's owner, a path, a traceback.
INTERNAL = re.compile(r"Traceback|site-packages|\.py\b|<class|\bparameter '|[A-Z][a-z]+[A-Z]\w*\.\w+|"
                      r"\b\w*(Error|Exception)\b|SimulationState|Parameterized|IntSlider|Spinner|CustomSelect")


def assert_in_words(text: str, label: str) -> None:
    assert text.startswith(label), text
    assert " must be " in text and text.endswith("."), text
    assert not INTERNAL.search(text), text


# ------------------------------------------------------------------ URL keys
@pytest.mark.parametrize("name", list(URL_PARAMETERS))
def test_every_url_key_refuses_every_hostile_value_in_words_and_keeps_its_setting(name):
    key = URL_PARAMETERS[name]
    state = SimulationState()
    before, written = getattr(state, name), state.url_settings()
    for raw in HOSTILE_TEXT:
        if name == "seed" and raw in ("0x10",):
            continue
        rejected = state.apply_settings({key: raw})
        assert len(rejected) == 1, (key, raw, rejected)
        prefix = f"{key}={raw[:40]}: "
        assert rejected[0].startswith(prefix), rejected
        assert_in_words(rejected[0][len(prefix):], SETTING_LABELS[name])
        assert getattr(state, name) == before
        assert state.url_settings() == written  # the rewritten link carries the kept value


def test_a_refusal_states_the_range_the_user_may_choose_from():
    state = SimulationState(preset="plummer", num_bodies=64)
    assert state.apply_settings({"n": "-1"}) == ["n=-1: Bodies N must be a whole number from 2 to "
                                                 f"{SimulationState.param.num_bodies.bounds[1]}; kept 64."]
    assert state.apply_settings({"trails": "maybe"}) == ["trails=maybe: Trails must be on or off (true or false); "
                                                         "kept on."]
    assert state.apply_settings({"view": "top"}) == ["view=top: View must be one of 3d, xy, xz, yz, quad; kept 3d."]
    solar = SimulationState(preset="solar_system")
    assert "must be a number from 1e-07 to 1 yr" in solar.apply_settings({"dt": "nan"})[0]


def test_checked_value_gives_the_same_words_for_any_parameter():
    class Settings(param.Parameterized):
        count = param.Integer(3, bounds=(1, 9), label="Count")
        ratio = param.Number(0.5, bounds=(0.0, None), inclusive_bounds=(False, True))

    settings = Settings()
    assert checked_value(settings.param.count, "7") == 7
    for raw in (math.nan, "inf", -1, 10**400, "abc", 2.5, True, None):
        with pytest.raises(Refused, match=r"^Count must be a whole number from 1 to 9; kept 3\.$"):
            checked_value(settings.param.count, raw, kept=settings.count)
    with pytest.raises(Refused, match=r"^Ratio must be a number greater than 0\.$"):
        checked_value(settings.param.ratio, "0")


# ------------------------------------------------------------------ widgets, as a tampered page sends
@pytest.fixture(scope="module")
def simulate_models():
    view = SimulateView(sync_url=False)
    document = Document()
    document.add_root(view.__panel__().get_root(document))
    yield view, document
    view.close()


def _value_attr(model) -> str | None:
    properties = model.properties()
    if "value" in properties and type(model).__name__ != "FileInput":
        return "value"
    return "active" if "active" in properties else None


def test_every_widget_of_the_simulate_tab_refuses_hostile_values_in_its_own_words(simulate_models):
    _, document = simulate_models
    checked = 0
    for model in document.models:
        attr = _value_attr(model) if isinstance(model, Widget) else None
        if attr is None:
            continue
        refusals = [widget_refusal(model, attr, value) for value in HOSTILE_VALUES]
        refusals = [text for text in refusals if text is not None]
        # Every widget refuses the wrong types and non-finite numbers (a slider's -1 and 10**9 too).
        assert len(refusals) >= 8, (model, refusals)
        for text in refusals:
            assert " must be " in text and "; kept " in text and not INTERNAL.search(text), text
            assert not text.startswith(("This control", "This slider")), text  # the label the user sees
        checked += 1
    assert checked >= 20  # every control of the sidebar, predict and record panels


def test_a_discrete_slider_refuses_positions_past_its_options_with_its_label_and_value(simulate_models):
    view, document = simulate_models
    sliders = [m for m in document.models if type(m).__name__ == "Slider" and not m.title]
    texts = {widget_refusal(slider, "value", index) for slider in sliders for index in (-1, 99)}
    assert texts == {"dt (time step, time units) must be one of its 16 positions; kept 0.001.",
                     "Softening ε (length units) must be one of its 14 positions; kept 0."}
    assert all(widget_refusal(slider, "value", slider.end) is None for slider in sliders)


@pytest.mark.parametrize(("widget", "name", "value"), [
    ("steps_slider", "steps_per_frame", 10**6), ("steps_slider", "steps_per_frame", -1),
    ("speed_slider", "frame_rate", 0), ("trail_slider", "trail_length", 10**9),
    ("num_bodies_input", "num_bodies", 10**7), ("seed_input", "seed", -5),
    ("integrator_select", "integrator", "<img src=x>"), ("projection_select", "projection", "top"),
])
def test_a_value_past_the_page_reaches_the_state_only_through_the_boundary(widget, name, value):
    # Without the page guard (a notebook, an untested Bokeh) the widget's link checks it again.
    view = SimulateView(sync_url=False)
    view.preset_select.value = "plummer"
    before = getattr(view.state, name)
    getattr(view, widget).value = value
    assert getattr(view.state, name) == before
    assert getattr(view, widget).value == before  # the widget shows the kept value again
    assert_in_words(view.last_message, SETTING_LABELS[name] if name != "projection" else "View")
    view.close()


def test_predict_fields_refuse_nan_negative_and_out_of_range_and_show_the_kept_value():
    view = SimulateView(sync_url=False)
    predictor = view.predictor
    for value in (math.nan, -1.0, 0.0, math.inf):
        predictor.horizon_input.value = value
        assert predictor.game.horizon == 1.0 and predictor.horizon_input.value == 1.0
        assert_in_words(view.last_message, "After Δt (time units)")
    predictor.body_input.value = 7  # the figure-eight has bodies 0, 1 and 2
    assert predictor.game.body == 0 and predictor.body_input.value == 0
    assert view.last_message == "Body must be a whole number from 0 to 2; kept 0."
    view.close()


# ------------------------------------------------------------------ messages
@pytest.mark.parametrize("error", [
    ValueError("Integer parameter 'SimulationState.steps_per_frame' must be at most 200, not 1000."),
    TypeError("Integer parameter 'IntSlider.value' must be an integer, not <class 'float'>."),
    IndexError("list index out of range"),
    ValueError('File "/usr/lib/python3/site-packages/x.py", line 3'),
    RuntimeError("boom"), KeyError("p1234"), OverflowError("cannot convert float infinity to integer"),
])
def test_a_callback_error_reaches_the_page_without_class_names_or_paths(error):
    text = _describe(error)
    assert not INTERNAL.search(text), text
    assert type(error).__name__ not in text


def test_public_text_passes_refusals_and_words_through():
    assert public_text(Refused("Seed must be a whole number from 0 to 9; kept 0."), fallback="x") == (
        "Seed must be a whole number from 0 to 9; kept 0.")
    assert public_text(ValueError("no initial conditions have been uploaded yet"), fallback="x") == (
        "no initial conditions have been uploaded yet")
    assert public_text(ValueError("Number parameter 'SimulationState.dt' must be at least 1e-07"), fallback="x") == "x"
