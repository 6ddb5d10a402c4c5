"""Accessibility patches for the served page: ARIA roles and keyboard operation of the tab
headers, accessible names for slider handles, checkboxes and spinner buttons, a visible focus
ring inside every widget's shadow root, and the page's main landmark and heading.

Bokeh renders its widgets in shadow roots that Python cannot reach, so the fixes are one small
script (``accessibility.js`` beside this module) that wraps the affected widget views' methods in
the browser; it runs when the document is ready, before the dashboard's tabs arrive.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ACCESSIBILITY_JS", "install_accessibility"]

#: The script run once per page (see the comments at its top for each patch and why).
ACCESSIBILITY_JS = (Path(__file__).with_name("accessibility.js")).read_text(encoding="utf-8")


def install_accessibility(document) -> None:
    """Run :data:`ACCESSIBILITY_JS` in the browser when ``document`` (a Bokeh ``Document``) is ready."""
    from bokeh.models import CustomJS

    document.js_on_event("document_ready", CustomJS(code=ACCESSIBILITY_JS))
