"""Faults mid-run in the Simulate tab (state and view, no browser).

A live run that turns non-finite stops at the last good state and says at which step and
why; an energy error past the warning level says that dt is likely too large; an exception
in any session callback becomes a visible message (app.reliability).
"""

from __future__ import annotations

import html
import math

import numpy as np
import panel as pn
import pytest
from bokeh.document import Document

from nbody_explorer.reliability import SESSION_MESSAGE_NAME, install_session_guards
from nbody_explorer.runtime.messages import escape_markdown
from nbody_explorer.state.simulate import ENERGY_WARNING_LEVEL, SimulationState
from nbody_explorer.views.simulate import SimulateView

HEADER = b"m,x,y,z,vx,vy,vz\n"
# Two bodies at rest at the same point: with zero softening U = -G m m / 0 at t = 0.
COINCIDENT = HEADER + b"1,0,0,0,0,0,0\n1,0,0,0,0,0,0\n"
# Two nearly massless bodies (1e-300: their pull underflows, so they move exactly uniformly)
# approaching at speed 1 from x = -1 and x = +1: with dt = 0.25 (exact in binary) they meet
# exactly at x = 0 on step 4, where U = -G m m / 0 is not finite. Steps 1-3 are fine.
HEAD_ON = HEADER + b"1e-300,-1,0,0,1,0,0\n1e-300,1,0,0,-1,0,0\n"
# Two unit masses at rest 1 apart fall together in t_ff = pi / 4 (M = 2, r0 = 1); with zero
# softening and dt = 1e-3 the fixed-step run stays finite but loses its energy there.
FREE_FALL = HEADER + b"1,-0.5,0,0,0,0,0\n1,0.5,0,0,0,0,0\n"


def _uploaded(data: bytes, **settings) -> SimulationState:
    state = SimulationState()
    state.load_csv(data, filename="test.csv")
    state.param.update(**settings)
    state.prepare()
    return state


def test_coincident_bodies_stop_at_step_one_naming_zero_softening():
    state = _uploaded(COINCIDENT, softening=0.0, steps_per_frame=10)
    state.step_frame()
    assert state.nonfinite and state.fault is not None
    assert state.fault.step == 1 and state.steps_taken == 0
    assert "step 1" in state.fault.message
    assert "bodies 0 and 1 start 0 apart with zero softening" in state.fault.message
    assert np.isfinite(state.position).all()  # the last good state is what is kept and shown


def test_exact_collision_mid_frame_is_located_to_the_step():
    state = _uploaded(HEAD_ON, softening=0.0, dt=0.25, steps_per_frame=8, forces="analytic")
    state.step_frame()
    assert state.fault is not None and state.fault.step == 4
    assert state.steps_taken == 3 and state.time == pytest.approx(0.75)
    np.testing.assert_array_equal(state.position[:, 0], [-0.25, 0.25])  # the last good positions
    assert "step 4" in state.fault.message and "close encounter with zero softening" in state.fault.message
    assert "last good state (step 3" in state.fault.message
    # The kept state is a real state: the CSV download holds it.
    assert "-0.25" in state.state_csv()


def test_with_softening_the_same_collision_runs_through():
    # Control: eps > 0 makes r = 0 harmless, so the flag above comes from the physics.
    state = _uploaded(HEAD_ON, softening=0.1, dt=0.25, steps_per_frame=8)
    state.step_frame()
    assert state.fault is None and not state.nonfinite and state.steps_taken == 8


def test_reset_clears_the_fault():
    state = _uploaded(COINCIDENT, softening=0.0)
    state.step_frame()
    assert state.fault is not None
    state.softening = 0.1  # traced: takes effect on the next frame, no rebuild
    state.reset()
    assert state.fault is None and not state.nonfinite and state.energy_warning is None


def test_energy_error_past_the_level_warns_that_dt_is_too_large():
    state = _uploaded(FREE_FALL, softening=0.0, dt=1e-3, steps_per_frame=50)
    while state.energy_warning is None and state.time < 1.2:
        state.step_frame()
    assert state.energy_warning is not None and state.fault is None
    # It fires at the collision (t_ff = pi / 4), not before, and says what to change.
    assert math.pi / 4 - 0.06 < state.time < math.pi / 4 + 0.06
    assert f"passed {ENERGY_WARNING_LEVEL:g}" in state.energy_warning
    assert "dt = 0.001 is likely too large" in state.energy_warning and "softening" in state.energy_warning
    warning = state.energy_warning
    state.step_frame()
    assert state.energy_warning == warning  # once per run, not per frame


