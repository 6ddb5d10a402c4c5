"""Editing a paused run: validated edits applied to a live run, with undo and redo.

:class:`EditSession` holds one session's edit history over a run object that offers
``bodies() -> Bodies`` and ``replace_bodies(bodies)`` (:class:`~nbody_explorer.state.simulate.SimulationState`).
Applying an edit is numpy work only (safe on the event loop); :meth:`EditSession.readout`
computes energy and momenta with JAX and belongs on a worker. A reset or rebuild of the run
(its ``generation`` moves on without an edit of ours) clears the history: its states belong
to another run. No Panel import.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Protocol

import jax
import numpy as np
import param

from nbody_explorer.limits import LIMITS
from nbody_explorer.state import edits
from nbody_explorer.state.edits import Bodies, EditHistory
from nbody_core.integrate.trajectory import conserved_quantities
from nbody_core.physics.state import ParticleState, PhysicsParams

__all__ = ["EditSession", "Readout", "EditableRun"]


class EditableRun(Protocol):
    """What :class:`EditSession` needs of a run."""

    generation: int
    physics_params: PhysicsParams
    current: ParticleState

    def bodies(self) -> Bodies: ...

    def replace_bodies(self, bodies: Bodies) -> None: ...


class Readout(NamedTuple):
    """Conserved quantities of one state (for the paused view's readout).

    Attributes:
        energy: total energy (kinetic + potential, softened as the run is), energy units
            (mass x length^2 / time^2).
        momentum: ``[3]`` total linear momentum, mass x length / time units.
        angular_momentum: ``[3]`` total angular momentum about the origin, mass x length^2
            / time units.
        num_bodies: N.
        generation: the run generation the numbers belong to (older ones are stale).
    """

    energy: float
    momentum: np.ndarray
    angular_momentum: np.ndarray
    num_bodies: int
    generation: int

    def text(self) -> str:
        """One line: ``E = -1.287 · |P| = 2.1e-16 · |L| = 0.0 · N = 4`` (numbers only)."""
        return (
            f"E = {self.energy:.6g} · |P| = {float(np.linalg.norm(self.momentum)):.3g}"
            f" · |L| = {float(np.linalg.norm(self.angular_momentum)):.4g} · N = {self.num_bodies}"
        )


_quantities = jax.jit(conserved_quantities)


class EditSession(param.Parameterized):
    """Edits of one run while it is paused: :meth:`apply` a browser message, :meth:`undo`,
    :meth:`redo`; each returns the new :class:`Bodies` (already in the run) or raises
    ``ValueError`` with a message for the user (never applied then)."""

    keep_center_of_mass = param.Boolean(
        True, doc="After each edit, shift every body so that the centre of mass is at rest at the origin.")
    can_undo = param.Boolean(False, constant=True, doc="An edit can be undone.")
    can_redo = param.Boolean(False, constant=True, doc="An undone edit can be redone.")
    edits_applied = param.Integer(0, constant=True, doc="Edits, undos and redos applied so far.")

    def __init__(self, run: EditableRun, *, max_bodies: int | None = None, **params):
        super().__init__(**params)
        self.run = run
        self.max_bodies = LIMITS.max_bodies if max_bodies is None else int(max_bodies)
        self._history = EditHistory()
        self._generation = run.generation

    @property
    def history(self) -> EditHistory:
        """This run's undo/redo history (cleared first if the run was reset or rebuilt)."""
        self.sync()
        return self._history

    def apply(self, message: Any) -> Bodies:
        """Validate ``message`` (see :func:`nbody_explorer.state.edits.validate_edit`) and apply it.

        Raises:
            ValueError: the edit is refused; the run is unchanged.
        """
        self.sync()
        before = self.run.bodies()
        edit = edits.validate_edit(message, num_bodies=before.num_bodies, max_bodies=self.max_bodies)
        after = edits.apply_edit(before, edit, keep_center_of_mass=self.keep_center_of_mass)
        if not (np.isfinite(after.position).all() and np.isfinite(after.velocity).all()):
            raise ValueError("that edit would give a body a non-finite position or velocity")
        self._replace(after, edits.record(self._history, before))
        return after

    def undo(self) -> Bodies:
        """Back to the state before the last edit (its time included).

        Raises:
            ValueError: nothing to undo.
        """
        self.sync()
        history, state = edits.undo(self._history, self.run.bodies())
        self._replace(state, history)
        return state

    def redo(self) -> Bodies:
        """Forward to the state the last undo left.

        Raises:
            ValueError: nothing to redo.
        """
        self.sync()
        history, state = edits.redo(self._history, self.run.bodies())
        self._replace(state, history)
        return state

    def readout(self) -> Readout:
        """Energy and momenta of the run's current state (JAX: call it on a worker)."""
        generation, state, params = self.run.generation, self.run.current, self.run.physics_params
        quantities = jax.device_get(_quantities(state, params))
        energy = float(quantities.energy)
        return Readout(
            energy if math.isfinite(energy) else math.nan,
            np.asarray(quantities.linear_momentum, np.float64),
            np.asarray(quantities.angular_momentum, np.float64),
            int(state.num_bodies),
            generation,
        )

    # ----------------------------------------------------------------- internals
    def _replace(self, bodies: Bodies, history: EditHistory) -> None:
        self.run.replace_bodies(bodies)
        self._generation = self.run.generation
        self._history = history
        self._publish()
        with param.edit_constant(self):
            self.edits_applied += 1

    def sync(self) -> None:
        """Clear the history if the run was reset or rebuilt since our last edit (call it
        after a reset to update ``can_undo`` / ``can_redo`` at once)."""
        if self.run.generation != self._generation:
            self._generation = self.run.generation
            self._history = EditHistory()
            self._publish()

    def _publish(self) -> None:
        with param.edit_constant(self):
            self.param.update(can_undo=self._history.can_undo, can_redo=self._history.can_redo)
