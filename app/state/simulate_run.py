"""The run machinery of the Simulate tab: build, compile, advance and record one live run.

:class:`LiveRun` is the half of :class:`nbody_explorer.state.simulate.SimulationState` that touches JAX:
:meth:`LiveRun.reset` (new initial state, history cleared), :meth:`LiveRun.prepare`
(compile, reference conserved quantities; safe on a worker thread), :meth:`LiveRun.step_frame`
(one animation frame: one :func:`nbody_core.solve` over the frame's span from the current state,
any integrator, in bounded compiled calls), fault and energy warnings, and the readouts the view draws (``time``, ``position``, :meth:`LiveRun.live_frame`).
Parameters, presets, URL settings and uploads live in :mod:`nbody_explorer.state.simulate`; the host
class provides ``dt``, ``steps_per_frame``, ``integrator``, ``forces``, ``precision``,
``softening``, ``dtype``, ``physics_params``, ``adaptive``, ``body_count``,
``_initial_state()`` and ``_initial_time()``.

:meth:`LiveRun.reset` runs no JAX (it only forgets the old run), so the event loop may call
it; the initial state is made by :meth:`LiveRun.build` (a Plummer sphere's first build
compiles its sampler for ~1.5 s), which :meth:`LiveRun.prepare` calls on a worker. Readouts
that need the state (``current``, ``position``, ...) build it on first use; the view reads
:meth:`LiveRun.run_snapshot`, which never does. No Panel import.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nbody_explorer.limits import LIMITS
from nbody_explorer.state.run_cost import ADAPTIVE_MAX_STEPS, PIECE_S, adaptive_step_cap, check_frame_cost, steps_per_piece
from nbody_explorer.state.run_messages import ENERGY_WARNING_LEVEL, energy_warning, fault_message
from nbody_core.integrate.integrators import Integrator, get_integrator
from nbody_core.integrate.solution import RESULTS, Solution
from nbody_core.integrate.solve import solve
from nbody_core.integrate.trajectory import ConservedQuantities, Trajectory, conserved_quantities
from nbody_core.physics.state import ParticleState, PhysicsParams, cast_state

__all__ = ["ADAPTIVE_MAX_STEPS", "PIECE_S", "ERROR_FLOOR", "HISTORY_POINTS", "RECORD_VALUES", "FrameDiagnostics", "LiveRun", "RunFault", "run_diagnostics"]

RECORD_VALUES = 4_000_000  # floats of recorded trajectory kept for download (~32 MB)
HISTORY_POINTS = 20_000  # diagnostic points kept for the live plots
# A frame, fixed-step or adaptive, runs in compiled calls of about PIECE_S (app/state/run_cost.py)
# with the cancel check and the scheduler's turn between them: Pause, Reset or a preset change
# act within one piece (a frame of 200 steps at N = 2000 takes seconds).
ERROR_FLOOR = 1e-17  # below float64 round-off; keeps exact zeros drawable on a log axis


@jax.jit
def _end_of(trajectory: Trajectory) -> tuple[ParticleState, ConservedQuantities]:
    """The last snapshot of a frame's trajectory and its conserved quantities, in one dispatch
    (six eager slices cost ~1 ms a frame at load ~10)."""
    return trajectory.final_state, ConservedQuantities(
        trajectory.energy[-1], trajectory.linear_momentum[-1], trajectory.angular_momentum[-1])


@jax.jit
def run_diagnostics(state: ParticleState, params: PhysicsParams):
    """Energy, linear momentum ``[3]``, angular momentum ``[3]`` and their scales."""
    quantities = conserved_quantities(state, params)
    speed = jnp.linalg.norm(state.velocity, axis=-1)
    lever = jnp.linalg.norm(jnp.cross(state.position, state.velocity), axis=-1)
    return quantities, jnp.sum(state.mass * speed), jnp.sum(state.mass * lever)


class FrameDiagnostics(NamedTuple):
    """Diagnostics of the frames produced since the last call to ``take_new_history``.

    Attributes:
        time: ``[k]`` simulation times.
        energy_error: ``[k]`` ``|E - E0| / |E0|``.
        momentum_error: ``[k]`` ``|P - P0| / sum_i m_i |v_i(0)|``.
        angular_momentum_error: ``[k]`` ``|L - L0| / sum_i m_i |r_i(0) x v_i(0)|``.
    """

    time: np.ndarray
    energy_error: np.ndarray
    momentum_error: np.ndarray
    angular_momentum_error: np.ndarray


class RunFault(NamedTuple):
    """Where and why a live run stopped (see :meth:`LiveRun.step_frame`).

    Attributes:
        step: the first step whose result is not finite (counted from the initial state).
        time: simulation time of the last good state, which the run keeps.
        message: what happened, the likely cause and what to do, for the user.
    """

    step: int
    time: float
    message: str


class _FrameDropped(Exception):
    """Raised between a frame's compiled calls to drop it (cancelled, or the run was reset)."""


