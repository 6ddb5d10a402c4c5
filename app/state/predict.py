"""Predict, then reveal: a student's guesses of where a body will be, and the true answer.

While the Simulate run is paused, a student picks a body and a horizon Δt and places guesses
(points in one projection plane: xy, xz or yz). :func:`true_path` then runs a COPY of the
paused state forward by Δt with the run's own integrator, step and force method; the live run
is not advanced unless the student chooses to continue from the revealed state. Each guess's
distance to the body's true position is measured in the guess's plane (what the student
could see and click), in the preset's length units. One :class:`PredictState` per browser
session; no Panel import.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import numpy as np
import param

from nbody_explorer.state.run_cost import adaptive_step_cap, check_frame_cost, step_seconds, steps_per_piece
from nbody_core.integrate.integrators import get_integrator
from nbody_core.integrate.solution import RESULTS
from nbody_core.integrate.solve import solve
from nbody_core.physics.state import ParticleState, PhysicsParams

__all__ = [
    "PLANES",
    "MAX_GUESSES",
    "MAX_REVEAL_STEPS",
    "MAX_REVEAL_INTERVALS",
    "PATH_SAMPLES",
    "Guess",
    "Reveal",
    "PredictState",
    "true_path",
    "check_reveal",
    "guess_distances",
    "unit_words",
]

#: Projection plane -> the two coordinate axes it shows (as the orbit scene draws them).
PLANES: dict[str, tuple[int, int]] = {"xy": (0, 1), "xz": (0, 2), "yz": (1, 2)}
#: Guesses kept per session (more clicks replace nothing: they are refused in words).
MAX_GUESSES = 12
#: Fixed steps one reveal may take (a reveal is one job on the session's worker: at N = 256
#: a leapfrog step costs ~1 ms here, so this bounds a reveal at a few minutes of one slot).
MAX_REVEAL_STEPS = 200_000
#: Save intervals (the dt of an adaptive run) one reveal may look ahead: a bound on Δt that
#: does not depend on the dynamics (the CPU budget bounds the steps, at run time).
MAX_REVEAL_INTERVALS = 1000
#: Points of the true path sent to the browser (drawn as a polyline).
PATH_SAMPLES = 240


def unit_words(units: str) -> tuple[str, str]:
    """``(time, length)`` unit names of a unit system, for labels: yr and AU for the solar
    system, otherwise N-body units."""
    return ("yr", "AU") if units == "au_msun_yr" else ("time units", "length units")


class Guess(NamedTuple):
    """Where a student thinks the body will be, as clicked in one projection plane.

    Attributes:
        plane: ``"xy"``, ``"xz"`` or ``"yz"``.
        a, b: the two coordinates shown in that plane (x and y for ``"xy"``), length units.
    """

    plane: str
    a: float
    b: float


class Reveal(NamedTuple):
    """The true answer to a set of guesses.

    Attributes:
        body: index of the predicted body.
        start_time: time of the paused state, time units.
        horizon: time actually run, time units (a whole number of steps for fixed-step
            integrators).
        steps: fixed steps taken (accepted steps for an adaptive integrator).
        time: ``[k]`` times along the path, from ``start_time`` to ``start_time + horizon``,
            time units.
        path: ``[k, 3]`` true positions of the body, length units (``path[-1]`` the answer).
        guesses: the guesses scored, in the order placed.
        distances: ``[g]`` distance of each guess to ``path[-1]`` in the guess's plane,
            length units.
        closest: index of the nearest guess (-1 without guesses).
        end_state: the copy's state at ``start_time + horizon`` (to continue from).
        generation: the live run's generation the copy was taken from.
    """

    body: int
    start_time: float
    horizon: float
    steps: int
    time: np.ndarray
    path: np.ndarray
    guesses: tuple[Guess, ...]
    distances: np.ndarray
    closest: int
    end_state: ParticleState
    generation: int


def guess_distances(guesses, final_position) -> np.ndarray:
    """Distance of each guess to the body's true position, measured in the guess's plane.

    Args:
        guesses: ``g`` :class:`Guess` es (coordinates in length units).
        final_position: ``[3]`` the body's true position, length units.

    Returns:
        ``[g]`` float64 distances, length units.
    """
    final = np.asarray(final_position, dtype=float)
    out = np.empty(len(guesses))
    for k, guess in enumerate(guesses):
        i, j = PLANES[guess.plane]
        out[k] = math.hypot(final[i] - guess.a, final[j] - guess.b)
    return out


def true_path(
    state: ParticleState,
    *,
    body: int,
    horizon: float,
    dt: float,
    params: PhysicsParams,
    integrator: str,
    forces: str,
    num_samples: int = PATH_SAMPLES,
    checkpoint: Callable[[], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, ParticleState, int]:
    """Run a copy of ``state`` forward by ``horizon`` and sample one body's path.

    One :func:`nbody_core.solve` with the run's integrator, asked of its record: a fixed-step
    one takes ``round(horizon / dt)`` steps of the live run's ``dt``, saved after near-equal
    numbers of steps; an adaptive one (ias15, dopri8) integrates to ``state.time + horizon``
    saving ``num_samples`` intervals evenly spaced in time. Both run in bounded compiled calls
    (``checkpoint`` between them): at least ``num_samples``, an adaptive one of at most the
    steps that take ~0.1 s (app/state/run_cost.py). A reveal over the per-action CPU budget is
    refused before it starts (:func:`check_reveal`), and an adaptive one stops, in words, at the
    steps that budget buys. ``state`` itself is never changed (JAX
    arrays are immutable).

    Args:
        state: the paused state, ``[n, 3]`` positions.
        body: index of the body whose path is returned.
        horizon: how far ahead, time units (> 0).
        dt: the run's step (fixed-step) or unused by adaptive integrators, time units.
        params: the run's physics parameters (G, softening, ...).
        integrator, forces: the run's integrator and force method.
        num_samples: points along the path (at most; fewer when there are fewer steps).
        checkpoint: called between compiled calls (a pool job's ``checkpoint``: may raise
            to stop the reveal).

    Returns:
        ``(time [k], path [k, 3], end_state, steps)``.

    Raises:
        ValueError: in words, for a bad body or horizon, too many steps, or a run that
            went non-finite or stopped before the horizon.
    """
    n = int(state.num_bodies)
    if not 0 <= int(body) < n:
        raise ValueError(f"body must be one of 0 … {n - 1}, got {body}")
    record = get_integrator(integrator)
    check_reveal(horizon=horizon, dt=dt, integrator=integrator, num_bodies=n)
    piece = steps_per_piece(step_seconds(record.name, n), cap=MAX_REVEAL_STEPS)
    if record.adaptive:
        cap = adaptive_step_cap(record.name, n)
        span = dict(t_end=float(state.time) + horizon, num_saves=int(num_samples), max_steps=cap,
                    steps_per_call=min(cap, piece))
    else:
        steps = max(1, int(round(horizon / dt)))
        span = dict(num_steps=steps, dt=dt, num_saves=min(steps, int(num_samples)))
    solution = solve(
        state, integrator=record, params=params, forces=forces, chunks=span["num_saves"],
        on_chunk=None if checkpoint is None else (lambda done, piece: checkpoint()), **span,
    )
    if solution.result is RESULTS.max_steps_reached:
        raise ValueError(
            f"Δt = {horizon:g} needed more than {solution.stats.max_steps:,} steps of {integrator}, about the CPU "
            "one action may use on this shared server: choose a shorter Δt")
    if solution.result is RESULTS.step_size_underflow:
        raise ValueError(f"the adaptive integrator {integrator} stopped before Δt: {solution.message}")
    trajectory = solution.trajectory
    time, position = jax.device_get((trajectory.time, trajectory.position))
    path, end = np.asarray(position[:, body], float), trajectory.final_state
    if not (np.isfinite(path).all() and np.isfinite(np.asarray(end.velocity)).all()):
        raise ValueError("the run went non-finite within Δt (a close encounter?): add softening or lower dt")
    return np.asarray(time, float), path, end, solution.stats.num_accepted_steps


def check_reveal(*, horizon: float, dt: float, integrator: str, num_bodies: int) -> None:
    """Refuse, in words and before any work, a reveal too far ahead or over the CPU budget.

    Raises:
        ValueError: a bad Δt; fixed-step, more than :data:`MAX_REVEAL_STEPS` steps or an
            estimate over the per-action budget; adaptive, more than
            :data:`MAX_REVEAL_INTERVALS` save intervals dt, or a step too long to be one piece.
    """
    if not (math.isfinite(horizon) and horizon > 0):
        raise ValueError(f"the horizon Δt must be a positive time, got {horizon}")
    if get_integrator(integrator).adaptive:
        if horizon > MAX_REVEAL_INTERVALS * dt:
            raise ValueError(f"Δt = {horizon:g} is more than {MAX_REVEAL_INTERVALS:,} save intervals dt = {dt:g} "
                             "ahead, the most a reveal looks: choose a shorter Δt or a larger dt")
        check_frame_cost(integrator=integrator, adaptive=True, num_bodies=num_bodies, steps=1, what="This reveal")
        return
    steps = max(1, int(round(horizon / dt)))
    if steps > MAX_REVEAL_STEPS:
        raise ValueError(
            f"Δt = {horizon:g} is {steps:,} steps of dt = {dt:g}; a reveal takes at most "
            f"{MAX_REVEAL_STEPS:,}: choose a shorter Δt or a larger dt"
        )
    check_frame_cost(integrator=integrator, adaptive=False, num_bodies=num_bodies, steps=steps, what="This reveal",
                     reduce="Δt or Bodies N")


class PredictState(param.Parameterized):
    """One session's prediction game: the body, the horizon, the guesses and the answer.

    Guesses belong to the moment the run was paused (:meth:`anchor`): a step, a reset or a
    rebuilt run clears them. :meth:`reveal` is seconds of JAX work (call it off the event
    loop); everything else is instant.
    """

    active = param.Boolean(False, doc="Predict mode: clicks on a projection place guesses.")
    body = param.Integer(0, bounds=(0, None), doc="Index of the body to predict (bodies are numbered from 0).")
    horizon = param.Number(1.0, bounds=(0.0, None), inclusive_bounds=(False, True),
                           doc="How far ahead to predict, in the preset's time units.")
    guesses = param.List([], item_type=Guess, doc="Guesses placed so far, in order (at most MAX_GUESSES).")
    result = param.ClassSelector(class_=Reveal, default=None, allow_None=True, doc="The last reveal (None before).")
    error = param.String("", doc="Why the last reveal or guess was refused, in words; empty when it was not.")

    def __init__(self, **params):
        super().__init__(**params)
        self._anchor: tuple[int, float] | None = None
        self.num_bodies = 0

    # ----------------------------------------------------------------- the paused moment
    def anchor(self, generation: int, time: float, num_bodies: int) -> bool:
        """Tie the game to the run's current moment; returns True (and clears guesses and the
        result) when that moment differs from the one the guesses were made at."""
        moment = (int(generation), float(time))
        self.num_bodies = int(num_bodies)
        if self.body >= num_bodies:
            self.body = 0
        if moment == self._anchor:
            return False
        self._anchor = moment
        self.clear()
        return True

    def clear(self) -> None:
        """Forget the guesses and the answer."""
        self.param.update(guesses=[], result=None, error="")

    # ----------------------------------------------------------------- guesses
    def add_guess(self, plane: str, a: float, b: float) -> Guess:
        """Place a guess at ``(a, b)`` in ``plane``; a new guess after a reveal starts a new round.

        Args:
            plane: ``"xy"``, ``"xz"`` or ``"yz"`` (:data:`PLANES`).
            a, b: the plane's two coordinates, length units.

        Raises:
            ValueError: in words, for an unknown plane, a non-finite point or too many guesses.
        """
        if plane not in PLANES:
            raise ValueError(f"guesses are placed in a projection ({', '.join(PLANES)}), not {plane!r}")
        a, b = float(a), float(b)
        if not (math.isfinite(a) and math.isfinite(b)):
            raise ValueError("a guess must be a finite point")
        guesses = [] if self.result is not None else list(self.guesses)
        if len(guesses) >= MAX_GUESSES:
            raise ValueError(f"at most {MAX_GUESSES} guesses: press Reveal, or Clear to start again")
        guess = Guess(plane, a, b)
        self.param.update(guesses=[*guesses, guess], result=None, error="")
        return guess

    def add_guess_message(self, data) -> Guess:
        """:meth:`add_guess` from the browser's ``{"type": "guess", "plane", "a", "b"}`` message
        (anything a tampered client sends is refused in words, never raised as another error).

        Raises:
            ValueError: in words.
        """
        if not isinstance(data, dict):
            raise ValueError("a guess must be a message with a plane and two coordinates")
        try:
            plane, a, b = str(data.get("plane", ""))[:8], float(data["a"]), float(data["b"])
        except (KeyError, TypeError, ValueError):
            raise ValueError("a guess must have a plane and two numeric coordinates") from None
        return self.add_guess(plane, a, b)

    def scene_marks(self, units: str = "nbody") -> dict:
        """What the orbit scene draws (``OrbitScene.predict_marks``, JSON-ready): the guesses
        ``[[plane, a, b]]``, their labels (numbers; with the distance after a reveal), the
        closest guess and the true path ``[[x, y, z]]`` of the body (empty before a reveal)."""
        result = self.result
        guesses = list(result.guesses) if result is not None else list(self.guesses)
        marks = {"guesses": [[g.plane, g.a, g.b] for g in guesses], "labels": [str(k + 1) for k in range(len(guesses))],
                 "closest": -1, "path": []}
        if result is not None:
            length = unit_words(units)[1]
            marks["labels"] = [f"{k + 1}: {d:.4g} {length}" for k, d in enumerate(result.distances)]
            marks["closest"] = result.closest
            marks["path"] = np.asarray(result.path, float).round(9).tolist()
        return marks

    # ----------------------------------------------------------------- the answer
    def compute(self, simulation, checkpoint: Callable[[], None] | None = None) -> Reveal:
        """Run a copy of ``simulation``'s current state forward by :attr:`horizon` and score
        the guesses (seconds of work: call off the event loop). ``simulation`` is a
        :class:`~nbody_explorer.state.simulate.SimulationState` (read, never advanced). Keeps nothing:
        :meth:`accept` stores the result.

        Raises:
            ValueError: in words (see :func:`true_path`).
        """
        state, generation = simulation.current, simulation.generation
        time, path, end, steps = true_path(
            state, body=int(self.body), horizon=float(self.horizon), dt=float(simulation.dt),
            params=simulation.physics_params, integrator=simulation.integrator, forces=simulation.forces,
            checkpoint=checkpoint,
        )
        guesses = tuple(self.guesses)
        distances = guess_distances(guesses, path[-1])
        closest = int(np.argmin(distances)) if guesses else -1
        return Reveal(int(self.body), float(time[0]), float(time[-1] - time[0]), int(steps), time, path,
                      guesses, distances, closest, end, int(generation))

    def accept(self, result: Reveal) -> bool:
        """Keep ``result`` if it still answers the current guesses at the current moment."""
        if self._anchor is not None and result.generation != self._anchor[0]:
            return False
        if tuple(self.guesses) != result.guesses or result.body != self.body:
            return False
        self.param.update(result=result, error="")
        return True

    def reveal(self, simulation, checkpoint: Callable[[], None] | None = None) -> Reveal | None:
        """:meth:`compute` and :meth:`accept`; on a refusal, None with :attr:`error` set."""
        try:
            result = self.compute(simulation, checkpoint)
        except ValueError as error:
            self.error = f"No reveal: {error}"
            return None
        self.accept(result)
        return result

    # ----------------------------------------------------------------- words
    def rows(self, units: str = "nbody") -> list[tuple[str, str, bool]]:
        """``(guess label, distance text, is closest)`` per guess of the result (plain text)."""
        result = self.result
        if result is None:
            return []
        length = unit_words(units)[1]
        return [(f"Guess {k + 1} ({g.plane})", f"{result.distances[k]:.4g} {length}", k == result.closest)
                for k, g in enumerate(result.guesses)]

    def summary(self, units: str = "nbody") -> str:
        """One line in words (plain text: escape before showing as Markdown/HTML)."""
        time_unit, length = unit_words(units)
        if self.result is None:
            count = len(self.guesses)
            if not self.active:
                return "Pause, then Predict: guess where a body will be."
            return (f"Body {self.body}, Δt = {self.horizon:g} {time_unit}: {count} guess{'es' * (count != 1)} "
                    "placed (click a projection to add one), then Reveal.")
        result = self.result
        text = (f"Body {result.body} after Δt = {result.horizon:.4g} {time_unit} "
                f"(t = {result.start_time:.4g} → {result.start_time + result.horizon:.4g}).")
        if result.closest >= 0:
            text += (f" Closest: guess {result.closest + 1}, "
                     f"{result.distances[result.closest]:.4g} {length} away.")
        else:
            text += " No guesses were placed."
        return text
