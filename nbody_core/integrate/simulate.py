"""The fixed-step loop: whole trajectories in one compiled ``lax.scan``, and ``advance``.

Contract: :func:`integration_loop` is the one fixed-step loop (``solve``, ``simulate``, the CLI
and ensemble members run it); :func:`simulate` is its convenience entry point returning a
:class:`~nbody_core.integrate.trajectory.Trajectory` (it works inside ``jit``/``grad``), and
:func:`advance` returns only the final state, the step count traced (interactive frames).

Static configuration (integrator, force method, potential, step counts, save cadence) is
compiled in; ``dt``, ``params`` and every leaf of the state are traced, so changing them
never recompiles. Runtime trouble (non-finite values) is reported through the returned
arrays (see :func:`~nbody_core.integrate.trajectory.first_nonfinite_index`) and by
``solve``'s ``RESULTS`` code.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from nbody_core.physics.diagnostics import total_energy
from nbody_core.physics.forces import Acceleration, ForceMethod, acceleration_function
from nbody_core.physics.potentials import PairPotential
from nbody_core.physics.state import ParticleState, PhysicsParams, resolve_params
from .fixed_step import IntegratorState
from .integrators import Integrator, get_integrator
from .options import steps_for_duration, validate_run_options
from .trajectory import Trajectory, conserved_quantities, empty_piece

__all__ = [
    "cast_run_inputs",
    "RunConfig",
    "run_config",
    "integrate",
    "integrate_final",
    "integration_loop",
    "make_clock",
    "segments",
    "simulate",
    "advance",
]


def cast_run_inputs(state: ParticleState, dt, params: PhysicsParams) -> tuple[Any, PhysicsParams]:
    """``dt`` and every field of ``params`` as strongly typed arrays of the state's dtype,
    so that changing their values never recompiles a jitted run.

    A Python float (weakly typed) and a ``jnp.float64`` would otherwise be two jit
    signatures. Concrete values become NumPy arrays (always NumPy, so one signature), which
    costs no eager device dispatch per value (~0.05 ms each: most of an interactive frame's
    overhead); traced values are only cast.
    """
    dtype = state.position.dtype

    def cast(value):
        if isinstance(value, jax.core.Tracer):  # inside jit / grad
            return value if value.dtype == dtype else value.astype(dtype)
        return np.asarray(value, dtype)

    return cast(dt), PhysicsParams(*(cast(p) for p in params))


class RunConfig(NamedTuple):
    """Static configuration of a fixed-step run (hashable: a ``jax.jit`` static argument).

    Attributes:
        integrator: the :class:`~nbody_core.integrate.integrators.Integrator` record.
        acceleration: the :class:`~nbody_core.physics.forces.Acceleration` record (force method
            and potential).
        track_energy: whether the relative energy error is taken after every step (one
            potential-energy evaluation per step) or only at saved snapshots.
    """

    integrator: Integrator
    acceleration: Acceleration
    track_energy: bool = False

    @property
    def potential(self) -> PairPotential:
        return self.acceleration.potential


def run_config(
    integrator: str | Integrator = "leapfrog",
    forces: str | ForceMethod = "auto",
    potential: str | PairPotential = "newtonian",
    *,
    track_energy: bool = False,
) -> RunConfig:
    """Validate a choice of integrator, force method and potential eagerly.

    Raises:
        ValueError: naming an unknown integrator, force method or potential, an adaptive
            integrator (this loop takes fixed steps: ``solve`` runs every integrator), or a
            hand-coded force method asked for a potential it does not compute.
    """
    record = get_integrator(integrator)
    if record.adaptive:
        raise ValueError(
            f"{record.name} is an adaptive integrator and this fixed-step loop does not run it; "
            f"use solve(state, t_end=..., integrator={record.name!r})"
        )
    return RunConfig(record, acceleration_function(forces, potential), bool(track_energy))


class _Clock(NamedTuple):
    """Traced step clock: the time after global step ``k`` is ``t0 + k * dt``, computed by
    multiplication (no accumulated round-off), and exactly ``t_last`` after step ``total``."""

    t0: Array
    dt: Array
    t_last: Array
    total: Array
    first_step: Array  # global index of this segment's first step, minus one

    def time(self, k):
        return jnp.where(k == self.total, self.t_last, self.t0 + k.astype(self.dt.dtype) * self.dt)


class _Carry(NamedTuple):
    state: IntegratorState
    max_error: Array  # max |E - E0| / |E0| so far
    energy0: Array


def _stepper(config: RunConfig, clock: _Clock, params: PhysicsParams):
    """``one_step(k, carry) -> carry``: step ``k`` of this segment (global step
    ``clock.first_step + k + 1``), exact time, and the energy error when tracked."""
    _, step_fn = config.integrator.build(config.acceleration)

    def one_step(k, carry: _Carry) -> _Carry:
        state = step_fn(carry.state, clock.dt, params)
        particles = state.particles._replace(time=clock.time(clock.first_step + k + 1))
        max_error = carry.max_error
        if config.track_energy:
            energy = total_energy(particles, params, config.potential)
            # jnp.maximum propagates NaN: a blow-up is never hidden by an earlier maximum.
            max_error = jnp.maximum(max_error, jnp.abs(energy - carry.energy0) / jnp.abs(carry.energy0))
        return _Carry(state._replace(particles=particles), max_error, carry.energy0)

    return one_step


def make_clock(t0, dt, num_steps, t_last=None) -> _Clock:
    """The step clock of a run of ``num_steps`` steps from ``t0`` (all may be traced): the
    time after step ``k`` is ``t0 + k * dt``, and ``t_last`` (default ``t0 + num_steps * dt``)
    after the last."""
    total = jnp.asarray(num_steps)
    t_last = t0 + total.astype(dt.dtype) * dt if t_last is None else t_last
    return _Clock(t0, dt, t_last, total, jnp.zeros_like(total))


def default_observation(particles: ParticleState, params: PhysicsParams, potential: PairPotential):
    """What :func:`integration_loop` saves by default: ``(particles, conserved quantities)``."""
    return particles, conserved_quantities(particles, params, potential)


def integration_loop(
    start, clock: _Clock, params: PhysicsParams, *, config: RunConfig, num_saves: int, save_every,
    remainder: int = 0, first: bool = True, observe: Callable = default_observation, block_steps=None,
):
    """The one integration loop (call it inside ``jit``/``vmap``): ``num_saves`` save blocks
    of ``save_every`` steps (a ``fori_loop`` inside a ``scan``) and ``remainder`` more steps,
    the last one saved. ``simulate``, the CLI (through ``simulate``) and ensemble members run it.

    Args:
        start: with ``first``, the initial :class:`ParticleState`: the initial acceleration
            and the initial observation are made here. Otherwise the :class:`_Carry` a
            previous call returned, so a run cut into calls equals one run.
        clock: the run's :class:`_Clock` (:func:`make_clock`).
        params: :class:`PhysicsParams`.
        config: the :class:`RunConfig`.
        num_saves: save blocks (static).
        save_every: steps per block (static, or traced: a traced count loops in a while loop).
        remainder: steps after the last block, then one more observation (static).
        observe: ``observe(particles, params, potential) -> pytree`` saved at each save.
        block_steps: ``[num_saves]`` integer steps of each save block (traced), instead of
            ``save_every`` (then unused): save points that are not evenly spaced in steps.

    Returns:
        ``(carry, saved)``: the :class:`_Carry` (``carry.state.particles`` is the final state,
        ``carry.max_error`` the tracked energy error) and the observations stacked on a
        leading axis (the initial one first when ``first``).
    """
    dtype = clock.dt.dtype
    potential = config.potential
    blocks = []
    if first:
        init_fn, _ = config.integrator.build(config.acceleration)
        blocks.append(jax.tree.map(lambda x: x[None], observe(start, params, potential)))
        start = _Carry(init_fn(start, params), jnp.zeros((), dtype), total_energy(start, params, potential))
    one_step = _stepper(config, clock, params)

    def run(carry, offset, count):
        step = lambda i, c: one_step(offset + i, c)  # noqa: E731
        return lax.fori_loop(0, count, step, carry)

    if block_steps is None:
        def save_block(carry, block):
            carry = run(carry, block * save_every, save_every)
            return carry, observe(carry.state.particles, params, potential)

        blocks_xs, done = jnp.arange(num_saves), num_saves * save_every if remainder else 0
    else:
        def save_block(carry, block):
            offset, count = block
            carry = run(carry, offset, count)
            return carry, observe(carry.state.particles, params, potential)

        blocks_xs, done = (jnp.cumsum(block_steps) - block_steps, block_steps), jnp.sum(block_steps)
    carry, saved = lax.scan(save_block, start, blocks_xs, length=num_saves)
    blocks.append(saved)
    if remainder:
        carry = run(carry, done, remainder)
        blocks.append(jax.tree.map(lambda x: x[None], observe(carry.state.particles, params, potential)))
    return carry, jax.tree.map(lambda *xs: jnp.concatenate(xs), *blocks)


_segment = jax.jit(
    integration_loop, static_argnames=("config", "num_saves", "save_every", "remainder", "first", "observe")
)


def segments(num_blocks: int, remainder: int, chunks: int) -> list[tuple[int, int]]:
    """``(save blocks, extra steps)`` per compiled call: equal chunks (one compilation),
    at most one shorter one, the remainder steps in the last."""
    chunks = max(1, min(chunks, num_blocks))
    size = -(-num_blocks // chunks) if num_blocks else 0
    pieces = [(size, 0)] * (num_blocks // size) if size else []
    if size and num_blocks % size:
        pieces.append((num_blocks % size, 0))
    if remainder or not pieces:
        pieces.append((0, remainder))
    return pieces


def integrate(
    state: ParticleState,
    *,
    dt,
    num_steps: int,
    save_every: int,
    params: PhysicsParams,
    config: RunConfig,
    t_last=None,
    chunks: int = 1,
    on_chunk: Callable[[int, Trajectory], None] | None = None,
    block_steps: np.ndarray | None = None,
) -> Trajectory:
    """The fixed-step loop every caller shares (solve, simulate, the CLI, ensemble members).

    Runs in ``chunks`` compiled calls (equal ones share a compilation) carrying the
    :class:`IntegratorState` from one to the next, so the result equals one call; after
    each, ``on_chunk(steps_done, piece)`` may follow progress, ``piece`` being the
    :class:`Trajectory` of the snapshots that call added (the initial one in the first),
    computed, with the energy error so far. Inputs are validated by the caller.
    ``t_last`` (default ``state.time + num_steps * dt``) is the exact time of the last step.
    ``block_steps`` (integers summing to ``num_steps``) saves after each of those many
    steps instead of every ``save_every``-th (see :func:`integration_loop`).
    """
    dt, params = cast_run_inputs(state, dt, params)
    dtype = state.position.dtype
    t0 = _as(state.time, dtype)
    clock = _Clock(
        t0=t0,
        dt=dt,
        t_last=t0 + num_steps * dt if t_last is None else _as(t_last, dtype),
        total=np.asarray(num_steps, np.int64 if jax.config.jax_enable_x64 else np.int32),
        first_step=None,
    )
    if block_steps is None:
        num_blocks, remainder = divmod(num_steps, save_every)
    else:
        block_steps = np.asarray(block_steps, clock.total.dtype)
        num_blocks, remainder, save_every = len(block_steps), 0, None
    carry, pieces, done, block = state._replace(time=t0), [], 0, 0
    for index, (blocks, extra) in enumerate(segments(num_blocks, remainder, chunks)):
        steps = None if block_steps is None else block_steps[block:block + blocks]
        carry, saved = _segment(
            carry, clock._replace(first_step=np.asarray(done, clock.total.dtype)), params,
            config=config, num_saves=blocks, save_every=save_every, remainder=extra, first=index == 0,
            block_steps=steps,
        )
        pieces.append(saved)
        block += blocks
        done += (blocks * save_every if steps is None else int(steps.sum())) + extra
        if on_chunk is not None:
            on_chunk(done, jax.block_until_ready(_trajectory(state, saved, carry)))
    saved = pieces[0] if len(pieces) == 1 else jax.tree.map(lambda *xs: jnp.concatenate(xs), *pieces)
    return _trajectory(state, saved, carry)


def _trajectory(state: ParticleState, saved, carry: _Carry) -> Trajectory:
    states, quantities = saved
    # Untracked: the maximum over the snapshots (their NaN included).
    relative = jnp.abs(quantities.energy - carry.energy0) / jnp.abs(carry.energy0)
    return Trajectory(
        time=states.time,
        position=states.position,
        velocity=states.velocity,
        mass=state.mass,
        energy=quantities.energy,
        linear_momentum=quantities.linear_momentum,
        angular_momentum=quantities.angular_momentum,
        max_relative_energy_error=jnp.maximum(carry.max_error, jnp.max(relative)),
        units=state.units,
    )


def _as(value, dtype):
    if isinstance(value, jax.core.Tracer):
        return value.astype(dtype)
    return np.asarray(value, dtype)


def simulate(
    state: ParticleState,
    *,
    dt,
    num_steps: int | None = None,
    t_end: float | None = None,
    save_every: int = 1,
    params: PhysicsParams | None = None,
    integrator: str = "leapfrog",
    forces: str = "auto",
    potential: str | PairPotential = "newtonian",
    track_energy: bool = False,
    chunks: int = 1,
    on_chunk: Callable[[int, Trajectory], None] | None = None,
) -> Trajectory:
    """Integrate fixed steps in one compiled scan, saving every ``save_every``-th step.

    The fixed-step convenience over the loop :func:`nbody_core.solve` runs (``solve`` also
    returns statistics and a ``RESULTS`` code, and runs adaptive integrators); unlike
    ``solve`` it works inside ``jax.jit`` / ``jax.grad`` (the inference problems use it).

    Give ``num_steps``, or ``t_end``, the END time (``state.time`` + duration): then the
    step is shortened to the largest ``<= dt`` that lands on ``t_end`` in uniform steps
    (:func:`steps_for_duration`). Snapshot ``k`` is at ``state.time + k * dt``, computed by
    multiplication, and the last one exactly at ``t_end`` when given.

    Args:
        state: initial :class:`ParticleState` (its dtype sets the computation's dtype).
        dt: step, time units (traced: changing it does not recompile).
        num_steps: number of steps (static).
        t_end: end time instead of ``num_steps`` (must be later than ``state.time``).
        save_every: save cadence (static); the last step is always saved.
        params: :class:`PhysicsParams` (traced); None takes G from ``state.units`` (G = 1 in
            N-body units, 39.48 in AU, Msun and years). Explicit params whose G contradicts
            a physical unit system of the state raise ``ValueError``.
        integrator: a fixed-step name in :data:`~nbody_core.integrate.integrators.INTEGRATORS`:
            ``"euler"``, ``"leapfrog"``, ``"yoshida4"``, ``"yoshida4_kdk"`` or ``"rk4"`` (the
            adaptive ``"dopri8"`` and ``"ias15"`` run through :func:`nbody_core.solve`).
        forces: a method of :data:`~nbody_core.physics.forces.FORCE_METHODS`: ``"auto"`` (default:
            the fastest exact kernel for the device, dtype, N and potential, see
            :mod:`nbody_core.physics.autoselect`), ``"tiled"`` (the fast hand-coded CPU kernel,
            Newtonian only), ``"tiled_custom_vjp"`` (same, with a hand-coded derivative rule),
            ``"pallas"`` (GPU kernel), ``"analytic"``, ``"autodiff"`` or ``"autodiff_tiled"``
            (any potential).
        potential: pair potential name or :class:`PairPotential`.
        track_energy: take the relative energy error after EVERY step, not only at the
            snapshots, into ``Trajectory.max_relative_energy_error`` (``nbody run`` does).
            Off by default because it costs one potential-energy evaluation per step:
            measured x1.6-3.2 the run time of leapfrog (one force evaluation per step;
            figure-eight, Plummer N = 256 and 1024) and x1.1-2.1 of yoshida4 (three), on a
            shared 2-core CPU at load ~15 (min of 7 interleaved runs).
        chunks: number of compiled calls the run is cut into (for progress reports; the
            result is the same).
        on_chunk: ``on_chunk(steps_done, piece)`` after each chunk, ``piece`` the
            :class:`Trajectory` of the snapshots that chunk added (see :func:`integrate`).

    Returns:
        :class:`Trajectory` with ``1 + ceil(num_steps / save_every)`` snapshots.
    """
    if dt is None:
        raise ValueError("dt is required: a positive finite time step")
    t_last = None
    if t_end is not None:
        if num_steps is not None:
            raise ValueError("give num_steps or t_end, not both")
        t0 = float(np.asarray(state.time))
        if not (math.isfinite(t_end) and t_end > t0):
            raise ValueError(f"t_end must be a finite end time later than state.time = {t0!r}, got {t_end!r}")
        num_steps, dt = steps_for_duration(t_end - t0, dt)
        t_last = t_end
    elif num_steps is None:
        raise ValueError("give num_steps or t_end")
    params = resolve_params(state, params)
    validate_run_options(dt=dt, num_steps=num_steps, save_every=save_every, params=params)
    config = run_config(integrator, forces, potential, track_energy=track_energy)
    return integrate(
        state, dt=dt, num_steps=num_steps, save_every=save_every, params=params, config=config,
        t_last=t_last, chunks=chunks, on_chunk=on_chunk,
    )


@partial(jax.jit, static_argnames=("config",))
def _advance(state, num_steps, dt, params, reference_energy, clock=None, *, config):
    """``num_steps`` (traced) steps from ``state``: ``(particles, max |E - E_ref| / |E_ref|)``
    (the error is 0 unless ``config.track_energy``). ``clock``: the whole run's
    :class:`_Clock` when this call is one piece of a longer run, else the time after step
    ``k`` is ``state.time + k * dt``."""
    dt, params = cast_run_inputs(state, dt, params)
    init_fn, _ = config.integrator.build(config.acceleration)
    if clock is None:
        t0 = state.time
        clock = _Clock(t0, dt, t0 + num_steps.astype(dt.dtype) * dt, num_steps, jnp.zeros_like(num_steps))
    carry = _Carry(init_fn(state, params), jnp.zeros((), dt.dtype), reference_energy.astype(dt.dtype))
    carry = lax.fori_loop(0, num_steps, _stepper(config, clock, params), carry)
    return carry.state.particles, carry.max_error


@partial(jax.jit, static_argnames=("potential",))
def _end_snapshot(particles: ParticleState, params: PhysicsParams, potential: PairPotential):
    """One state as the only snapshot of a ``final_only`` run: ``(time [1], position [1, n, 3],
    velocity [1, n, 3], conserved quantities [1, ...], finite)``, in one dispatch; ``finite``:
    whether position, velocity and energy are all finite."""
    quantities = conserved_quantities(particles, params, potential)
    finite = (jnp.all(jnp.isfinite(particles.position)) & jnp.all(jnp.isfinite(particles.velocity))
              & jnp.isfinite(quantities.energy))
    return (particles.time[None], particles.position[None], particles.velocity[None],
            jax.tree.map(lambda x: x[None], quantities), finite)


_energy = jax.jit(total_energy, static_argnames=("potential",))


def integrate_final(
    state: ParticleState,
    *,
    dt,
    num_steps: int,
    params: PhysicsParams,
    config: RunConfig,
    t_last=None,
    chunks: int = 1,
    on_chunk: Callable[[int, Trajectory], None] | None = None,
) -> tuple[Trajectory, Array]:
    """The fixed-step loop keeping only the end state: ``(trajectory, finite)``, a one-snapshot
    :class:`Trajectory` and whether that snapshot is finite (a device bool).

    Runs in ``chunks`` compiled calls of near-equal step counts; the count is traced, so any
    ``num_steps`` and any split reuse one compilation (the interactive path: the live view's
    frames, cut into calls short enough that Pause acts within one). The time after step
    ``k`` is ``state.time + k * dt`` over the whole run, ``t_last`` after the last. After each
    call, ``on_chunk(steps_done, piece)``: ``piece`` has no snapshot until the last call,
    whose piece is the end snapshot; an exception raised there stops the run. Conserved
    quantities are computed for the end state only; ``max_relative_energy_error`` is over
    every step when ``config.track_energy``, else None (it would cost the initial energy).
    Inputs are validated by the caller.
    """
    dt, params = cast_run_inputs(state, dt, params)
    dtype = state.position.dtype
    count_dtype = np.int64 if jax.config.jax_enable_x64 else np.int32
    t0 = _as(state.time, dtype)
    clock = _Clock(
        t0=t0, dt=dt, t_last=t0 + num_steps * dt if t_last is None else _as(t_last, dtype),
        total=np.asarray(num_steps, count_dtype), first_step=None,
    )
    potential = config.potential
    reference = _energy(state, params, potential) if config.track_energy else np.ones((), dtype)
    calls = max(1, min(chunks, num_steps))
    counts = [num_steps] if calls == 1 else np.diff(np.round(np.linspace(0, num_steps, calls + 1)).astype(np.int64))
    particles, max_error, done = state._replace(time=t0), None, 0
    for count in counts:
        particles, error = _advance(
            particles, np.asarray(count, np.int32), dt, params, reference,
            clock._replace(first_step=np.asarray(done, count_dtype)), config=config,
        )
        max_error = error if max_error is None else jnp.maximum(max_error, error)
        done += int(count)
        if on_chunk is not None and done < num_steps:
            on_chunk(done, empty_piece(jax.block_until_ready(particles)))
    time, position, velocity, quantities, finite = _end_snapshot(particles, params, potential)
    trajectory = Trajectory(
        time=time, position=position, velocity=velocity, mass=state.mass, energy=quantities.energy,
        linear_momentum=quantities.linear_momentum, angular_momentum=quantities.angular_momentum,
        max_relative_energy_error=max_error if config.track_energy else None, units=state.units,
    )
    if on_chunk is not None:
        on_chunk(done, jax.block_until_ready(trajectory))
    return trajectory, finite


def advance(
    state: ParticleState,
    num_steps: int,
    *,
    dt,
    params: PhysicsParams | None = None,
    integrator: str = "leapfrog",
    forces: str = "auto",
    potential: str | PairPotential = "newtonian",
) -> ParticleState:
    """Advance ``state`` by ``num_steps`` steps and return the new state (interactive use).

    ``num_steps``, ``dt`` and ``params`` are all traced: a frame loop that changes steps
    per frame, dt or softening never recompiles. The compiled function depends only on the
    (hashable) choice of integrator, force method and potential and on the state's shape
    and dtype, so every caller in the process shares it. Not reverse-differentiable in
    ``num_steps``-dependent loops; use :func:`simulate` for gradients. ``params=None`` takes
    G from the state's unit system, as in :func:`simulate`. Fixed-step integrators only: an
    adaptive one is refused (``solve(state, t_end=..., integrator=..., final_only=True)``
    advances any integrator and says how the run ended).
    """
    if dt is None:
        raise ValueError("dt is required: a positive finite time step")
    params = resolve_params(state, params)
    validate_run_options(dt=dt, num_steps=num_steps, params=params)
    config = run_config(integrator, forces, potential, track_energy=False)
    dt, params = cast_run_inputs(state, dt, params)
    one = np.ones((), state.position.dtype)
    return _advance(state, np.asarray(num_steps, np.int32), dt, params, one, config=config)[0]
