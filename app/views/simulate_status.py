"""The Simulate tab's status line: what it says and the pane that shows it.

What belongs here: the line's text (mode, simulation time, rates, N, integrator, force
kernel, precision, dt, softening) as a function of the run and the loop's numbers, its
stylesheet, and the pane that shows it. What does not:
when it is redrawn (throttling, the frame loop: :mod:`nbody_explorer.views.simulate`).
"""

from __future__ import annotations

import panel as pn

from nbody_explorer.runtime.scheduler import queue_text
from nbody_explorer.state.simulate import SimulationState
from nbody_explorer.views.simulate_controls import forces_label, unit_words

__all__ = ["new_status_line", "status_text"]

# The status pane renders in its own shadow root: its stylesheet is attached to it.
_STATUS_CSS = """
:host { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 1.2rem;
  padding: 4px 12px; border-radius: 6px; background: #eef2f7; color: #13294b; }
.compiling { color: #ffffff; background: #b45309; padding: 1px 8px; border-radius: 4px; font-weight: 700; }
.playing { color: #15803d; font-weight: 700; }
.paused { color: #475569; font-weight: 700; }
.warning { color: #b91c1c; font-weight: 700; }
"""


def new_status_line() -> pn.pane.HTML:
    """An empty status line (Bokeh model named ``simulate-status``).

    A plain HTML pane: a subclass that sent only the new text (overriding Panel's private
    ``_update``) saved 0.66 ms per update (0.75 -> 0.09 ms, in-process, median of 1000), at 4
    updates/s against 12-30 frames/s under 10 % of the server's CPU per frame, so it was dropped.
    """
    return pn.pane.HTML(
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
