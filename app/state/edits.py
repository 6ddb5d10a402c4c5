"""Direct edits of a paused run: move a body, set its velocity, add one, remove one.

Pure functions over :class:`Bodies` (float64 numpy copies of the particle arrays and the
time), :func:`validate_edit` turning a browser's edit message into an :class:`Edit` (or a
``ValueError`` that names the problem), :func:`apply_edit`, and an immutable undo/redo
:class:`EditHistory`. No Panel and no JAX here: the caller builds the new run from the
result and recomputes energy and momentum on its worker.

Choices (also in docs/dashboard.md): a body added by shift-click gets the median mass of the
bodies already there and is at rest in their centre-of-mass frame (it carries no momentum
of its own: the student gives it a velocity by dragging its arrow); with "keep
centre-of-mass frame" on, every edit ends with a shift of all positions and velocities so
that the centre of mass sits at rest at the origin (the dragged body then lands where it
was dropped less the centre of mass's own move, ``m_i / M`` of the drag).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Mapping, NamedTuple

import numpy as np

__all__ = [
    "ACTIONS",
    "MAX_COORDINATE",
    "MIN_BODIES",
    "Bodies",
    "Edit",
    "EditHistory",
    "add_body",
    "apply_edit",
    "center_of_mass",
    "move_body",
    "record",
    "redo",
    "remove_body",
    "set_velocity",
    "to_center_of_mass_frame",
    "undo",
    "validate_edit",
]

#: What the browser may ask for: ``move`` (new position), ``velocity`` (new velocity),
#: ``add`` (a body at a position), ``remove`` (a body by index).
ACTIONS = ("move", "velocity", "add", "remove")
#: Fewest bodies a run keeps (an N-body run of one body has nothing to show).
MIN_BODIES = 2
#: Largest coordinate or velocity component accepted, simulation units. Far beyond any
#: preset's scale (the solar system spans ~30 AU), and its square stays finite in float32
#: (3.4e38): energies of an edited state never overflow in a float32 run.
MAX_COORDINATE = 1e15
#: Floats kept in one history (undo and redo together): about 16 MB of float64 per session.
HISTORY_VALUES = 2_000_000


class Bodies(NamedTuple):
    """The editable part of a run, as float64 numpy arrays (never shared with the run).

    Attributes:
        position: ``[n, 3]`` positions, length units.
        velocity: ``[n, 3]`` velocities, length / time units.
        mass: ``[n]`` masses, mass units (all positive).
        time: simulation time, time units (kept by edits; restored by undo).
    """

    position: np.ndarray
    velocity: np.ndarray
    mass: np.ndarray
    time: float = 0.0

    @property
    def num_bodies(self) -> int:
        """N, the number of bodies."""
        return int(self.mass.shape[0])

    @classmethod
    def of(cls, position, velocity, mass, time: float = 0.0) -> "Bodies":
        """Float64 copies of the given arrays (so an edit never writes into a run's arrays).

        Args:
            position: ``[n, 3]`` (or ``3 n`` values), length units.
            velocity: ``[n, 3]`` (or ``3 n`` values), length / time units.
            mass: ``[n]`` masses, mass units.
            time: simulation time, time units.
        """
        return cls(
            np.array(position, np.float64).reshape(-1, 3),
            np.array(velocity, np.float64).reshape(-1, 3),
            np.array(mass, np.float64).reshape(-1),
            float(time),
        )


class Edit(NamedTuple):
    """One validated edit.

    Attributes:
        action: one of :data:`ACTIONS`.
        index: the body edited (``move``, ``velocity``, ``remove``); -1 for ``add``.
        vector: ``[3]`` new position (``move``, ``add``) or velocity (``velocity``),
            simulation units; None for ``remove``.
    """

    action: str
    index: int = -1
    vector: np.ndarray | None = None


# ----------------------------------------------------------------------------- queries
def center_of_mass(bodies: Bodies) -> tuple[np.ndarray, np.ndarray]:
    """``([3] position, [3] velocity)`` of the centre of mass (length, length / time units)."""
    total = bodies.mass.sum()
    return bodies.mass @ bodies.position / total, bodies.mass @ bodies.velocity / total


# ----------------------------------------------------------------------------- edits
def move_body(bodies: Bodies, index: int, position) -> Bodies:
    """Body ``index`` placed at ``position`` (``[3]``, length units); the rest unchanged."""
    new = bodies.position.copy()
    new[index] = np.asarray(position, np.float64)
    return bodies._replace(position=new)


def set_velocity(bodies: Bodies, index: int, velocity) -> Bodies:
    """Body ``index`` given ``velocity`` (``[3]``, length / time units)."""
    new = bodies.velocity.copy()
    new[index] = np.asarray(velocity, np.float64)
    return bodies._replace(velocity=new)


def add_body(bodies: Bodies, position, *, mass: float | None = None, velocity=None) -> Bodies:
    """One more body, appended (it gets the last index).

    Args:
        bodies: the current bodies.
        position: ``[3]`` position of the new body, length units.
        mass: its mass; default the median of the current masses (a typical body).
        velocity: ``[3]`` its velocity; default the centre-of-mass velocity of the current
            bodies (at rest in their centre-of-mass frame: it adds no momentum there).
    """
    if mass is None:
        mass = float(np.median(bodies.mass))
    if velocity is None:
        velocity = center_of_mass(bodies)[1]
    return Bodies(
        np.vstack([bodies.position, np.asarray(position, np.float64).reshape(1, 3)]),
        np.vstack([bodies.velocity, np.asarray(velocity, np.float64).reshape(1, 3)]),
        np.append(bodies.mass, float(mass)),
        bodies.time,
    )


def remove_body(bodies: Bodies, index: int) -> Bodies:
    """Body ``index`` taken out (later bodies move down one index)."""
    keep = np.arange(bodies.num_bodies) != index
    return Bodies(bodies.position[keep], bodies.velocity[keep], bodies.mass[keep], bodies.time)


def to_center_of_mass_frame(bodies: Bodies) -> Bodies:
    """Every position and velocity shifted so the centre of mass is at rest at the origin
    (total momentum zero; energy changes by the kinetic energy of the centre of mass)."""
    position, velocity = center_of_mass(bodies)
    return bodies._replace(position=bodies.position - position, velocity=bodies.velocity - velocity)


def apply_edit(bodies: Bodies, edit: Edit, *, keep_center_of_mass: bool = True) -> Bodies:
    """``bodies`` after ``edit`` (validated with :func:`validate_edit`), then shifted to the
    centre-of-mass frame when ``keep_center_of_mass``."""
    if edit.action == "move":
        result = move_body(bodies, edit.index, edit.vector)
    elif edit.action == "velocity":
        result = set_velocity(bodies, edit.index, edit.vector)
    elif edit.action == "add":
        result = add_body(bodies, edit.vector)
    elif edit.action == "remove":
        result = remove_body(bodies, edit.index)
    else:
        raise ValueError(f"unknown edit action {edit.action!r}")
    return to_center_of_mass_frame(result) if keep_center_of_mass else result


# ----------------------------------------------------------------------------- validation
def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _index(message: Mapping, num_bodies: int) -> int:
    index = message.get("index")
    if isinstance(index, bool) or not isinstance(index, Integral):
        raise ValueError(f"body index must be a whole number, got {_short(index)}")
    if not 0 <= index < num_bodies:
        raise ValueError(f"there is no body {int(index)}: the run has bodies 0 to {num_bodies - 1}")
    return int(index)


def _vector(message: Mapping, what: str) -> np.ndarray:
    vector = message.get("vector")
    if not isinstance(vector, (list, tuple)) or len(vector) != 3:
        raise ValueError(f"the new {what} must be three numbers, got {_short(vector)}")
    values = []
    for value in vector:
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
            raise ValueError(f"the new {what} must be finite numbers, got {_short(vector)}")
        if abs(float(value)) > MAX_COORDINATE:
            raise ValueError(f"the new {what} {_short(vector)} is out of range (|value| <= {MAX_COORDINATE:g})")
        values.append(float(value))
    return np.array(values, np.float64)


def validate_edit(message: Any, *, num_bodies: int, max_bodies: int) -> Edit:
    """Check an edit message from the browser and return it as an :class:`Edit`.

    Args:
        message: ``{"action": "move" | "velocity" | "add" | "remove", "index": int,
            "vector": [x, y, z]}`` (index for move/velocity/remove, vector for move/velocity/add).
        num_bodies: bodies in the run now.
        max_bodies: the server's cap on N (``LIMITS.max_bodies``).

    Returns:
        The edit, with the vector as a float64 ``[3]`` array.

    Raises:
        ValueError: naming what is wrong (unknown action, no such body, a vector that is not
            three finite numbers, too many bodies, fewer than :data:`MIN_BODIES` left). The
            text quotes at most 40 characters of the bad value; HTML-escape it to show it.
    """
    if not isinstance(message, Mapping):
        raise ValueError(f"an edit must be a message with an action, got {_short(message)}")
    action = message.get("action")
    if action not in ACTIONS:
        raise ValueError(f"unknown edit {_short(action)}: expected one of {', '.join(ACTIONS)}")
    if action == "add":
        if num_bodies + 1 > max_bodies:
            raise ValueError(f"cannot add a body: this server allows at most {max_bodies} bodies")
        return Edit("add", -1, _vector(message, "position"))
    index = _index(message, num_bodies)
    if action == "remove":
        if num_bodies - 1 < MIN_BODIES:
            raise ValueError(f"cannot remove a body: a run keeps at least {MIN_BODIES} bodies")
        return Edit("remove", index, None)
    return Edit(action, index, _vector(message, "position" if action == "move" else "velocity"))


# ----------------------------------------------------------------------------- undo / redo
@dataclass(frozen=True)
class EditHistory:
    """States to go back to (``undo``, most recent last) and forward to (``redo``).

    Immutable: :func:`record`, :func:`undo` and :func:`redo` return a new history. At most
    :data:`HISTORY_VALUES` floats are kept; the oldest undo states go first.
    """

    undo: tuple[Bodies, ...] = ()
    redo: tuple[Bodies, ...] = ()

    @property
    def can_undo(self) -> bool:
        return bool(self.undo)

    @property
    def can_redo(self) -> bool:
        return bool(self.redo)


def _size(bodies: Bodies) -> int:
    return 7 * bodies.num_bodies + 1


def _trim(states: tuple[Bodies, ...], budget: int) -> tuple[Bodies, ...]:
    kept, used = [], 0
    for state in reversed(states):  # newest first
        used += _size(state)
        if used > budget and kept:
            break
        kept.append(state)
    return tuple(reversed(kept))


def record(history: EditHistory, before: Bodies) -> EditHistory:
    """The history after an edit made to ``before``: ``before`` can be undone to, and the
    redo states are dropped (a new edit starts a new branch)."""
    return EditHistory(_trim((*history.undo, before), HISTORY_VALUES), ())


def undo(history: EditHistory, current: Bodies) -> tuple[EditHistory, Bodies]:
    """``(history, state)``: the state before the last edit, ``current`` kept for redo.

    Raises:
        ValueError: there is nothing to undo.
    """
    if not history.undo:
        raise ValueError("nothing to undo")
    *rest, previous = history.undo
    return EditHistory(tuple(rest), _trim((*history.redo, current), HISTORY_VALUES)), previous


def redo(history: EditHistory, current: Bodies) -> tuple[EditHistory, Bodies]:
    """``(history, state)``: the state the last undo left, ``current`` kept for undo.

    Raises:
        ValueError: there is nothing to redo.
    """
    if not history.redo:
        raise ValueError("nothing to redo")
    *rest, following = history.redo
    return EditHistory(_trim((*history.undo, current), HISTORY_VALUES), tuple(rest)), following
