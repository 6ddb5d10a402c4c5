"""Accessibility patches of BokehJS widget views: ARIA roles and keyboard operation of the tab
headers, accessible names for slider handles, checkboxes, spinner buttons and card headers, the focus kept
across a widget's re-rendering; and the page's main landmark and heading.

Bokeh 3.9 and Panel 1.9 have no public ARIA properties, and the widgets render in shadow roots
that Python cannot reach, so these fixes are one script (``accessibility.js`` beside this
module) that wraps the affected view classes' methods in the browser (:data:`PRIVATE_USES`),
on the tested Bokeh versions only; elsewhere only the landmark part runs (plain DOM). The focus
ring has a public route and is not here: a stylesheet of the template's design
(``app.dashboard.NbodyDesign``).
"""

from __future__ import annotations

from pathlib import Path

from app.compat import PrivateUse, version_tested

__all__ = ["ACCESSIBILITY_JS", "PRIVATE_USES", "install_accessibility"]

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
