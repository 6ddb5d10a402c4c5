"""Changes to a live run from outside its frame loop: body edits and predict-then-reveal.

What belongs here: :class:`RunEdits`, mixed into :class:`app.state.simulate.SimulationState`
beside :class:`app.state.simulate_run.LiveRun`: the bodies as float64 copies for the editor
(:mod:`app.state.edit_session`), continuing the run from an edited state, and taking over a
state computed ahead by a reveal (:mod:`app.state.predict`). The frame loop itself, faults
and readouts are :mod:`app.state.simulate_run`. No Panel import.
"""

from __future__ import annotations

from collections import deque

import jax
import jax.numpy as jnp
import numpy as np

from app.state.edits import Bodies
from app.state.simulate_run import HISTORY_POINTS, RECORD_VALUES, run_diagnostics
from nbody_core.physics.state import ParticleState

__all__ = ["RunEdits"]


class RunEdits:
    """Edits and reveals of a :class:`~app.state.simulate_run.LiveRun` (same lock, same
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
