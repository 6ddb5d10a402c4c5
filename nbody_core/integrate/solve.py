"""One way to integrate: ``solve(state, *, t_end | num_steps, integrator=...) -> Solution``.

Contract: :func:`solve` runs every integrator of :data:`~nbody_core.integrate.integrators.INTEGRATORS`,
fixed-step and adaptive alike (diffrax's ``diffeqsolve``, REBOUND's ``sim.integrate``), and
returns one :class:`~nbody_core.integrate.solution.Solution` (trajectory, stats, ``RESULTS``
code). It validates eagerly and reads what it needs from the integrator's record; an option
that only one kind of integrator takes is refused, in words, for the other.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

import nbody_core.defaults as defaults
from nbody_core.physics.forces import ForceMethod, acceleration_function
from nbody_core.physics.potentials import PairPotential
from nbody_core.physics.state import ParticleState, PhysicsParams, resolve_params
from .adjoint import DEFAULT_TRACED_MAX_STEPS, is_traced
from .integrators import INTEGRATORS, Integrator, get_integrator
from .options import check_positive_int, check_positive_number, save_grid, steps_for_duration, validate_run_options
from .simulate import RunConfig, integrate, integrate_final
from .solution import RESULTS, Solution, Stats
from .trajectory import Trajectory

__all__ = ["solve", "DEFAULT_MAX_STEPS", "DEFAULT_NUM_SAVES"]

#: Cap on an adaptive run's attempted steps when ``max_steps`` is not given.
DEFAULT_MAX_STEPS = 1_000_000
#: Save intervals of an adaptive run when neither ``num_saves`` nor ``save_times`` is given.
DEFAULT_NUM_SAVES = 100

#: Options of one kind of integrator only, with what to say when the other kind gets one.
_FIXED_STEP_ONLY = {
    "num_steps": "an adaptive integrator chooses its own steps: give t_end",
    "save_every": "an adaptive integrator saves at times: give num_saves or save_times",
}
_ADAPTIVE_ONLY = {
    "max_steps": "a fixed-step run takes exactly the steps its num_steps or t_end and dt give",
    "save_times": "a fixed-step run saves after whole steps: give save_every or num_saves",
}


def solve(
    state: ParticleState,
    *,
    t_end: float | None = None,
    num_steps: int | None = None,
    dt=None,
    integrator: str | Integrator | None = None,
    params: PhysicsParams | None = None,
    forces: str | ForceMethod = defaults.FORCES,
    potential: str | PairPotential = defaults.POTENTIAL,
    save_every: int | None = None,
    num_saves: int | None = None,
    save_times=None,
    final_only: bool = False,
    track_energy: bool = False,
    max_steps: int | None = None,
    chunks: int = 1,
    on_chunk: Callable[[int, Trajectory], None] | None = None,
    steps_per_call: int | None = None,
    **options,
) -> Solution:
    """Integrate ``state`` with any integrator and say how the run ended.

    Fixed-step integrators (``leapfrog``, ``yoshida4``, ...) take ``dt`` and either
    ``num_steps`` or the END time ``t_end`` (then ``dt`` is shortened to the largest step
    ``<= dt`` that lands on ``t_end`` in uniform steps). Adaptive ones (``dopri8``,
    ``ias15``) take ``t_end`` (or ``save_times``) and choose their own steps, ``dt`` being
    the first step to try (diffrax's ``dt0``). A state at time 5 with ``t_end=6`` runs one
    time unit. Snapshot times are computed by multiplication from ``state.time`` (never
    accumulated), the last exactly at the end time.

    Args:
        state: initial :class:`ParticleState` (its dtype sets the computation's dtype;
            float64 for the adaptive integrators' default tolerances).
        t_end: end time, time units, later than ``state.time``.
        num_steps: fixed-step: number of steps (instead of ``t_end``).
        dt: fixed-step: the step, time units (traced: changing it does not recompile).
            Adaptive: the first step to try (default: chosen from the state); pass a
            previous solution's ``stats.next_dt`` to continue it without restarting step
            control.
        integrator: a name (or record) in :data:`~nbody_core.integrate.integrators.INTEGRATORS`;
            None (default): ``"leapfrog"`` when ``dt`` or ``num_steps`` is given, else the
            adaptive ``"ias15"`` (:func:`nbody_core.defaults.default_integrator`).
        params: :class:`PhysicsParams` (traced); None takes G from ``state.units``.
        forces: a method of :data:`~nbody_core.physics.forces.FORCE_METHODS` (``"auto"``: the
            fastest exact kernel for the device, dtype, N and potential).
        potential: pair potential name or :class:`PairPotential`.
        save_every: fixed-step: save every ``save_every``-th step (default 1: every step);
            the last step is always saved.
        num_saves: save intervals: adaptive, evenly spaced in time (default 100);
            fixed-step, after near-equal numbers of steps (at most ``num_steps``).
        save_times: adaptive: increasing times after ``state.time`` to save at (the last is
            the end time).
        final_only: keep only the end state (a one-snapshot trajectory). Fixed-step: the
            step count is traced, so any ``num_steps`` (and any ``chunks``) reuses one
            compilation, and conserved quantities are computed for the end state only (the
            interactive path: one frame of the live view).
        track_energy: fixed-step: take the relative energy error after EVERY step into
            ``trajectory.max_relative_energy_error`` (one potential-energy evaluation per
            step: x1.6-3.2 the cost of leapfrog); adaptive integrators always do.
        max_steps: adaptive: cap on attempted steps (default 1,000,000; 4096 under a JAX
            transformation, where the ``"direct"`` loop is that long); snapshots not reached
            are NaN and the result is ``RESULTS.max_steps_reached``.
        chunks: number of compiled calls the run is cut into (for progress; the result is
            the same). IAS15 cuts its run only by ``steps_per_call``.
        on_chunk: ``on_chunk(done, piece)`` after each call: ``done`` steps (fixed-step) or
            save intervals (adaptive) so far, ``piece`` the :class:`Trajectory` of the
            snapshots that call added. An exception raised there stops the run (the way to
            cancel a long run between two bounded calls).
        steps_per_call: at most this many steps per compiled call (None: no bound), so that
            no call runs long: fixed-step, the run is cut into at least
            ``ceil(num_steps / steps_per_call)`` calls; adaptive, each call attempts at most
            this many steps and the next goes on from the loop's whole state (step size,
            controller state, compensation terms), bit-identical to one call. Traced: any
            value reuses the compilation.
        **options: the integrator's own options (its record's ``options``): ``rtol``,
            ``atol`` (dopri8, default 1e-13: per-step error tolerances, RMS over positions and
            velocities); ``epsilon`` (ias15, default 1e-9) and ``adaptive_mode`` (ias15:
            ``"global"`` or ``"prs23"``); ``adjoint`` (dopri8 and ias15, default ``"direct"``):
            under ``grad``, ``jacfwd``, ``jacrev``, ``jvp``, ``hessian``, ``vmap`` or ``jit``
            an adaptive run is one pure function whose loop is a bounded, checkpointed scan
            (``"direct"``: every transformation) or a while loop (``"forward"``: no reverse
            mode, but stops at the end under ``vmap``); step-size control is not
            differentiated (:mod:`nbody_core.integrate.adjoint`).

    Returns:
        A :class:`Solution` ``(trajectory, stats, result)``: ``result`` is
        ``RESULTS.successful``, ``max_steps_reached``, ``nonfinite`` or
        ``step_size_underflow`` (an int32 code when ``solve`` runs inside a transformation;
        an adaptive run's stats are then traced arrays too).

    Raises:
        ValueError: naming the bad value: an unknown integrator, force method, potential or
            option; an option of the other kind of integrator; a bad time, step, count or
            tolerance.
    """
    if integrator is None:
        integrator = defaults.default_integrator(fixed_step=dt is not None or num_steps is not None)
    record = get_integrator(integrator)
    options = _integrator_options(record, options)
    _refuse_other_kind(record, num_steps=num_steps, save_every=save_every, max_steps=max_steps,
                       save_times=save_times)
    if final_only and (save_every is not None or num_saves is not None or save_times is not None):
        raise ValueError("final_only keeps the end state only: give no save_every, num_saves or save_times")
    chunks = check_positive_int("chunks", chunks)
    if steps_per_call is not None:
        steps_per_call = check_positive_int("steps_per_call", steps_per_call)
    params = resolve_params(state, params)
    acceleration = acceleration_function(forces, potential)
    if record.adaptive:
        return _solve_adaptive(
            state, record, t_end=t_end, dt=dt, params=params, acceleration=acceleration, num_saves=num_saves,
            save_times=save_times, final_only=final_only, max_steps=max_steps, chunks=chunks, on_chunk=on_chunk,
            steps_per_call=steps_per_call, options=options,
        )
    config = RunConfig(record, acceleration, bool(track_energy))
    if steps_per_call is not None and num_steps is not None:
        chunks = max(chunks, -(-num_steps // steps_per_call))
    elif steps_per_call is not None:  # t_end: the step count is known once dt is shortened to land on it
        chunks = max(chunks, _steps_to(state, t_end, dt) // steps_per_call + 1)
    return _solve_fixed(
        state, config, t_end=t_end, num_steps=num_steps, dt=dt, params=params, save_every=save_every,
        num_saves=num_saves, final_only=final_only, chunks=chunks, on_chunk=on_chunk,
    )


def _integrator_options(record: Integrator, given: dict) -> dict:
    """The record's options with ``given`` over its defaults; an option it does not take is
    refused, naming the integrators that do."""
    own = dict(record.options)
    for name in given:
        if name in own:
            continue
        takers = [other.name for other in INTEGRATORS.values() if name in dict(other.options)]
        takes = f"its options: {', '.join(own)}" if own else "it takes no integrator options"
        if takers:
            raise ValueError(f"{name} is an option of {', '.join(takers)}, not of the {record.kind} "
                             f"integrator {record.name!r} ({takes})")
        raise ValueError(f"solve() got an unknown option {name!r} for the integrator {record.name!r} ({takes})")
    return {**own, **given}


def _refuse_other_kind(record: Integrator, **given) -> None:
    refused = _ADAPTIVE_ONLY if not record.adaptive else _FIXED_STEP_ONLY
    for name, why in refused.items():
        if given.get(name) is not None:
            other = "fixed-step" if record.adaptive else "adaptive"
            raise ValueError(f"{name}={given[name]!r} applies to {other} integrators, not to the {record.kind} "
                             f"integrator {record.name!r}: {why}")


def _solve_fixed(state, config: RunConfig, *, t_end, num_steps, dt, params, save_every, num_saves, final_only,
                 chunks, on_chunk) -> Solution:
    name = config.integrator.name
    if dt is None:
        raise ValueError(f"dt is required by the fixed-step integrator {name!r}: a positive finite time step")
    t_last = None
    if t_end is not None:
        if num_steps is not None:
            raise ValueError("give num_steps or t_end, not both")
        t0 = float(np.asarray(state.time))
        try:
            end = float(t_end)
        except (TypeError, ValueError):
            end = math.nan
        if not (math.isfinite(end) and end > t0):
            raise ValueError(f"t_end must be a finite end time later than state.time = {t0!r}, got {t_end!r}")
        num_steps, dt = steps_for_duration(t_end - t0, dt)
        t_last = t_end
    elif num_steps is None:
        raise ValueError(f"the fixed-step integrator {name!r} needs num_steps or t_end")
    validate_run_options(dt=dt, num_steps=num_steps, params=params)
    block_steps = None
    if num_saves is not None:
        if save_every is not None:
            raise ValueError("give save_every or num_saves, not both")
        num_saves = check_positive_int("num_saves", num_saves)
        if num_saves > num_steps:
            raise ValueError(f"num_saves ({num_saves}) exceeds num_steps ({num_steps}): a fixed-step run "
                             "saves at most once a step")
        block_steps = np.diff(np.round(np.linspace(0, num_steps, num_saves + 1)).astype(np.int64))
    elif save_every is None:
        save_every = 1
    if final_only:
        trajectory, finite = integrate_final(state, dt=dt, num_steps=num_steps, params=params, config=config,
                                             t_last=t_last, chunks=chunks, on_chunk=on_chunk)
        code = _code_of(finite)
    else:
        validate_run_options(save_every=save_every)
        trajectory = integrate(state, dt=dt, num_steps=num_steps, save_every=save_every, params=params,
                               config=config, t_last=t_last, chunks=chunks, on_chunk=on_chunk,
                               block_steps=block_steps)
        code = _finite_code(trajectory)
    step = dt if isinstance(dt, jax.core.Tracer) else float(np.asarray(dt))
    stats = Stats(num_steps=num_steps, num_accepted_steps=num_steps, num_rejected_steps=0,
                  num_saves_reached=max(1, trajectory.time.shape[0] - 1) if final_only else trajectory.time.shape[0] - 1,
                  next_dt=step)
    return Solution(trajectory, stats, RESULTS.of(code))


def _finite_code(trajectory: Trajectory):
    """``RESULTS.nonfinite`` when a saved position, velocity or energy is not finite, else
    ``RESULTS.successful``: on the host, or as an int32 code when traced."""
    leaves = (trajectory.position, trajectory.velocity, trajectory.energy)
    if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
        return _code_of(jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves])))
    return _code_of(all(bool(np.isfinite(np.asarray(leaf)).all()) for leaf in leaves))


def _code_of(finite):
    """The ``RESULTS`` code of a finite flag (an int32 code when the flag is traced)."""
    if isinstance(finite, jax.core.Tracer):
        return jnp.where(finite, int(RESULTS.successful), int(RESULTS.nonfinite)).astype(jnp.int32)
    return RESULTS.successful if bool(finite) else RESULTS.nonfinite


def _steps_to(state, t_end, dt) -> int:
    """Fixed steps from ``state.time`` to ``t_end`` (0 when the values are bad: the run
    refuses them, in words, later)."""
    try:
        return steps_for_duration(float(t_end) - float(np.asarray(state.time)), dt)[0]
    except (TypeError, ValueError):
        return 0


def _check_traced_run(record: Integrator, *, on_chunk, steps_per_call) -> None:
    """What an adaptive run under a JAX transformation cannot take, refused in words: it is one
    pure function, with no host between compiled pieces."""
    for name, value in (("on_chunk", on_chunk), ("steps_per_call", steps_per_call)):
        if value is not None:
            raise ValueError(
                f"{name} cuts an adaptive run into compiled calls with the host between them; under a "
                f"JAX transformation (grad, jacfwd, vmap, jit...) the {record.name!r} run is one "
                "function: give no on_chunk or steps_per_call")


def _traced_save_grid(t0, *, t_end, num_saves, save_times):
    """:func:`~nbody_core.integrate.options.save_grid` from a traced start time (the grid's
    shape is static; the checks that need ``t0``'s value cannot be made)."""
    if save_times is not None:
        if num_saves is not None:
            raise ValueError("give num_saves or save_times, not both")
        times = jnp.ravel(jnp.asarray(save_times, t0.dtype))
        return jnp.concatenate([t0[None], times])
    if t_end is None:
        raise ValueError("an adaptive run needs t_end (an end time) or save_times")
    num_saves = check_positive_int("num_saves", num_saves)
    fractions = np.arange(num_saves + 1) / num_saves
    return (t0 + (t_end - t0) * fractions).at[-1].set(t_end)


def _solve_adaptive(state, record: Integrator, *, t_end, dt, params, acceleration, num_saves, save_times,
                    final_only, max_steps, chunks, on_chunk, steps_per_call, options) -> Solution:
    traced = is_traced(state, params, dt)
    if traced:
        _check_traced_run(record, on_chunk=on_chunk, steps_per_call=steps_per_call)
        if max_steps is None:
            max_steps = DEFAULT_TRACED_MAX_STEPS
    if final_only:
        num_saves = 1
    elif num_saves is None and save_times is None:
        num_saves = DEFAULT_NUM_SAVES
    validate_run_options(params=params)
    if isinstance(state.time, jax.core.Tracer):  # (made or batched inside the transformation)
        times = _traced_save_grid(jnp.asarray(state.time, state.position.dtype), t_end=t_end, num_saves=num_saves,
                                  save_times=save_times)
    else:
        times = save_grid(float(np.asarray(state.time)), t_end=t_end, num_saves=num_saves, save_times=save_times)
    max_steps = check_positive_int("max_steps", DEFAULT_MAX_STEPS if max_steps is None else max_steps)
    if dt is not None and not isinstance(dt, jax.core.Tracer):
        dt = check_positive_number("dt (the first step an adaptive integrator tries)", dt)
    if final_only and on_chunk is not None:
        user_on_chunk, initial = on_chunk, [True]

        def on_chunk(done, piece):  # the first piece with a snapshot starts with the initial state
            if initial[0] and piece.time.shape[0]:
                initial[0] = False
                piece = _from_snapshot(piece, 1)
            user_on_chunk(done, piece)

    solution = record.solver(state, save_times=times, params=params, acceleration=acceleration, max_steps=max_steps,
                             dt=dt, chunks=chunks, on_chunk=on_chunk, steps_per_call=steps_per_call, **options)
    if final_only:
        solution = solution._replace(trajectory=_from_snapshot(solution.trajectory, -1))
    return solution


@partial(jax.jit, static_argnames=("first",))
def _from_snapshot(trajectory: Trajectory, first: int) -> Trajectory:
    """The snapshots of ``trajectory`` from index ``first`` on (one dispatch, not six slices)."""
    return trajectory._replace(
        time=trajectory.time[first:], position=trajectory.position[first:], velocity=trajectory.velocity[first:],
        energy=trajectory.energy[first:], linear_momentum=trajectory.linear_momentum[first:],
        angular_momentum=trajectory.angular_momentum[first:],
    )
