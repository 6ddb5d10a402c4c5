"""What the Simulate tab says when a live run goes wrong, in a student's words.

A run that turns non-finite pauses with :func:`fault_message` (which step, which bodies,
and what to change); a run whose energy error passes :data:`ENERGY_WARNING_LEVEL` warns once
with :func:`energy_warning`. Pure functions of the run's numbers; no Panel import.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ENERGY_WARNING_LEVEL", "closest_pair", "energy_warning", "fault_message"]

#: Relative energy error above which a live run warns once that dt is likely too large
#: (leapfrog on every preset at its own dt stays below 1e-3; see tests/app).
ENERGY_WARNING_LEVEL = 1e-2


def closest_pair(position: np.ndarray, *, block: int = 256) -> tuple[int, int, float]:
    """``(i, j, distance)`` of the closest pair of bodies (``[n, 3]`` positions, n >= 2),
    in blocks of rows so memory stays ``O(block * n)``."""
    position = np.asarray(position, np.float64)
    best = (0, 1, math.inf)
    for start in range(0, position.shape[0], block):
        rows = position[start:start + block]
        distance = np.linalg.norm(rows[:, None, :] - position[None, :, :], axis=-1)
        distance[np.arange(rows.shape[0]), start + np.arange(rows.shape[0])] = np.inf
        k = int(np.argmin(distance))
        i, j = divmod(k, position.shape[0])
        if distance.flat[k] < best[2]:
            best = (min(start + i, j), max(start + i, j), float(distance.flat[k]))
    return best


def fault_message(*, first_bad: int, time: float, dt: float, softening: float, position: np.ndarray,
                  initial_energy_finite: bool, precision: str) -> str:
    """Why a run paused at step ``first_bad``: ``time`` is the last good state's time,
    ``position`` its ``[n, 3]`` positions (length units)."""
    i, j, distance = closest_pair(position)
    if not initial_energy_finite:
        cause = (
            f"bodies {i} and {j} start {distance:.3g} apart with zero softening, so the initial energy is "
            "infinite: add softening (or move them apart) and press Reset"
            if distance == 0
            else f"the initial energy is not finite in {precision}: rescale the initial conditions"
        )
    elif softening == 0:
        cause = (
            f"likely a close encounter with zero softening (bodies {i} and {j} were {distance:.3g} apart "
            "just before): add softening or lower dt"
        )
    else:
        cause = (
            f"likely the step dt = {dt:.3g} is too large for this configuration (bodies {i} and {j} were "
            f"{distance:.3g} apart, softening {softening:.3g}): lower dt"
        )
    return (
        f"Paused: positions or energy became non-finite (NaN or inf) at step {first_bad} "
        f"(t = {time + dt:.4g}): {cause}. The last good state (step {first_bad - 1}, "
        f"t = {time:.4g}) is kept and can be downloaded; press Play to continue from it, or Reset."
    )


def energy_warning(energy_error: float, *, steps_taken: int, time: float, dt: float, softening: float,
                   position: np.ndarray, integrator: str, adaptive: bool) -> str:
    """The once-per-run warning when ``|dE/E0|`` passes :data:`ENERGY_WARNING_LEVEL`."""
    if adaptive:
        # dt is only the save interval here: the integrator chose its own steps.
        return (
            f"Energy error |ΔE/E₀| = {energy_error:.2g} passed {ENERGY_WARNING_LEVEL:g} at t = "
            f"{time:.4g} with the adaptive {integrator}, whose steps are chosen by its "
            "error control (dt is only the save interval): the bodies likely met closer than "
            "float precision resolves; add some softening or use float64."
        )
    advice = "try a smaller dt"
    if softening == 0:
        i, j, distance = closest_pair(position)
        advice += f" or some softening (bodies {i} and {j} are {distance:.3g} apart)"
    if integrator == "euler":
        advice += ", or a symplectic integrator (leapfrog, yoshida4)"
    return (
        f"Energy error |ΔE/E₀| = {energy_error:.2g} passed {ENERGY_WARNING_LEVEL:g} at step "
        f"{steps_taken} (t = {time:.4g}): dt = {dt:.3g} is likely too large for this "
        f"configuration; {advice}."
    )
