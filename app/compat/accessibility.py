"""Accessibility patches of BokehJS widget views: ARIA roles and keyboard operation of the tab
headers, accessible names for slider handles, checkboxes, spinner buttons and card headers, the focus kept
across a widget's re-rendering; and the page's main landmark and heading.

Bokeh 3.9 and Panel 1.9 have no public ARIA properties, and the widgets render in shadow roots
that Python cannot reach, so these fixes are one script (``accessibility.js`` beside this
module) that wraps the affected view classes' methods in the browser (:data:`PRIVATE_USES`),
on the tested Bokeh versions only; elsewhere only the landmark part runs (plain DOM). The focus
ring has a public route and is not here: a stylesheet of the template's design
(``nbody_explorer.dashboard.NbodyDesign``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from nbody_explorer.compat import PrivateUse, version_tested

__all__ = ["ACCESSIBILITY_JS", "PRIVATE_USES", "install_accessibility", "speak_discrete_slider"]

_FALLBACK = "not wrapped: widgets as Bokeh renders them (no tab roles or keys, unnamed slider handles, " \
            "unlabelled checkboxes and spinner buttons); the landmark and heading stay"

#: What the script reads of BokehJS 3.9 (the JS names in quotes are checked against the script by
#: tests/test_architecture.py: every private ``._name`` it uses is listed here).
PRIVATE_USES = (
    PrivateUse(
        "bokeh", "Bokeh.Models.get(name).prototype.default_view and wrapping view methods render, "
        "update_children, update_active, rerender (LayoutDOMView)",
        "tab headers with roles, a roving tabindex and arrow keys; focus kept across a re-render "
        "(tests/ui/test_accessibility_ui.py, axe-core scan with no serious violation)", _FALLBACK,
    ),
    PrivateUse(
        "bokeh", "TabsView.prototype._update_headers",
        "the focused tab header keeps the focus when Panel's dynamic tabs rebuild the headers", _FALLBACK,
    ),
    PrivateUse(
        "bokeh", "AbstractSliderView.prototype._update_title",
        "slider handles named after the slider's title, kept in step when it changes", _FALLBACK,
    ),
    PrivateUse(
        "bokeh", "AbstractSliderView fields _noUiSlider (its on('update') event) and pretty(value)",
        "every slider's handle says its value as the page shows it (aria-valuetext), in physical "
        "units for the dt and softening ladders, not noUiSlider's default two-decimal index", _FALLBACK,
    ),
    PrivateUse(
        "panel", "DiscreteSlider._slider (the IntSlider of option indices it shows)",
        "speak_discrete_slider: the index slider's format maps an index to the value's text, its "
        "label and unit, so a screen reader hears 'dt (time step, time units)', '0.001 time units'",
        "the handle is named 'slider' and says the option's index (9.00)",
    ),
    PrivateUse(
        "panel", "CardView.prototype._collapse and its field button_el",
        "a collapsible card's header button named after its title, with aria-expanded", _FALLBACK,
    ),
    PrivateUse(
        "bokeh", "view fields shadow_el, header_el, header_els, headers_wrapper_el, child_views, checkbox_el, "
        "label_el, btn_up_el, btn_down_el",
        "the elements the patches label (checkbox text, spinner buttons, tab headers)", _FALLBACK,
    ),
)

#: The script run once per page (see the comments at its top for each patch and why).
ACCESSIBILITY_JS = Path(__file__).with_name("accessibility.js").read_text(encoding="utf-8")


def install_accessibility(document) -> bool:
    """Run :data:`ACCESSIBILITY_JS` in the browser when ``document`` (a Bokeh ``Document``) is ready.

    Returns:
        Whether the widget views are patched (the tested Bokeh versions); the landmark and
        heading are set either way.
    """
    from bokeh.models import CustomJS

    wrap_views = version_tested("bokeh")
    document.js_on_event("document_ready", CustomJS(args={"wrap_views": wrap_views}, code=ACCESSIBILITY_JS))
    return wrap_views


def speak_discrete_slider(slider, unit: Callable[[], str]) -> None:
    """Make ``slider`` (a ``pn.widgets.DiscreteSlider``) speak its label and its value in units.

    A DiscreteSlider is a text line above an index slider without a title, so the handle a screen
    reader reaches was named "slider" and said the option's index ("9.00", not "0.001"). The
    index slider gets a tick formatter that maps an index to the option's text; it carries the
    label and the unit, which the browser script (:data:`ACCESSIBILITY_JS`) reads for the
    handle's ``aria-label`` and ``aria-valuetext``. Kept in step when the options, the format or
    the label change (Panel builds a new index slider then).

    Args:
        slider: the widget.
        unit: returns the unit words said after the value (e.g. "time units"), read on each change.
    """
    from bokeh.models import CustomJSTickFormatter

    def describe(*_events) -> None:
        texts = [slider.formatter % value for value in slider.values]
        slider._slider.format = CustomJSTickFormatter(
            args={"texts": texts, "label": slider.name, "unit": unit()},
            code="const text = texts[Math.round(tick)]; return text === undefined ? String(tick) : text;",
        )

    describe()
    slider.param.watch(describe, ["options", "formatter", "name"])
