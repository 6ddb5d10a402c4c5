"""What the live run's work costs, the refusals in words, and the bounded pieces it runs in.

Contract: :func:`step_seconds` estimates one integrator step (the cost model of
:mod:`nbody_explorer.limits`); :func:`check_frame_cost` refuses, before any work starts, a frame (Play,
Step) or a reveal whose estimate is over the per-action budget, or an adaptive step too long
to be one piece; :func:`steps_per_piece` turns measured seconds per step into the steps of one
compiled call, so a piece stays near :data:`PIECE_S` and a stop acts within one. No Panel.
"""

from __future__ import annotations

import math

from nbody_explorer.limits import (
    LIMITS, SECONDS_PER_PAIR_STEP, STEP_OVERHEAD_PAIRS, Limits, check_cost, simulation_cpu_seconds,
)

__all__ = [
    "ADAPTIVE_MAX_STEPS",
    "FORCE_EVALUATIONS",
    "MAX_STEP_S",
    "PIECE_S",
    "adaptive_step_cap",
    "check_frame_cost",
    "step_seconds",
    "steps_per_piece",
]

#: Target wall time of one piece (one compiled call between two checkpoints), seconds: a
#: Pause, Reset or closed tab acts within one piece, and the scheduler can hand the CPU to
#: another session this often (issue 26: <= ~100 ms a piece at the UI's caps).
PIECE_S = 0.1
#: An adaptive step cannot be cut: a run whose one step is estimated longer than this is
#: refused (so that a stop still acts within well under a second).
MAX_STEP_S = 0.25
#: Cap on attempted adaptive steps in one frame whatever their cost (IAS15 takes ~3000 steps
#: over the whole Pythagorean run to t = 70): a frame that needs more stops the run.
ADAPTIVE_MAX_STEPS = 100_000

#: Force evaluations (N^2 pair sums) one step costs, per integrator, in units of the model of
#: :func:`nbody_explorer.limits.simulation_cpu_seconds`. Fixed-step: counted from the schemes. Adaptive,
#: measured on this 2-core machine (float64, Plummer, load 5-10): dopri8 12 stages + the FSAL
#: derivative + an energy per step, ~0.55 s a step at N = 2000 (-> ~20; 237 ms median at
#: N = 1443, load 13, benchmarks/results/pieces.md); ias15 ~3 predictor-corrector passes of 7
#: nodes and the anchored forces, 58 ms at N = 512 and 228 ms at N = 1000 (-> ~38), but 335 ms
#: median at N = 1047 at load 13 (pieces.md): 50, so its largest allowed step stays ~0.25 s.
FORCE_EVALUATIONS = {"euler": 1, "leapfrog": 1, "yoshida4": 3, "yoshida4_kdk": 3, "rk4": 4, "dopri8": 20, "ias15": 50}


def step_seconds(integrator: str, num_bodies: int) -> float:
    """Estimated CPU seconds of one step of ``integrator`` at ``num_bodies`` bodies."""
    return simulation_cpu_seconds(num_bodies=num_bodies, num_steps=1,
                                  force_evaluations=FORCE_EVALUATIONS.get(integrator, 4))


def adaptive_step_cap(integrator: str, num_bodies: int, *, limits: Limits | None = None) -> int:
    """Attempted adaptive steps one frame or reveal may take: as many as the per-action CPU
    budget buys at the estimated step cost, at most :data:`ADAPTIVE_MAX_STEPS`."""
    budget = (LIMITS if limits is None else limits).max_click_cpu_seconds
    return max(1, min(ADAPTIVE_MAX_STEPS, int(budget / step_seconds(integrator, num_bodies))))


def _largest_bodies(seconds: float, evaluations: int) -> int:
    """Largest N whose step of ``evaluations`` force evaluations fits ``seconds``."""
    pairs = seconds / (evaluations * SECONDS_PER_PAIR_STEP)
    return max(2, int(math.sqrt(max(0.0, pairs - STEP_OVERHEAD_PAIRS))))


def check_frame_cost(*, integrator: str, adaptive: bool, num_bodies: int, steps: int, what: str = "One frame",
                     reduce: str = "Steps per frame or Bodies N", limits: Limits | None = None) -> float:
    """Refuse, in one sentence with the estimate and what to change, work over the budget.

    Args:
        integrator: the integrator's name (as the Integrator menu shows it).
        adaptive: whether it chooses its own steps (then ``steps`` is not a step count).
        num_bodies: N.
        steps: fixed-step: the steps of the action (a frame's Steps per frame).
        what: the action in the user's words ("One frame", "This reveal").
        reduce: the controls to turn down, by the labels the page shows.
        limits: caps (:data:`nbody_explorer.limits.LIMITS` by default).

    Returns:
        The estimate, CPU seconds (one step for an adaptive integrator).

    Raises:
        ValueError: for an adaptive step longer than :data:`MAX_STEP_S`, or a fixed-step
            action over the per-action budget (:func:`nbody_explorer.limits.check_cost`'s wording).
    """
    one = step_seconds(integrator, num_bodies)
    if adaptive:
        if one > MAX_STEP_S:
            largest = _largest_bodies(MAX_STEP_S, FORCE_EVALUATIONS.get(integrator, 4))
            raise ValueError(
                f"With {integrator}, one step of {num_bodies} bodies would need about {one:.1f} s of the "
                f"server's CPU and cannot be stopped halfway (a step may take at most {MAX_STEP_S} s here): "
                f"choose at most {largest} for Bodies N, or a fixed-step Integrator such as yoshida4"
            )
        return one
    return check_cost(one * steps, what=f"{what} of {steps} steps of {num_bodies} bodies with {integrator}",
                      reduce=reduce, limits=limits)


def steps_per_piece(seconds_per_step: float, *, cap: int) -> int:
    """Steps of one compiled call so that it takes about :data:`PIECE_S` at the measured
    ``seconds_per_step`` (at least 1, at most ``cap``)."""
    return max(1, min(cap, int(PIECE_S / max(seconds_per_step, 1e-9))))
