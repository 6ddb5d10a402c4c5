"""The Simulate tab's status line: what it says and the pane that shows it.

What belongs here: the line's text (mode, simulation time, rates, N, integrator, force
kernel, precision, dt, softening) as a function of the run and the loop's numbers, its
stylesheet, and :class:`StatusLine`, the pane that sends only the new text. What does not:
when it is redrawn (throttling, the frame loop: :mod:`app.views.simulate`).
"""

from __future__ import annotations

import panel as pn

from app.state.simulate import SimulationState
from app.views.session import queue_text
from app.views.simulate_controls import forces_label, unit_words

__all__ = ["StatusLine", "new_status_line", "status_text"]

# The status pane renders in its own shadow root: its stylesheet is attached to it.
_STATUS_CSS = """
:host { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 1.2rem;
  padding: 4px 12px; border-radius: 6px; background: #eef2f7; color: #13294b; }
.compiling { color: #ffffff; background: #b45309; padding: 1px 8px; border-radius: 4px; font-weight: 700; }
.playing { color: #15803d; font-weight: 700; }
.paused { color: #475569; font-weight: 700; }
.warning { color: #b91c1c; font-weight: 700; }
"""


class StatusLine(pn.pane.HTML):
    """The status line: an HTML pane whose new text replaces only its model's ``text``.

    Panel's HTML pane recomputes every property of the pane (its stylesheets resolved
    through the design) for each new text; the status line changes 4 times a second per
    playing session and nothing but its text ever changes after it is built. Measured with
    cProfile of the event loop at 10 playing sessions: half of each status update's cost.
    """

    def _update(self, ref, model) -> None:
        if self.enable_streaming:
            super()._update(ref, model)
            return
        model.text = self._transform_object(self.object)["object"]


def new_status_line() -> StatusLine:
    """An empty status line (Bokeh model named ``simulate-status``)."""
    return StatusLine(
        "", css_classes=["nbody-status"], stylesheets=[_STATUS_CSS], sizing_mode="stretch_width",
        name="simulate-status",
    )


def status_text(state: SimulationState, *, queue_position: int, preparing: bool, playing: bool, hidden: bool,
                fps: float, steps_per_second: float, painted: float) -> str:
    """The status line's HTML (every value in it is a number or a registry name, never user text).

    Args:
        state: the run.
        queue_position: place of the session's next job in the pool's queue (0: not waiting).
        preparing: the run is being built or compiled on the pool (or not drawn yet).
        playing: the frame loop runs.
        hidden: the page or tab is hidden (no frames are sent).
        fps: frames sent per second; steps_per_second: integrator steps per second.
        painted: frames the browser painted in its last second.
    """
    if queue_position:
        # Every JAX slot of the server is busy with other sessions' work: say so.
        mode = f'<span class="compiling">{queue_text(queue_position)}</span>'
    elif preparing:
        # On the pool: the initial conditions are built and the frame function compiled.
        mode = '<span class="compiling">preparing…</span>'
    elif state.nonfinite:
        mode = '<span class="warning">non-finite!</span>'
    elif playing and hidden:
        mode = '<span class="paused">hidden: no frames sent</span>'
    elif playing:
        mode = '<span class="playing">▶ playing</span>'
    else:
        mode = '<span class="paused">paused</span>'
    # Units on every readout (issue 14): yr and AU for the solar system; G = 1 units are named once.
    physical = state.units == "au_msun_yr"
    t_unit, length_unit = (" " + word for word in unit_words(state)) if physical else ("", "")
    if state.adaptive:
        # dt is the frame's save interval; the integrator chooses its own steps.
        accepted = state.accepted_steps_per_second if playing else 0.0
        rate, dt_text = f"<b>{accepted:,.0f}</b> accepted steps/s", f"save interval dt = {state.dt:.3g}{t_unit}"
    else:
        rate, dt_text = f"<b>{steps_per_second:,.0f}</b> steps/s", f"dt = {state.dt:.3g}{t_unit}"
    return (
        f"{mode} &nbsp; t = <b>{state.time:.4g}</b>{t_unit} &nbsp;·&nbsp; {rate}"
        f" &nbsp;·&nbsp; <b>{painted:.0f}</b> painted frames/s (sent {fps:.1f}/s)"
        f" &nbsp;·&nbsp; N = {state.body_count}"
        f" &nbsp;·&nbsp; {state.integrator}, {forces_label(state)}, {state.precision},"
        f" {dt_text}, ε = {state.softening:.3g}{length_unit}"
        + ("" if physical else " &nbsp;·&nbsp; N-body units (G = 1)")
    )
