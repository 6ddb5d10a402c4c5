"""app/state/edits.py: pure edits of a paused run, their validation and undo/redo."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nbody_explorer.state import edits
from nbody_explorer.state.edits import Bodies, Edit, EditHistory, apply_edit, validate_edit

# Sums of a handful of float64 products of O(1) numbers: round-off is a few ulp (2.2e-16)
# of the largest term; 1e-13 leaves a wide margin and still catches any real momentum.
ROUND_OFF = 1e-13


@pytest.fixture
def three():
    """Three unequal bodies with a net momentum and an off-centre centre of mass."""
    return Bodies.of(
        [[1.0, 0.0, 0.0], [-0.5, 0.5, 0.0], [0.0, -1.0, 0.25]],
        [[0.0, 0.5, 0.0], [-0.3, 0.0, 0.1], [0.2, 0.1, 0.0]],
        [1.0, 2.0, 0.5],
        time=3.5,
    )


def _momentum(bodies: Bodies) -> np.ndarray:
    return bodies.mass @ bodies.velocity


def test_bodies_of_copies_and_casts():
    position = np.zeros((2, 3), np.float32)
    bodies = Bodies.of(position, position, np.ones(2, np.float32), 1)
    position[0, 0] = 9.0
    assert bodies.position.dtype == np.float64 and bodies.position[0, 0] == 0.0
    assert bodies.num_bodies == 2 and bodies.time == 1.0


def test_move_body_changes_only_that_body(three):
    moved = edits.move_body(three, 1, [2.0, 3.0, 4.0])
    np.testing.assert_array_equal(moved.position[1], [2.0, 3.0, 4.0])
    np.testing.assert_array_equal(np.delete(moved.position, 1, 0), np.delete(three.position, 1, 0))
    np.testing.assert_array_equal(moved.velocity, three.velocity)
    np.testing.assert_array_equal(three.position[1], [-0.5, 0.5, 0.0])  # input untouched


def test_set_velocity_changes_only_that_body(three):
    changed = edits.set_velocity(three, 2, [1.0, -1.0, 0.5])
    np.testing.assert_array_equal(changed.velocity[2], [1.0, -1.0, 0.5])
    np.testing.assert_array_equal(changed.velocity[:2], three.velocity[:2])
    np.testing.assert_array_equal(changed.position, three.position)


def test_add_body_median_mass_at_rest_in_com_frame(three):
    added = edits.add_body(three, [0.0, 0.0, 2.0])
    assert added.num_bodies == 4 and added.time == three.time
    assert added.mass[-1] == 1.0  # median of 1, 2, 0.5
    _, com_velocity = edits.center_of_mass(three)
    np.testing.assert_allclose(added.velocity[-1], com_velocity, rtol=0, atol=ROUND_OFF)
    # At rest in the centre-of-mass frame: the centre-of-mass velocity is unchanged.
    np.testing.assert_allclose(edits.center_of_mass(added)[1], com_velocity, rtol=0, atol=ROUND_OFF)


def test_remove_body_shifts_later_indices(three):
    removed = edits.remove_body(three, 0)
    assert removed.num_bodies == 2
    np.testing.assert_array_equal(removed.position, three.position[1:])
    np.testing.assert_array_equal(removed.mass, three.mass[1:])


def test_center_of_mass_frame_zero_momentum_and_origin(three):
    shifted = edits.to_center_of_mass_frame(three)
    position, velocity = edits.center_of_mass(shifted)
    assert np.abs(position).max() < ROUND_OFF and np.abs(velocity).max() < ROUND_OFF
    # Relative positions and velocities are unchanged.
    np.testing.assert_allclose(np.diff(shifted.position, axis=0), np.diff(three.position, axis=0), atol=ROUND_OFF)


@pytest.mark.parametrize("edit", [
    Edit("move", 0, np.array([0.3, -2.0, 1.0])),
    Edit("velocity", 1, np.array([5.0, 0.0, -1.0])),
    Edit("add", -1, np.array([1.0, 1.0, 1.0])),
    Edit("remove", 2, None),
])
def test_apply_edit_keeps_com_frame(three, edit):
    result = apply_edit(three, edit, keep_center_of_mass=True)
    scale = np.sum(result.mass[:, None] * np.abs(result.velocity)) + 1.0
    assert np.abs(_momentum(result)).max() < ROUND_OFF * scale
    assert np.abs(edits.center_of_mass(result)[0]).max() < ROUND_OFF * (np.abs(result.position).max() + 1)


def test_apply_edit_without_com_frame_is_the_plain_edit(three):
    edit = Edit("move", 0, np.array([0.3, -2.0, 1.0]))
    np.testing.assert_array_equal(apply_edit(three, edit, keep_center_of_mass=False).position,
                                  edits.move_body(three, 0, edit.vector).position)


def test_move_with_com_kept_lands_short_by_the_com_shift(three):
    # Centre-of-mass frame first, then a drag d of body 0: it lands at p + d - (m0/M) d.
    start = edits.to_center_of_mass_frame(three)
    drag = np.array([0.7, 0.0, 0.0])
    result = apply_edit(start, Edit("move", 0, start.position[0] + drag), keep_center_of_mass=True)
    share = three.mass[0] / three.mass.sum()
    np.testing.assert_allclose(result.position[0], start.position[0] + (1 - share) * drag, atol=ROUND_OFF)


# ----------------------------------------------------------------------------- validation
def test_validate_accepts_good_messages():
    edit = validate_edit({"action": "move", "index": 1, "vector": [1, 2.5, -3]}, num_bodies=3, max_bodies=10)
    assert edit.action == "move" and edit.index == 1
    np.testing.assert_array_equal(edit.vector, [1.0, 2.5, -3.0])
    assert validate_edit({"action": "remove", "index": 2}, num_bodies=3, max_bodies=10) == Edit("remove", 2, None)
    assert validate_edit({"action": "add", "vector": [0, 0, 0]}, num_bodies=3, max_bodies=10).index == -1


@pytest.mark.parametrize("message, words", [
    ("move", "must be a message"),
    ({"action": "explode", "index": 0}, "unknown edit"),
    ({"action": "move", "index": 7, "vector": [0, 0, 0]}, "there is no body 7"),
    ({"action": "move", "index": -1, "vector": [0, 0, 0]}, "there is no body -1"),
    ({"action": "move", "index": True, "vector": [0, 0, 0]}, "whole number"),
    ({"action": "move", "index": 1.5, "vector": [0, 0, 0]}, "whole number"),
    ({"action": "move", "index": 0, "vector": [0, 0]}, "three numbers"),
    ({"action": "move", "index": 0, "vector": "<script>"}, "three numbers"),
    ({"action": "velocity", "index": 0, "vector": [0, math.nan, 0]}, "finite"),
    ({"action": "velocity", "index": 0, "vector": [0, math.inf, 0]}, "finite"),
    ({"action": "add", "vector": [0, "1", 0]}, "finite numbers"),
    ({"action": "add", "vector": [1e300, 0, 0]}, "out of range"),
])
def test_validate_refuses_bad_messages(message, words):
    with pytest.raises(ValueError, match=words):
        validate_edit(message, num_bodies=3, max_bodies=10)


def test_validate_body_count_caps():
    with pytest.raises(ValueError, match="at most 3 bodies"):
        validate_edit({"action": "add", "vector": [0, 0, 0]}, num_bodies=3, max_bodies=3)
    with pytest.raises(ValueError, match="at least 2 bodies"):
        validate_edit({"action": "remove", "index": 0}, num_bodies=2, max_bodies=10)


def test_validate_quotes_at_most_40_characters():
    with pytest.raises(ValueError) as caught:
        validate_edit({"action": "x" * 500}, num_bodies=3, max_bodies=10)
    assert len(str(caught.value)) < 120


# ----------------------------------------------------------------------------- undo / redo
def test_undo_redo_round_trip(three):
    history = EditHistory()
    assert not history.can_undo and not history.can_redo
    first = apply_edit(three, Edit("move", 0, np.array([2.0, 0.0, 0.0])))
    history = edits.record(history, three)
    second = apply_edit(first, Edit("remove", 1, None))
    history = edits.record(history, first)
    history, state = edits.undo(history, second)
    assert state is first and history.can_redo
    history, state = edits.undo(history, state)
    assert state is three and not history.can_undo
    history, state = edits.redo(history, state)
    assert state is first
    history, state = edits.redo(history, state)
    assert state is second and not history.can_redo
    assert state.time == three.time  # time travels with the state


def test_new_edit_drops_redo(three):
    history = edits.record(EditHistory(), three)
    history, _ = edits.undo(history, three)
    assert history.can_redo
    history = edits.record(history, three)
    assert not history.can_redo


def test_undo_and_redo_when_empty_say_so(three):
    with pytest.raises(ValueError, match="nothing to undo"):
        edits.undo(EditHistory(), three)
    with pytest.raises(ValueError, match="nothing to redo"):
        edits.redo(EditHistory(), three)


def test_history_keeps_a_bounded_number_of_values(monkeypatch, three):
    monkeypatch.setattr(edits, "HISTORY_VALUES", 3 * (7 * three.num_bodies + 1))
    history = EditHistory()
    for _ in range(10):
        history = edits.record(history, three)
    assert len(history.undo) == 3