class _Reference(NamedTuple):
    energy: float
    linear_momentum: np.ndarray
    angular_momentum: np.ndarray
    momentum_scale: float
    angular_momentum_scale: float


class LiveRun:
    """The live run of one session (mixed into :class:`~nbody_explorer.state.simulate.SimulationState`).

    Call :meth:`prepare` (compiles if needed; safe in a worker thread) and then
    :meth:`step_frame` per animation frame; :meth:`reset` starts over from the initial
    conditions. Every piece of run state is guarded by ``_lock`` (an ``RLock`` the host
    creates before its first :meth:`reset`).
    """

    @property
    def accepted_steps_per_second(self) -> float:
        """Accepted adaptive steps per wall-clock second over the last frame (0 before one)."""
        return self._last_accepted / self.last_frame_seconds if self.last_frame_seconds > 0 else 0.0

    @property
    def ready(self) -> bool:
        """True once the reference conserved quantities of this run are known."""
        return self._reference is not None

    @property
    def generation(self) -> int:
        """Counter bumped by every reset (a worker's result for an older run is stale)."""
        return self._generation

    @property
    def built(self) -> bool:
        """True once the initial state of this run exists (see :meth:`build`)."""
        return self._current is not None

    def reset(self) -> None:
        """Start over from the initial conditions of the current configuration, with all
        history cleared. Runs no JAX: the initial state is made later by :meth:`build`."""
        with self._lock:
            self._generation += 1
            self._rewinds = getattr(self, "_rewinds", 0)  # bumped by RunEdits.rewind: a frame computing then is dropped
            self._initial: ParticleState | None = None
            self._current: ParticleState | None = None
            self._reference: _Reference | None = None
            self._position_np = self._velocity_np = self._mass_np = None
            self._time = self._initial_time()
            self._clock: tuple[float, float | None, int] = (self._time, None, 0)  # see _clock_after
            self.steps_taken = 0
            self.frames_taken = 0
            self._new_history: list[tuple[float, float, float, float]] = []
            self._history: deque = deque(maxlen=HISTORY_POINTS)
            self._record_frames = max(2, RECORD_VALUES // (7 * self.body_count + 8))
            self._record: deque = deque(maxlen=self._record_frames)
            self.last_frame_seconds = 0.0
            self.nonfinite = False
            self.fault: RunFault | None = None
            self.energy_warning: str | None = None
            self._chunk_steps = 1  # steps per compiled call (piece), adapted to PIECE_S by step_frame
            self.last_frame_pieces: list[tuple[int, float]] = []  # (steps, seconds) of each piece of the last frame
            self._energy: float | None = None  # energy of the current state (known once prepared)
            self._next_dt: float | None = None  # adaptive step size carried from frame to frame
            self._last_accepted = 0  # accepted adaptive steps in the last frame
            self.rejected_steps = 0

    def build(self) -> bool:
        """Make the initial state of this run if it is not made yet (JAX; call it on a worker
        where the caller must stay responsive). The state's lock is not held meanwhile.

        Returns:
            True when the run of the current generation is built; False when a reset came
            in while it was being made (its result is dropped: call again).
        """
        with self._lock:
            if self._current is not None:
                return True
            generation, dtype = self._generation, self.dtype
        # Parameters read here may change meanwhile; every such change resets (new generation).
        initial = cast_state(self._initial_state(), dtype)
        host = jax.device_get(initial)
        with self._lock:
            if generation != self._generation:
                return False
            if self._current is None:
                self._initial = self._current = initial
                self._position_np = np.asarray(host.position, np.float64)
                self._velocity_np = np.asarray(host.velocity, np.float64)
                self._mass_np = np.asarray(host.mass, np.float64)
                self._time = float(host.time)
        return True

    def _built(self, name: str):
        """The attribute ``name`` of the built run (built here first if needed)."""
        while True:
            value = getattr(self, name)
            if value is not None:
                return value
            self.build()

    def prepare(self) -> float:
        """Compile the frame function for this configuration if needed, and compute the
        reference conserved quantities. Safe to call from a worker thread.

        Returns:
            Seconds spent (compilation included).
        """
        start = time.perf_counter()
        while True:
            self.build()
            with self._lock:
                generation, state = self._generation, self._current
                record, forces = get_integrator(self.integrator), self.forces
                params = self.physics_params
                dt = float(self.dt)
            if state is not None:
                break
        quantities, momentum_scale, angular_scale = jax.device_get(run_diagnostics(state, params))
        # Compile the frame's call: the step count (fixed-step), the save times and step size
        # (adaptive) and the params are traced, and the compiled function is keyed by hashable
        # records (integrator, force method, potential) and the state's shape, so later frames,
        # slider moves and every session of the process reuse it. The result is discarded.
        # Two steps in two calls (an adaptive run is cut at its step cap, which is traced: the
        # same compiled calls as a frame's; the second call takes the first's device arrays, a
        # second entry of the jit cache that a frame of several pieces uses), then the same
        # again, timed, sets the first frame's pieces.
        span = dict(self._frame_span(record, steps=2, dt=dt, t_end=float(state.time) + dt, next_dt=None, cap=2),
                    steps_per_call=1)
        chunk_steps = None
        try:
            self.check_frame_cost()  # a frame Play would refuse: nothing compiled or timed for it
        except ValueError:
            span = None
        if span is not None:
            self._solve_frame(state, record, forces, params, span)
            call_start = time.perf_counter()
            self._solve_frame(state, record, forces, params, span)
            chunk_steps = self._steps_per_call((time.perf_counter() - call_start) / 2)
        reference = _Reference(
            float(quantities.energy),
            np.asarray(quantities.linear_momentum, np.float64),
            np.asarray(quantities.angular_momentum, np.float64),
            float(momentum_scale),
            float(angular_scale),
        )
        with self._lock:
            if generation == self._generation and self._reference is None:
                self._reference = reference
                self._energy = reference.energy
                self._chunk_steps = chunk_steps or self._chunk_steps
                self._record_snapshot(quantities)
        return time.perf_counter() - start

    def _frame_span(self, record: Integrator, *, steps: int, dt: float, t_end: float, next_dt,
                    cap: int | None = None) -> dict:
        """What :func:`nbody_core.solve` needs for one frame, asked of the integrator's record:
        ``steps`` steps of ``dt`` (fixed-step), or the span to ``t_end`` starting from the step
        size the previous frame ended with, at most ``cap`` attempted steps (adaptive: default,
        what the per-action CPU budget buys, :func:`~nbody_explorer.state.run_cost.adaptive_step_cap`);
        either in compiled calls of :attr:`_chunk_steps` steps (about :data:`PIECE_S` each)."""
        if record.adaptive:
            cap = adaptive_step_cap(record.name, self.body_count) if cap is None else cap
            return dict(t_end=t_end, dt=next_dt, max_steps=cap, steps_per_call=min(cap, self._chunk_steps))
        return dict(num_steps=steps, dt=dt, steps_per_call=max(1, min(steps, self._chunk_steps)))

    def check_frame_cost(self) -> None:
        """Refuse, in words, a frame of these settings that is over the per-action CPU budget,
        or an adaptive step too long to be one piece (:func:`nbody_explorer.state.run_cost.check_frame_cost`).

        Raises:
            ValueError: the estimate and what to change, in the labels the page shows.
        """
        check_frame_cost(integrator=self.integrator, adaptive=self.adaptive, num_bodies=self.body_count,
                         steps=int(self.steps_per_frame))

    @staticmethod
    def _solve_frame(state, record, forces, params, span, on_chunk=None) -> Solution:
        """One frame: the end state only (``final_only``: one compiled function whatever the
        step count or split)."""
        return solve(state, integrator=record, forces=forces, params=params, final_only=True, on_chunk=on_chunk,
                     **span)

    @staticmethod
    def _steps_per_call(seconds_per_step: float) -> int:
        return steps_per_piece(seconds_per_step, cap=ADAPTIVE_MAX_STEPS)

    def step_frame(self, cancelled: Callable[[], bool] | None = None) -> FrameDiagnostics | None:
        """Advance by one frame and record its diagnostics: ``steps_per_frame`` steps of
        ``dt`` (fixed-step), or ``steps_per_frame`` x ``dt`` of time (adaptive, from the step
        size the previous frame ended with), through one :func:`nbody_core.solve`.

        The steps run outside the state's lock, a fixed-step frame in compiled calls of about
        :data:`CALL_BUDGET_S` each (the step count is traced, so any split reuses the same
        compiled function), so :meth:`reset` never waits for a frame and a stop acts within
        one call. The frame is committed only if the run was not rebuilt meanwhile.

        Args:
            cancelled: polled between calls; when it returns True the frame is dropped.

        Returns:
            The diagnostics of this frame (one point), or None when the frame was dropped:
            cancelled, or the run was reset or rebuilt while it was computed (its result
            belongs to an older run and is never recorded or drawn).
        """
        self.check_frame_cost()
        if not self.ready:
            self.prepare()
        with self._lock:
            if self._reference is None:
                return None  # reset between prepare() and here: the caller asks again
            generation, rewinds = self._generation, self._rewinds
            params = self.physics_params
            steps = int(self.steps_per_frame)
            dt = float(self.dt)
            record, forces = get_integrator(self.integrator), self.forces
            previous = self._current
            next_dt, reference_energy, start_energy = self._next_dt, self._reference.energy, self._energy
            t_end, _ = self._clock_after(dt, steps)
            span = self._frame_span(record, steps=steps, dt=dt, t_end=t_end, next_dt=next_dt)
        start = time.perf_counter()
        pieces: list[tuple[int, float]] = []
        self.last_frame_pieces = pieces
        piece_start = [start, 0]  # when the running piece started, steps before it

        def between_calls(done: int, piece) -> None:
            # Adaptive: ``done`` counts save intervals, not steps: the steps of a piece are
            # what it was allowed (the last one may take fewer).
            now = time.perf_counter()
            steps = done - piece_start[1] if not record.adaptive else span["steps_per_call"]
            pieces.append((steps, now - piece_start[0]))
            if steps > 0 and not (record.adaptive and done):  # an adaptive frame's last piece may stop short
                self._chunk_steps = self._steps_per_call((now - piece_start[0]) / steps)
            if (cancelled is not None and cancelled()) or generation != self._generation:
                raise _FrameDropped
            piece_start[:] = [time.perf_counter(), done]  # the wait for a turn is not the piece's

        # The live view checks the energy error of each frame's END state (computed with it),
        # not of every step: per-step tracking (solve(..., track_energy=True), one potential
        # per step) measured x1.31 (N = 200, 1 step/frame), x1.83 (N = 256, 10 steps/frame),
        # x1.45 (N = 1000) the cost of a plain step on this machine, far above the ~15 % a live
        # frame can spare. The adaptive integrators track every accepted step anyway; the
        # CLI/API reports keep per-step tracking.
        try:
            if (cancelled is not None and cancelled()) or generation != self._generation:
                return None
            solution = self._solve_frame(previous, record, forces, params, span, between_calls)
        except _FrameDropped:
            return None
        trajectory = solution.trajectory
        state, quantities = _end_of(trajectory)
        host, quantities = jax.device_get((state, quantities))
        with self._lock:
            if generation != self._generation or rewinds != self._rewinds:
                return None  # reset, rebuilt, or rewound to a played frame (RunEdits.rewind) meanwhile
            self.fault = None
            if solution.result is not RESULTS.successful or not self._finite(host, quantities):
                # Nothing non-finite is kept or drawn: the last good state is kept instead.
                self._stop_at_fault(record, previous, params, dt, t_end, solution)
                self.last_frame_seconds = time.perf_counter() - start
                return FrameDiagnostics(*(np.empty(0) for _ in range(4)))
            stats = solution.stats
            self._next_dt = stats.next_dt if record.adaptive else None
            self._last_accepted = stats.num_accepted_steps
            self.rejected_steps += stats.num_rejected_steps
            point = self._commit(state, host, quantities, stats.num_accepted_steps, dt=dt, units=steps)
            worst = point[1]
            if trajectory.max_relative_energy_error is not None:
                # Worst error over every accepted step: the frame's own (relative to its start
                # energy) on top of where the frame started.
                scale = abs(reference_energy) or 1.0
                within = float(trajectory.max_relative_energy_error) * abs(start_energy) / scale
                worst = max(worst, abs(start_energy - reference_energy) / scale + within)
            if self.energy_warning is None and worst > ENERGY_WARNING_LEVEL:
                self.energy_warning = self._energy_message(worst)
            self.last_frame_seconds = time.perf_counter() - start
            return FrameDiagnostics(*(np.array([v]) for v in point))

    def _clock_after(self, dt: float, units: int) -> tuple[float, tuple[float, float, int]]:
        """The time ``units`` x ``dt`` after the current state, and the clock that gives it.

        The time is ``t0 + k * dt``, ``k`` counted since ``dt`` last changed (then ``t0`` is the
        time reached): a product, never a sum of per-step or per-frame increments, which
        ended the Pythagorean run to t = 70 at 69.99999999999817 (issue 12).
        """
        t0, clock_dt, k = self._clock
        if clock_dt != dt:
            t0, clock_dt, k = self._time, dt, 0
        k += units
        return t0 + k * dt, (t0, clock_dt, k)

    def _commit(self, state: ParticleState, host: ParticleState, quantities, steps: int, *,
                dt: float | None = None, units: int = 0):
        """Make ``state`` (``host``: its copy on the host) the current one, ``steps`` integrator
        steps later: at ``units`` x ``dt`` of simulated time later (its time is set exactly),
        or, without ``dt``, at the state's own time (the clock starts again from there)."""
        if dt is None:
            self._time = float(host.time)
            self._clock = (self._time, None, 0)
            self._current = state
        else:
            self._time, self._clock = self._clock_after(dt, units)
            self._current = state._replace(time=jnp.asarray(self._time, state.position.dtype))
        self._position_np = np.asarray(host.position, np.float64)
        self._velocity_np = np.asarray(host.velocity, np.float64)
        self._energy = float(quantities.energy)
        self.steps_taken += steps
        self.frames_taken += 1
        point = self._errors(quantities)
        self._new_history.append(point)
        self._history.append(point)
        self._record_snapshot(quantities)
        self.nonfinite = False
        return point

    def _finite(self, host: ParticleState, quantities) -> bool:
        """Positions, velocities, energy and the reference energy are all finite."""
        return bool(
            np.isfinite(np.asarray(host.position)).all()
            and np.isfinite(np.asarray(host.velocity)).all()
            and math.isfinite(float(quantities.energy))
            and math.isfinite(self._reference.energy)
        )

    def _stop_at_fault(self, record: Integrator, previous: ParticleState, params: PhysicsParams, dt: float,
                       t_end: float, solution: Solution) -> None:
        """The frame from ``previous`` failed: keep the last finite state and record where and
        why in :attr:`fault`. A fixed-step frame is redone one step at a time (the same
        compiled function: the step count is traced) to the last finite step; an adaptive
        integrator's own result says why it stopped."""
        self.nonfinite = True
        if record.adaptive and solution.result is RESULTS.max_steps_reached:
            self.fault = RunFault(self.steps_taken + 1, self._time, (
                f"Paused: the frame from t = {self._time:.4g} to {t_end:.4g} needed more than "
                f"{solution.stats.max_steps:,} steps of {record.name}, about the {LIMITS.max_click_cpu_seconds} s "
                "of the server's CPU one action may use: lower Steps per frame or dt (the save interval), or "
                "choose fewer Bodies N; the last good state is kept."))
            return
        if record.adaptive:
            self.fault = RunFault(
                self.steps_taken + 1, self._time,
                f"Paused: the adaptive integrator {record.name} stopped in the frame from "
                f"t = {self._time:.4g} to {t_end:.4g} ({solution.message}). The last good "
                "state is kept and can be downloaded; add softening or press Reset.",
            )
            return
        good, good_steps = previous, 0
        if math.isfinite(self._reference.energy):
            for _ in range(int(self.steps_per_frame) - 1):  # the whole frame is known to fail
                step = self._solve_frame(good, record, self.forces, params, dict(num_steps=1, dt=dt))
                candidate, quantities = _end_of(step.trajectory)
                host, quantities = jax.device_get((candidate, quantities))
                if not self._finite(host, quantities):
                    break
                good, good_host, good_quantities = candidate, host, quantities
                good_steps += 1
        if good_steps:
            self._commit(good, good_host, good_quantities, good_steps, dt=dt, units=good_steps)
        self.nonfinite = True
        first_bad = self.steps_taken + 1
        self.fault = RunFault(first_bad, self._time, self._fault_message(first_bad))

    def _fault_message(self, first_bad: int) -> str:
        return fault_message(
            first_bad=first_bad, time=self._time, dt=float(self.dt), softening=float(self.softening),
            position=self._position_np, initial_energy_finite=math.isfinite(self._reference.energy),
            precision=self.precision,
        )

    def _energy_message(self, energy_error: float) -> str:
        return energy_warning(
            energy_error, steps_taken=self.steps_taken, time=self._time, dt=float(self.dt),
            softening=float(self.softening), position=self._position_np, integrator=self.integrator,
            adaptive=self.adaptive,
        )

    def _errors(self, quantities) -> tuple[float, float, float, float]:
        ref = self._reference
        energy_error = abs(float(quantities.energy) - ref.energy) / abs(ref.energy) if ref.energy else float("nan")
        momentum_error = float(np.linalg.norm(np.asarray(quantities.linear_momentum) - ref.linear_momentum))
        angular_error = float(np.linalg.norm(np.asarray(quantities.angular_momentum) - ref.angular_momentum))
        momentum_error /= ref.momentum_scale or 1.0
        angular_error /= ref.angular_momentum_scale or 1.0
        return (self._time, energy_error, momentum_error, angular_error)

    def _record_snapshot(self, quantities) -> None:
        self._record.append(
            (
                self._time,
                self._position_np.copy(),
                self._velocity_np.copy(),
                float(quantities.energy),
                np.asarray(quantities.linear_momentum, np.float64),
                np.asarray(quantities.angular_momentum, np.float64),
            )
        )

    # ----------------------------------------------------------------- readouts
    @property
    def time(self) -> float:
        """Simulation time of the current state, time units (known before it is built)."""
        return self._time

    @property
    def initial(self) -> ParticleState:
        """The run's initial state (built here if it is not yet)."""
        return self._built("_initial")

    @property
    def current(self) -> ParticleState:
        """The run's current state (built here if it is not yet)."""
        return self._built("_current")

    @property
    def position(self) -> np.ndarray:
        """``[n, 3]`` float64 copy of the current positions (built here if needed)."""
        return self._built("_position_np")

    @property
    def velocity(self) -> np.ndarray:
        return self._built("_velocity_np")

    @property
    def mass(self) -> np.ndarray:
        return self._built("_mass_np")

    def run_snapshot(self) -> dict | None:
        """``generation``, ``time``, ``position``, ``velocity`` (``[n, 3]``) and ``mass``
        (``[n]``) copies of the run as it is now, or None before it is built. Never builds
        (no JAX): what the view draws a whole run from, on the event loop."""
        with self._lock:
            if self._current is None:
                return None
            return {
                "generation": self._generation, "time": self._time, "position": self._position_np.copy(),
                "velocity": self._velocity_np.copy(), "mass": self._mass_np.copy(),
            }

    @property
    def history(self) -> FrameDiagnostics:
        """All diagnostics kept so far (oldest first, at most ``HISTORY_POINTS``)."""
        return _as_diagnostics(list(self._history))

    def take_new_history(self) -> FrameDiagnostics:
        """Diagnostics of the frames since the previous call (for streaming to a plot)."""
        with self._lock:
            points, self._new_history = self._new_history, []
        return _as_diagnostics(points)

    def live_frame(self) -> dict | None:
        """What the live view sends per frame (safe while another thread steps; None when
        the run was reset since and is not built again):
        ``generation``, ``time``, ``position`` / ``velocity`` (``[n, 3]`` copies), ``history``
        (:meth:`take_new_history`), ``nonfinite``, ``fault`` and ``energy_warning``. Unlike
        :meth:`snapshot` it builds no plot columns and no trail: the browser keeps those."""
        with self._lock:
            if self._current is None:
                return None
            return {
                "generation": self._generation,
                "time": self._time,
                "position": self._position_np.copy(),
                "velocity": self._velocity_np.copy(),
                "history": self.take_new_history(),
                "nonfinite": self.nonfinite,
                "fault": self.fault,
                "energy_warning": self.energy_warning,
            }


    def trajectory(self) -> Trajectory:
        """The recorded frames (most recent ``_record_frames``) as a :class:`Trajectory`."""
        with self._lock:
            frames, mass = list(self._record), self._mass_np
        if not frames:
            raise ValueError("nothing recorded yet: press Step or Play first")
        time_, position, velocity, energy, momentum, angular = (np.stack(column) for column in zip(*frames))
        return Trajectory(time_, position, velocity, mass, energy, momentum, angular)


def _as_diagnostics(points) -> FrameDiagnostics:
    if not points:
        return FrameDiagnostics(*(np.empty(0) for _ in range(4)))
    columns = np.asarray(points, np.float64).T
    return FrameDiagnostics(*columns)
