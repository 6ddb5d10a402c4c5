"""Changes to a live run from outside its frame loop: body edits and predict-then-reveal.

What belongs here: :class:`RunEdits`, mixed into :class:`nbody_explorer.state.simulate.SimulationState`
beside :class:`nbody_explorer.state.simulate_run.LiveRun`: the bodies as float64 copies for the editor
(:mod:`nbody_explorer.state.edit_session`), continuing the run from an edited state, and taking over a
state computed ahead by a reveal (:mod:`nbody_explorer.state.predict`), and going back to a frame
computed ahead but not played yet (:meth:`RunEdits.saved_point` / :meth:`RunEdits.rewind`,
for the streamed live view: Pause and every edit resume where the user saw the run). The
frame loop itself, faults and readouts are :mod:`nbody_explorer.state.simulate_run`. No Panel import.
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nbody_explorer.state.edits import Bodies
from nbody_explorer.state.simulate_run import HISTORY_POINTS, RECORD_VALUES, run_diagnostics
from nbody_core.physics.state import ParticleState

__all__ = ["RunEdits", "RunPoint"]


class RunPoint(NamedTuple):
    """Everything :meth:`RunEdits.rewind` needs to make a frame the current one again: the
    full-precision state (the device arrays themselves: immutable, so exact) and the run's
    counters and clock at that frame. Opaque to callers; take it with :meth:`RunEdits.saved_point`."""

    generation: int
    frames_taken: int
    current: Any
    time: float
    clock: tuple
    position: np.ndarray
    velocity: np.ndarray
    energy: float | None
    steps_taken: int
    next_dt: float | None
    nonfinite: bool
    fault: Any


class RunEdits:
    """Edits and reveals of a :class:`~nbody_explorer.state.simulate_run.LiveRun` (same lock, same
    generation counter: a change here makes results computed for the old run stale)."""

    def bodies(self) -> Bodies:
        """Float64 copies of the current positions, velocities and masses, and the time
        (the run is built here first if it is not yet)."""
        self._built("_current")
        with self._lock:
            return Bodies.of(self._position_np, self._velocity_np, self._mass_np, self._time)

    def replace_bodies(self, bodies: Bodies) -> None:
        """Continue the run from ``bodies`` (an edited state; N may differ): a new generation
        whose reference quantities (:meth:`prepare`), plots and recording start here. The
        settings, the time, the step counters and ``initial`` (what Reset goes back to) stay."""
        with self._lock:
            dtype = self.dtype
            state = ParticleState(
                jnp.asarray(bodies.position, dtype), jnp.asarray(bodies.velocity, dtype),
                jnp.asarray(bodies.mass, dtype), jnp.asarray(bodies.time, dtype), units=self.units,
            )
            self._generation += 1
            self._current = state
            self._reference = None
            # What the run holds (cast to its precision), not the float64 edit: the readout
            # and the next frame agree.
            self._position_np = np.asarray(state.position, np.float64)
            self._velocity_np = np.asarray(state.velocity, np.float64)
            self._mass_np = np.asarray(state.mass, np.float64)
            self._time = float(bodies.time)
            self._clock = (self._time, None, 0)
            self._new_history = []
            self._history = deque(maxlen=HISTORY_POINTS)
            self._record_frames = max(2, RECORD_VALUES // (7 * state.num_bodies + 8))
            self._record = deque(maxlen=self._record_frames)
            self.nonfinite = False
            self.fault = None
            self.energy_warning = None
            self._next_dt = None

    def continue_from(self, state: ParticleState, *, steps: int, generation: int) -> bool:
        """Make ``state``, computed elsewhere from this run's current state ``steps`` steps
        ahead (a predict-mode reveal, app/state/predict.py), the current one, as if the run had
        played there: one more diagnostics point and recorded frame. JAX work: call off the
        event loop.

        Args:
            state: the later state (same bodies and dtype as :attr:`current`).
            steps: steps it is ahead of the current state (accepted steps when adaptive).
            generation: :attr:`generation` of the run it was computed from.

        Returns:
            False (nothing changed) when the run was rebuilt since, is not ready, or ``state``
            is not finite.
        """
        quantities, _, _ = run_diagnostics(state, self.physics_params)
        host, quantities = jax.device_get((state, quantities))
        with self._lock:
            if generation != self._generation or self._reference is None or not self._finite(host, quantities):
                return False
            self._commit(state, host, quantities, int(steps))  # at the state's own time
            return True

    def saved_point(self) -> RunPoint | None:
        """The run as it is now, to come back to with :meth:`rewind` (None before it is built).
        Copies two ``[n, 3]`` arrays, runs no JAX."""
        with self._lock:
            if self._current is None:
                return None
            return RunPoint(self._generation, self.frames_taken, self._current, self._time, self._clock,
                            self._position_np.copy(), self._velocity_np.copy(), self._energy, self.steps_taken,
                            self._next_dt, self.nonfinite, self.fault)

    def rewind(self, point: RunPoint) -> bool:
        """Make the frame ``point`` was taken at the current one again, forgetting the frames
        computed after it (their diagnostics points and recorded frames): the streamed view's
        Pause, an edit or a new setting continue from the frame the browser played, not from
        the newest one computed ahead. Runs no JAX.

        Returns:
            False (nothing changed) when the run was reset or rebuilt since ``point`` was
            taken, or ``point`` is later than the current frame.
        """
        with self._lock:
            later = self.frames_taken - point.frames_taken
            if point.generation != self._generation or self._current is None or later < 0:
                return False
            for frames in (self._history, self._record, self._new_history):
                for _ in range(min(later, len(frames))):
                    frames.pop()
            self._current, self._time, self._clock = point.current, point.time, point.clock
            self._position_np, self._velocity_np = point.position.copy(), point.velocity.copy()
            self._energy, self.steps_taken, self.frames_taken = point.energy, point.steps_taken, point.frames_taken
            self._next_dt, self.nonfinite, self.fault = point.next_dt, point.nonfinite, point.fault
            self._rewinds += 1  # a frame being computed from the later state is not committed
            return True
