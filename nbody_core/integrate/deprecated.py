"""Deprecated entry points kept as thin aliases of :func:`~nbody_core.integrate.solve.solve`.

Contract: each emits a ``DeprecationWarning`` naming its replacement and returns what it
returned before (a ``(Trajectory, dict)`` pair), computed by ``solve``: the same numbers.
"""

from __future__ import annotations

import warnings
from typing import Callable

import nbody_core.defaults as defaults
from nbody_core.physics.state import ParticleState, PhysicsParams
from .adaptive import DEFAULT_ATOL, DEFAULT_RTOL
from .ias15 import EPSILON
from .integrators import INTEGRATORS, get_integrator
from .solution import RESULTS
from .solve import DEFAULT_MAX_STEPS, solve
from .trajectory import Trajectory

__all__ = ["simulate_adaptive", "simulate_ias15"]


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated; use {new}, which returns a Solution (trajectory, stats, result)",
                  DeprecationWarning, stacklevel=3)


def simulate_adaptive(
    state: ParticleState,
    *,
    t_end: float,
    num_saves: int = 100,
    params: PhysicsParams | None = None,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    forces: str = defaults.FORCES,
    potential=defaults.POTENTIAL,
    max_steps: int = DEFAULT_MAX_STEPS,
    integrator: str = defaults.ADAPTIVE_INTEGRATOR,
    chunks: int = 1,
    on_chunk: Callable[[int, Trajectory], None] | None = None,
    initial_dt: float | None = None,
) -> tuple[Trajectory, dict]:
    """Deprecated: ``solve(state, t_end=..., integrator="ias15" | "dopri8", ...)``.

    ``integrator`` defaults to ``"ias15"`` (:data:`nbody_core.defaults.ADAPTIVE_INTEGRATOR`;
    it was ``"dopri8"``: CHANGELOG.md).

    Returns:
        ``(trajectory, stats)``, stats a dict with ``accepted_steps``, ``rejected_steps``,
        ``next_dt``, ``result`` (a :class:`RESULTS` member) and ``message``. ``rtol`` and
        ``atol`` are ignored by ias15, as they were.
    """
    _warn("simulate_adaptive", "nbody_core.solve(state, t_end=..., integrator=...)")
    record = get_integrator(integrator)
    if not record.adaptive:
        adaptive = [name for name, other in INTEGRATORS.items() if other.adaptive]
        raise ValueError(f"simulate_adaptive runs adaptive integrators ({', '.join(adaptive)}), not the "
                         f"fixed-step {record.name!r}; use solve, which runs both")
    tolerances = {"rtol": rtol, "atol": atol} if "rtol" in dict(record.options) else {}
    solution = solve(state, t_end=t_end, num_saves=num_saves, params=params, forces=forces, potential=potential,
                     max_steps=max_steps, integrator=integrator, chunks=chunks, on_chunk=on_chunk, dt=initial_dt,
                     **tolerances)
    stats = solution.stats
    return solution.trajectory, {
        "accepted_steps": stats.num_accepted_steps, "rejected_steps": stats.num_rejected_steps,
        "result": solution.result, "message": solution.message, "next_dt": stats.next_dt,
    }


def simulate_ias15(
    state: ParticleState,
    *,
    t_end: float | None = None,
    num_saves: int = 100,
    save_times=None,
    params: PhysicsParams | None = None,
    epsilon: float = EPSILON,
    forces: str = "analytic",
    potential="newtonian",
    max_steps: int = DEFAULT_MAX_STEPS,
    initial_dt: float | None = None,
    adaptive_mode: str = "global",
) -> tuple[Trajectory, dict]:
    """Deprecated: ``solve(state, t_end=..., integrator="ias15", epsilon=..., adaptive_mode=...)``.

    Returns:
        ``(trajectory, stats)``, stats a dict with ``accepted_steps``, ``rejected_steps``,
        ``iterations``, ``max_relative_energy_error``, ``result`` (``"successful"`` or the
        failure in words), ``status`` (``"successful"``, ``"max_steps"`` or ``"failed"``) and
        ``next_dt``.
    """
    _warn("simulate_ias15", 'nbody_core.solve(state, t_end=..., integrator="ias15")')
    solution = solve(state, t_end=t_end, num_saves=None if save_times is not None else num_saves,
                     save_times=save_times, params=params, forces=forces, potential=potential, max_steps=max_steps,
                     dt=initial_dt, integrator="ias15", epsilon=epsilon, adaptive_mode=adaptive_mode)
    stats, result = solution.stats, solution.result
    status = {RESULTS.successful: "successful", RESULTS.max_steps_reached: "max_steps"}.get(result, "failed")
    return solution.trajectory, {
        "accepted_steps": stats.num_accepted_steps, "rejected_steps": stats.num_rejected_steps,
        "iterations": stats.iterations,
        "max_relative_energy_error": float(solution.trajectory.max_relative_energy_error),
        "result": "successful" if result is RESULTS.successful else solution.message,
        "status": status, "next_dt": stats.next_dt,
    }
