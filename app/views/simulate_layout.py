"""Where the Simulate tab's parts sit: the sidebar of controls, then the keyboard listener,
the status line, the message slot, the Predict row, and the orbit scene beside the plots.

:func:`build_simulate_layout` arranges the parts a :class:`~nbody_explorer.views.simulate.SimulateView`
has built (it builds none of them but the reading guide and the message slot).
"""

from __future__ import annotations

import panel as pn

from nbody_explorer.runtime.messages import dismissable

__all__ = ["build_simulate_layout"]

MESSAGE_SLOT_PX = 64  # the description / message slot: two lines of a message, scrolled if longer

READING_GUIDE = """
**Reading the plots.** Symplectic integrators (leapfrog, yoshida4) keep the energy error
bounded: it oscillates with the orbit instead of drifting; *euler* drifts away. Doubling dt
multiplies the leapfrog error by about 4 (second order) and the yoshida4 error by about 16.
Linear momentum is conserved to round-off by every integrator here; angular momentum
exactly only by the symplectic ones (compare euler or rk4). Try float32 to see round-off.
"""


def build_simulate_layout(view) -> pn.Row:
    """The Simulate tab's layout over ``view``'s parts (controls, keys, status, message,
    description, predictor, scene, plots)."""
    # At 1280 x 720 both plots fit beside the scene (their heights share what is left); the
    # reading guide is a collapsed card under them.
    plots = pn.Column(
        *view.plots.panes,
        pn.Card(pn.pane.Markdown(READING_GUIDE, sizing_mode="stretch_width"), title="Reading the plots",
                collapsed=True, sizing_mode="stretch_width"),
        sizing_mode="stretch_both", min_width=320,
    )
    # Messages take the description's fixed slot (the description comes back with the next
    # run): a warning never pushes the scene and plots down or off the screen (issue 14).
    view.message.margin = (0, 10)
    message_slot = pn.Column(dismissable(view.message, name="simulate-message"), view.description,
                             height=MESSAGE_SLOT_PX, scroll=True, sizing_mode="stretch_width",
                             name="simulate-message-slot")
    main = pn.Column(
        view.keys,
        view.status,
        message_slot,
        view.predictor,
        pn.Row(view.scene, plots, sizing_mode="stretch_both"),
        sizing_mode="stretch_both",
    )
    return pn.Row(view.controls, main, sizing_mode="stretch_both")
