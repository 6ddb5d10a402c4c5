"""The page's widgets at the validation boundary: what each Bokeh widget model may receive.

Contract: :func:`widget_refusal` (``check`` of :func:`nbody_explorer.compat.patch_guard.install_patch_guard`)
takes a model, an attribute and the value a page sent, and returns None when a browser widget
could have sent it, else the refusal sentence in the page's words, built by
:mod:`nbody_explorer.state.validation` (the label the user sees, what is allowed, what is kept): a
slider's number or position within its ends, a spinner's within its bounds and whole in
integer mode, a select's option, a radio group's index, a checkbox's true or false, text of
bounded length. Attributes a page never sets (a layout's width, ...) and models that are not
widgets pass unchecked: Bokeh's own types and the app's checks behind Panel stand there.
"""

from __future__ import annotations

import html
import re
from typing import Any

from bokeh.models import (
    AbstractSlider,
    CheckboxButtonGroup,
    CheckboxGroup,
    InputWidget,
    NumericInput,
    RadioButtonGroup,
    RadioGroup,
    Select,
    Slider,
    Spinner,
    TextAreaInput,
    TextInput,
    Toggle,
)
from bokeh.models.widgets import Checkbox

from nbody_explorer.state.validation import Refused, checked_choice, checked_flag, checked_number, checked_text

__all__ = ["MAX_TEXT", "widget_refusal"]

#: Longest text a page may put in a text box (the app's boxes hold names and short numbers).
MAX_TEXT = 10_000

_TAG = re.compile(r"<[^>]*>")


def _text_of(model) -> str:
    text = getattr(model, "text", None)
    if not isinstance(text, str):
        return ""
    # Panel's Markdown pane sends escaped HTML ("&lt;p&gt;Precision&lt;/p&gt;"): unescape, strip tags.
    return " ".join(html.unescape(_TAG.sub(" ", html.unescape(text))).split())


def _neighbour_text(model) -> str:
    """The text just before ``model`` in its layout: a Panel ``DiscreteSlider`` draws
    "dt (time step, time units): 0.001" in a text model above an untitled slider; a radio
    group's label is a Markdown pane above it."""
    document = model.document
    if document is None:
        return ""
    for parent in document.models:
        children = getattr(parent, "children", None)
        if not isinstance(children, list) or model not in children:
            continue
        for before in reversed(children[:children.index(model)]):
            text = _text_of(before)
            if text:
                return text
        break
    return ""


def _discrete_label(model) -> tuple[str, str]:
    """``(label, shown value)`` of a discrete slider from its "label: value" line."""
    label, _, shown = _neighbour_text(model).rpartition(":")
    return label.strip(), shown.strip()


def _label(model) -> str:
    for attr in ("title", "label"):
        text = getattr(model, attr, None)
        if isinstance(text, str) and text.strip():
            return text.strip()
    if isinstance(model, Slider):
        return _discrete_label(model)[0] or "This slider"
    return _neighbour_text(model) or "This control"


def _whole(*values) -> bool:
    return all(value is None or float(value).is_integer() for value in values)


def _option_values(options) -> tuple[list, list]:
    """A Select's ``(values, labels)``: options are values or ``(value, label)`` pairs (or groups)."""
    if isinstance(options, dict):
        options = [option for group in options.values() for option in group]
    values, labels = [], []
    for option in options or []:
        value, label = (option[0], option[1]) if isinstance(option, (tuple, list)) else (option, option)
        values.append(value)
        labels.append(label)
    return values, labels


def _check(model, attr: str, value: Any) -> None:
    """Raise :class:`Refused` when ``value`` is not something ``model``'s widget can send."""
    label = _label(model)
    try:
        kept = getattr(model, attr, None)
    except Exception:  # noqa: BLE001 - Bokeh's UnsetValueError: a property never set (a FileInput's value)
        return
    if isinstance(model, AbstractSlider) and attr in ("value", "value_throttled"):
        if not isinstance(model, Slider):
            return  # range and date sliders: not used by the app; Bokeh's types check them
        if not (getattr(model, "title", "") or "").strip() and _discrete_label(model)[0]:
            # A discrete slider: its value is a position among its options, not a number the
            # user sees; say how many positions it has and the value it shows.
            positions = int(model.end - model.start) + 1
            checked_number(value, label=label, low=model.start, high=model.end, whole=True,
                           kept=_discrete_label(model)[1] or kept, allowed=f"one of its {positions} positions")
            return
        checked_number(value, label=label, low=model.start, high=model.end,
                       whole=_whole(model.start, model.step), kept=kept)
    elif isinstance(model, (Spinner, NumericInput)) and attr == "value":
        if value is None:
            return  # an emptied box: the views keep their value
        whole = getattr(model, "mode", "float") == "int"
        checked_number(value, label=label, low=model.low, high=model.high, whole=whole, kept=kept)
    elif isinstance(model, Select) and attr == "value":
        values, labels = _option_values(model.options)
        checked_choice(value, values, label=label, kept=labels[values.index(kept)] if kept in values else kept,
                       names=labels)
    elif isinstance(model, (RadioButtonGroup, RadioGroup)) and attr == "active":
        labels = list(model.labels)
        shown = labels[kept] if isinstance(kept, int) and 0 <= kept < len(labels) else kept
        checked_choice(value, list(range(len(labels))), label=label, kept=shown, names=labels)
    elif isinstance(model, (CheckboxGroup, CheckboxButtonGroup)) and attr == "active":
        if not isinstance(value, list) or len(value) > len(model.labels):
            raise Refused(f"{label} must be a choice among {', '.join(model.labels)}.")
        for item in value:
            checked_choice(item, list(range(len(model.labels))), label=label, names=list(model.labels))
    elif isinstance(model, (Checkbox, Toggle)) and attr == "active":
        checked_flag(value, label=label, kept=kept)
    elif isinstance(model, (TextInput, TextAreaInput)) and attr in ("value", "value_input"):
        checked_text(value, label=label, max_length=min(MAX_TEXT, getattr(model, "max_length", None) or MAX_TEXT),
                     kept=kept if isinstance(kept, str) and len(kept) < 80 else "the previous text")
    elif isinstance(model, InputWidget) and attr == "title" and not isinstance(value, str):
        raise Refused(f"{label}: its label must be text.")


def widget_refusal(model, attr: str, value: Any) -> str | None:
    """The refusal sentence for ``value`` sent to ``model.attr`` by a page, or None if a
    browser widget could have sent it ("Steps per frame must be a whole number from 1 to 200;
    kept 10.", "dt (time step, time units) must be one of its 16 positions; kept 0.001.")."""
    try:
        _check(model, attr, value)
    except Refused as refusal:
        return str(refusal)
    return None

