"""Editing a paused run without a browser: SimulationState.replace_bodies, EditSession and the
Simulate view's BodyEditor (edit mode, messages, readout, undo/redo, keys)."""

from __future__ import annotations

import numpy as np
import pytest

from nbody_explorer.components.orbit_scene import FLAG_KEEP_CAMERA, unpack_frame
from nbody_explorer.state.edit_session import EditSession
from nbody_explorer.state.edits import Bodies
from nbody_explorer.state.simulate import SimulationState
from nbody_explorer.views.simulate import SimulateView
from nbody_core.integrate.simulate import advance
from tests.app.conftest import shown_text

# float64 runs: sums of a few O(1) products, round-off a few ulp (2.2e-16) of the largest
# term; 1e-12 is far below any real momentum or energy change an edit makes.
ROUND_OFF = 1e-12


def _momentum(state: SimulationState) -> np.ndarray:
    return state.mass @ state.velocity


def test_replace_bodies_starts_a_new_generation_at_the_same_time():
    state = SimulationState(preset="figure_eight")
    state.prepare()
    state.step_frame()
    time, generation, steps = state.time, state.generation, state.steps_taken
    bodies = state.bodies()
    assert bodies.num_bodies == 3 and bodies.time == time
    bigger = Bodies(np.vstack([bodies.position, [[0.0, 2.0, 0.0]]]), np.vstack([bodies.velocity, [[0.0, 0.0, 0.0]]]),
                    np.append(bodies.mass, 1.0), bodies.time)
    state.replace_bodies(bigger)
    assert state.generation == generation + 1 and not state.ready
    assert state.current.num_bodies == 4 and state.time == time and state.steps_taken == steps
    assert len(state.history.time) == 0  # the plots restart from the edited state
    np.testing.assert_array_equal(state.position[3], [0.0, 2.0, 0.0])
    assert state.initial.num_bodies == 3  # Reset still goes back to the preset


def test_play_continues_from_the_edited_state():
    state = SimulationState(preset="figure_eight")
    state.prepare()
    session = EditSession(state)
    session.apply({"action": "velocity", "index": 2, "vector": [0.1, 0.2, 0.0]})
    edited = state.current
    state.prepare()
    state.step_frame()
    expected = advance(edited, state.steps_per_frame, dt=state.dt, params=state.physics_params,
                       integrator=state.integrator, forces=state.forces)
    # The same compiled steps from the same state: equal to float64 round-off.
    np.testing.assert_allclose(state.position, np.asarray(expected.position), rtol=0, atol=ROUND_OFF)
    assert state.time == pytest.approx(float(expected.time), abs=ROUND_OFF)


@pytest.mark.parametrize("message", [
    {"action": "move", "index": 0, "vector": [0.3, 0.4, 0.1]},
    {"action": "velocity", "index": 1, "vector": [1.0, -0.5, 0.2]},
    {"action": "add", "vector": [0.0, 1.5, 0.0]},
    {"action": "remove", "index": 2},
])
def test_edits_keep_the_centre_of_mass_frame(message):
    state = SimulationState(preset="figure_eight")
    session = EditSession(state)
    session.apply(message)
    scale = float(np.sum(state.mass[:, None] * np.abs(state.velocity))) + 1.0
    assert np.abs(_momentum(state)).max() < ROUND_OFF * scale
    centre = state.mass @ state.position / state.mass.sum()
    assert np.abs(centre).max() < ROUND_OFF * (np.abs(state.position).max() + 1.0)
    readout = session.readout()
    assert np.linalg.norm(readout.momentum) < ROUND_OFF * scale and readout.num_bodies == state.current.num_bodies


def test_without_the_centre_of_mass_frame_a_velocity_edit_gives_momentum():
    state = SimulationState(preset="figure_eight")
    session = EditSession(state, keep_center_of_mass=False)
    before = _momentum(state).copy()
    old = state.velocity[1].copy()
    session.apply({"action": "velocity", "index": 1, "vector": [1.0, 0.0, 0.0]})
    np.testing.assert_allclose(_momentum(state), before + state.mass[1] * (np.array([1.0, 0.0, 0.0]) - old),
                               atol=ROUND_OFF)


def test_refused_edits_leave_the_run_unchanged():
    state = SimulationState(preset="figure_eight")
    session = EditSession(state, max_bodies=3)
    generation, position = state.generation, state.position.copy()
    for message in ({"action": "add", "vector": [0, 0, 0]},          # over the cap
                    {"action": "move", "index": 5, "vector": [0, 0, 0]},
                    {"action": "velocity", "index": 0, "vector": [float("nan"), 0, 0]},
                    "<script>alert(1)</script>"):
        with pytest.raises(ValueError):
            session.apply(message)
    session.apply({"action": "remove", "index": 0})
    with pytest.raises(ValueError, match="at least 2 bodies"):
        session.apply({"action": "remove", "index": 0})
    assert state.current.num_bodies == 2
    session.undo()
    assert state.generation == generation + 2 and not session.can_undo and session.can_redo
    np.testing.assert_allclose(state.position, position, atol=0)