def test_a_healthy_run_never_warns():
    state = SimulationState()  # figure-eight, leapfrog, dt = 1e-3: |dE/E| ~ 1e-7
    for _ in range(20):
        state.step_frame()
    assert state.fault is None and state.energy_warning is None


def test_view_pauses_and_shows_the_fault_message():
    view = SimulateView()
    view.state.load_csv(HEAD_ON, filename="head_on.csv")
    view.state.param.update(softening=0.0, dt=0.25, steps_per_frame=8, forces="analytic")
    view.playing = True
    for _ in range(3):
        if not view.playing:
            break
        view._frame()
    assert not view.playing
    assert view.message.visible and "step 4" in view.message.object
    assert "close encounter with zero softening" in view.message.object.replace("\\", "")


def test_view_shows_the_energy_warning_once():
    view = SimulateView()
    view.state.load_csv(FREE_FALL, filename="free_fall.csv")
    view.state.param.update(softening=0.0, dt=1e-3, steps_per_frame=50)
    view.playing = True
    for _ in range(30):
        view._frame()
    view.playing = False
    assert view.state.energy_warning is not None
    assert view.message.visible and view.message.alert_type == "warning"
    assert "likely too large" in view.message.object.replace("\\", "")


# ------------------------------------------------------------------ session guards
def test_escape_markdown_shows_user_text_verbatim():
    text = "forces=__import__('os') <img src=x onerror=alert(1)> *bold* [link](http://x) 1.5e-3"
    unescaped = html.unescape(pn.pane.Markdown(text)._transform_object(text)["object"])
    assert "<img src=x" in unescaped and "<strong>import</strong>" in unescaped  # why escaping is needed
    escaped = escape_markdown(text)
    rendered = html.unescape(pn.pane.Markdown(escaped)._transform_object(escaped)["object"])
    for tag in ("<img", "<strong>", "<em>", "<a "):
        assert tag not in rendered
    assert "forces=__import__('os') &lt;img src=x onerror=alert(1)&gt; *bold* [link](http://x) 1.5e-3" in rendered


def test_callback_exceptions_become_a_visible_message():
    doc = Document()
    with pn.io.server.set_curdoc(doc):
        template = pn.template.BootstrapTemplate(title="t")
        box = install_session_guards(template)
        try:
            assert template.main[0] is box and box.name == SESSION_MESSAGE_NAME and not box.visible
            pn.config.exception_handler(ValueError("Seed must be a whole number from 0 to 9; kept 0."))
            assert box.visible and "Refused: Seed must be a whole number from 0 to 9; kept 0." in box.object.replace("\\", "")
            # Issue 26: a message naming internals (a class, a parameter's owner) is not shown as is.
            pn.config.exception_handler(ValueError("Integer parameter 'SimulationState.seed' must be at least 0, not -5."))
            assert box.visible and "SimulationState" not in box.object and "parameter" not in box.object
            pn.config.exception_handler(IndexError("list index out of range"))
            assert "IndexError" not in box.object and "session keeps running" in box.object
            pn.config.exception_handler(MemoryError())
            assert "Out of memory" in box.object
        finally:
            pn.config.exception_handler = None


# ------------------------------------------------------------------ XLA failures
def _out_of_memory(*args, **kwargs):
    import jax.numpy as jnp

    return jnp.zeros((10**6, 10**6))  # 8 TB: XLA refuses with RESOURCE_EXHAUSTED


def test_out_of_memory_mid_run_is_reported_and_the_session_lives_on(monkeypatch):
    import nbody_explorer.state.simulate_run as simulate_run

    view = SimulateView()
    view.playing = True
    view._frame()
    monkeypatch.setattr(simulate_run, "solve", _out_of_memory)  # the frame function
    view._frame()
    assert not view.playing and view.message.visible
    assert "RESOURCE_EXHAUSTED" in view.last_message
    monkeypatch.undo()
    frames = view.state.frames_taken
    view.step()  # the same session keeps working
    assert view.state.frames_taken == frames + 1


def test_a_failing_compile_is_reported_and_the_session_lives_on(monkeypatch):
    import nbody_explorer.state.simulate_run as simulate_run

    view = SimulateView()
    monkeypatch.setattr(simulate_run, "solve", _out_of_memory)  # prepare() compiles it
    view.state.integrator = "rk4"  # a new configuration: prepare() runs the failing call
    view.reset()
    assert view.message.visible and "RESOURCE_EXHAUSTED" in view.last_message
    monkeypatch.undo()
    view.reset()
    view.step()
    assert view.state.frames_taken == 1 and view.state.fault is None
