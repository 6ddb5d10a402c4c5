"""Boxes that screen readers understand: Panel's ``Alert`` with ``role="alert"`` (a message,
announced) or ``role="dialog"`` (the keyboard help).

Panel 1.9's ``Alert`` pane renders a Bootstrap-styled box with no ARIA role, so a warning that
appears in the page (an energy-error warning while the class watches the orbit) is silent for
a screen reader. Bokeh 3.9 models carry a public ``html_attributes`` property, but Panel's
panes do not expose it as a parameter: :class:`AnnouncedAlert` adds it where Panel turns the
pane's parameters into model properties (:data:`PRIVATE_USES`). Panel's own ``Modal`` needs its
extension loaded with the page (``pn.extension("modal")``), which a tab built after the page has
loaded cannot ask for, and calling it in a session dropped the page's other extensions.
"""

from __future__ import annotations

import panel as pn

from nbody_explorer.compat import PrivateUse, version_tested

__all__ = ["ANNOUNCE", "AnnouncedAlert", "DialogBox", "PRIVATE_USES"]

PRIVATE_USES = (
    PrivateUse(
        "panel", "PaneBase._process_param_change (overridden to add the model's html_attributes)",
        "the message box's element has role=alert and aria-live=assertive: a screen reader reads each "
        "new message once, without a toast covering the plots (tests/ui/test_messages_ui.py)",
        "a plain Alert: the message is shown inline but not announced; the help box is not named a dialog",
    ),
)

#: The attributes of the box's element: an assertive live region read as a whole.
ANNOUNCE = {"role": "alert", "aria-live": "assertive", "aria-atomic": "true"}


class AnnouncedAlert(pn.pane.Alert):
    """``pn.pane.Alert`` whose element says ``role="alert"`` (same parameters as Alert)."""

    def _process_param_change(self, params):
        params = super()._process_param_change(params)
        if version_tested("panel"):
            params["html_attributes"] = dict(ANNOUNCE)
        return params


class DialogBox(pn.pane.Alert):
    """``pn.pane.Alert`` whose element says ``role="dialog"`` named ``label``: a box floating
    over the page (give it fixed-position ``styles``), closed by its owner."""

    def __init__(self, object=None, *, label: str = "Dialog", **params):
        self._label = label
        super().__init__(object, **params)

    def _process_param_change(self, params):
        params = super()._process_param_change(params)
        if version_tested("panel"):
            params["html_attributes"] = {"role": "dialog", "aria-label": self._label}
        return params