def test_undo_redo_restore_states_and_a_reset_clears_them():
    state = SimulationState(preset="figure_eight")
    session = EditSession(state)
    original = state.bodies()
    session.apply({"action": "move", "index": 0, "vector": [1.0, 1.0, 0.0]})
    moved = state.bodies()
    session.apply({"action": "add", "vector": [0.0, -1.0, 0.0]})
    assert state.current.num_bodies == 4 and session.edits_applied == 2
    session.undo()
    np.testing.assert_array_equal(state.position, moved.position)
    session.undo()
    np.testing.assert_array_equal(state.position, original.position)
    np.testing.assert_array_equal(state.velocity, original.velocity)
    session.redo()
    session.redo()
    assert state.current.num_bodies == 4 and not session.can_redo
    state.reset()
    session.sync()
    assert not session.can_undo and not session.can_redo


# ----------------------------------------------------------------------------- the view
@pytest.fixture
def view():
    return SimulateView(sync_url=False)


def test_edit_mode_needs_the_toggle_and_a_paused_run(view):
    editor = view.editor
    assert not view.scene.editing and not editor.help.visible  # the toggle is off by default
    assert not editor.handle_message({"action": "move", "index": 0, "vector": [1, 0, 0]})
    assert "Edit bodies" in view.last_message
    editor.edit_toggle.value = True
    assert view.scene.editing and "E = " in editor.readout.object and editor.help.visible
    view.playing = True
    assert not view.scene.editing and editor.undo_button.disabled
    view.playing = False
    assert view.scene.editing


def test_an_edit_redraws_at_once_and_updates_the_readout(view):
    editor = view.editor
    editor.edit_toggle.value = True
    energy = editor.last_readout.energy
    sent = view.scene.frames_sent
    assert editor.handle_message({"type": "edit", "action": "move", "index": 0, "vector": [1.5, 0.0, 0.0]})
    assert view.scene.frames_sent > sent  # the edited state went to the scene
    assert view.scene.mass.shape == (3,) and editor.last_readout.energy != energy
    assert editor.last_readout.generation == view.state.generation
    assert not editor.undo_button.disabled and editor.redo_button.disabled
    assert editor.handle_message({"action": "add", "vector": [0.0, 1.0, 0.0]})
    assert view.scene.selected == 3 and not editor.remove_button.disabled  # the new body is selected
    assert "N = 4" in editor.readout.object and "N = 4" in view.status.object


def test_remove_and_keys(view):
    editor, keys = view.editor, view.keys
    editor.edit_toggle.value = True
    assert not editor.remove_selected()
    assert "select" in view.last_message
    view.scene.selected = 1
    keys.act("remove")  # the Delete key
    assert view.state.current.num_bodies == 2 and view.scene.selected == -1
    keys.act("remove")  # two bodies left and none selected: refused with a message
    assert view.state.current.num_bodies == 2
    keys.act("undo")  # Ctrl+Z
    assert view.state.current.num_bodies == 3
    keys.act("redo")  # Ctrl+Shift+Z
    assert view.state.current.num_bodies == 2
    keys.listener._handle_msg({"action": "undo"})
    assert view.state.current.num_bodies == 3 and keys.listener.last_action == "undo"


def test_a_refused_edit_is_explained_and_escaped(view):
    editor = view.editor
    editor.edit_toggle.value = True
    assert not editor.handle_message({"action": "move", "index": 0, "vector": ["<img src=x onerror=alert(1)>", 0, 0]})
    assert view.last_message.startswith("Edit refused")
    assert "<img src=x" in shown_text(view.message.object)  # the message box shows it as text
    # The page, which already drew the drag, gets the unchanged state back.
    frame = unpack_frame(view.scene.last_message)
    np.testing.assert_allclose(frame["position"], view.state.position, rtol=1e-7, atol=1e-7)
    assert frame["flags"] & FLAG_KEEP_CAMERA


def test_step_after_an_edit_continues_from_it_and_reset_clears_the_history(view):
    editor = view.editor
    editor.edit_toggle.value = True
    editor.handle_message({"action": "velocity", "index": 0, "vector": [0.0, 0.0, 0.3]})
    edited = view.state.current
    view.step()
    assert view.state.time > float(edited.time)
    assert abs(view.state.position[0, 2] - float(edited.position[0, 2])) > 0  # moved off the plane
    assert editor.session.can_undo
    view.reset()
    assert not editor.session.can_undo and editor.undo_button.disabled and view.scene.selected == -1


def test_hostile_edit_messages_are_refused_with_a_message_never_an_exception(view):
    editor = view.editor
    editor.edit_toggle.value = True
    position = view.state.position.copy()
    hostile = [
        None, b"\x00\xff", 42, [], {"action": None}, {"action": ["move"]}, {"action": "move"},
        {"action": "move", "index": 10**30, "vector": [0, 0, 0]},
        {"action": "move", "index": "0", "vector": [0, 0, 0]},
        {"action": "move", "index": 0, "vector": [[0], [0], [0]]},
        {"action": "move", "index": 0, "vector": list(range(10**5))},
        {"action": "velocity", "index": 0, "vector": {"x": 1}},
        {"action": "add", "vector": [1e308, 1e308, 1e308]},
        {"action": "remove", "index": -3},
        {"action": "__class__", "index": 0},
    ]
    for message in hostile:
        assert not editor.handle_message(message), message
        assert view.last_message.startswith("Edit refused")
    view.scene._handle_msg({"type": "edit", "action": "add"})  # through the scene's channel too
    np.testing.assert_array_equal(view.state.position, position)
    assert not editor.session.can_undo
