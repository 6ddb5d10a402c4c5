"""What :func:`~nbody_core.integrate.solve.solve` returns, for every integrator alike.

Contract: a :class:`Solution` is ``(trajectory, stats, result)``: the saved
:class:`~nbody_core.integrate.trajectory.Trajectory`, the run's :class:`Stats` and a
:class:`RESULTS` code, runtime outcomes as an enumeration with messages (diffrax's
``RESULTS``), not free strings.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

import jax
import numpy as np
from jax import Array

from .trajectory import Trajectory

__all__ = ["RESULTS", "Stats", "Solution"]


class RESULTS(enum.IntEnum):
    """How a run ended; ``.message`` says it in words.

    An integer enumeration, so a code computed inside ``jit`` (an int32 array) compares with
    it: ``solution.result == RESULTS.successful`` works traced or not.
    """

    successful = 0
    max_steps_reached = 1
    nonfinite = 2
    step_size_underflow = 3

    def __str__(self) -> str:
        return self.name

    @property
    def message(self) -> str:
        return _MESSAGES[self]

    @classmethod
    def of(cls, code) -> "RESULTS | Array":
        """The member for ``code``; a traced code (inside ``jit``/``grad``) is returned as is."""
        if isinstance(code, jax.core.Tracer):
            return code
        return cls(int(np.asarray(code)))


_MESSAGES = {
    RESULTS.successful: "reached the end time",
    RESULTS.max_steps_reached: "the cap on attempted steps (max_steps) was reached before the end time",
    RESULTS.nonfinite: "the state became non-finite (NaN or infinity)",
    RESULTS.step_size_underflow: "the step size underflowed (the controller could not meet its tolerance)",
}


class Stats(NamedTuple):
    """What a run did (host-side numbers, diffrax's ``stats`` with names).

    Attributes:
        num_steps: steps attempted, accepted and rejected.
        num_accepted_steps: steps kept (a fixed-step run keeps every step).
        num_rejected_steps: steps the controller redid shorter (0 for a fixed-step run).
        num_saves_reached: save intervals completed (snapshots after the initial one); fewer
            than asked only when the run stopped early.
        next_dt: time units: an adaptive controller's step size at the end (pass it as
            ``dt`` to continue a run without restarting step control); a fixed-step run's step.
        max_steps: the cap on attempted steps (adaptive), None for a fixed-step run.
        iterations: IAS15's predictor-corrector passes in all (7 force evaluations each),
            None for the other integrators.
    """

    num_steps: int
    num_accepted_steps: int
    num_rejected_steps: int
    num_saves_reached: int
    next_dt: float
    max_steps: int | None = None
    iterations: int | None = None


class Solution(NamedTuple):
    """One run of any integrator.

    Attributes:
        trajectory: the saved snapshots (:class:`Trajectory`), the initial state first
            (only the end state with ``final_only``); snapshots an adaptive run did not
            reach are NaN.
        stats: :class:`Stats`.
        result: a :class:`RESULTS` member (an int32 code when computed inside ``jit``).
    """

    trajectory: Trajectory
    stats: Stats
    result: RESULTS | Array

    @property
    def final_state(self):
        """The last saved state (:class:`~nbody_core.physics.state.ParticleState`)."""
        return self.trajectory.final_state

    @property
    def message(self) -> str:
        """The result in words, with where the run stopped when it did not succeed (under a
        transformation, where the code is traced: how to read it)."""
        result = RESULTS.of(self.result)
        if not isinstance(result, RESULTS):
            return "the result code is traced: RESULTS(int(result)).message once it is computed"
        if result is RESULTS.successful:
            return result.message
        where = f"after {self.stats.num_saves_reached} save interval(s), {self.stats.num_steps} attempted steps"
        if result is RESULTS.max_steps_reached:
            where = f"max_steps ({self.stats.max_steps}) reached {where}"
        return f"{where}: {result.message}"
