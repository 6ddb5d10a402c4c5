"""Eager checks of run options, with messages that name the bad value.

Contract: every entry point validates its configuration here before anything is compiled
(``ValueError`` naming the value); traced values (inside ``jit``/``grad``) pass through
unchecked. Runtime trouble is not found here: it comes back as a ``RESULTS`` code.
"""

from __future__ import annotations

import math

import jax
import numpy as np

from nbody_core.physics.state import PhysicsParams

__all__ = [
    "MAX_STEPS",
    "validate_run_options",
    "steps_for_duration",
    "check_positive_int",
    "check_positive_number",
    "save_grid",
]

# Loop counters are int32 when x64 is off; one call never runs more steps than this.
MAX_STEPS = 2**31 - 1


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def validate_run_options(*, dt=None, num_steps=None, save_every=None, params=None) -> None:
    """Eager checks with clear messages; traced values (inside jit/grad) pass through."""
    if dt is not None and _is_concrete(dt):
        try:
            dt_value = dt if type(dt) is float else float(np.asarray(dt, dtype=float))
        except (TypeError, ValueError):
            raise ValueError(f"dt must be a positive finite number, got {dt!r}") from None
        if not math.isfinite(dt_value) or dt_value <= 0:
            raise ValueError(f"dt must be a positive finite number, got {dt_value!r}")
    if num_steps is not None and _is_concrete(num_steps):
        if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or num_steps < 0:
            raise ValueError(f"num_steps must be a non-negative integer, got {num_steps!r}")
        if num_steps > MAX_STEPS:
            raise ValueError(f"num_steps {num_steps} exceeds the limit of {MAX_STEPS} steps per call")
    if save_every is not None:
        if isinstance(save_every, bool) or not isinstance(save_every, (int, np.integer)) or save_every < 1:
            raise ValueError(f"save_every must be a positive integer, got {save_every!r}")
    if params is not None:
        if all(type(value) is float for value in params):  # the common case, checked without NumPy
            if all(math.isfinite(value) for value in params) and params.softening >= 0 and params.G > 0 \
                    and params.screening_length > 0:
                return
        for field, value in zip(PhysicsParams._fields, params):
            if not _is_concrete(value):
                continue
            arr = np.asarray(value, dtype=float)
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{field} must be finite, got {value!r}")
        if _is_concrete(params.softening) and np.any(np.asarray(params.softening) < 0):
            raise ValueError(f"softening must be >= 0, got {params.softening!r}")
        if _is_concrete(params.G) and np.any(np.asarray(params.G) <= 0):
            raise ValueError(f"G must be positive, got {params.G!r}")
        if _is_concrete(params.screening_length) and np.any(np.asarray(params.screening_length) <= 0):
            raise ValueError(f"screening_length must be positive, got {params.screening_length!r}")


def steps_for_duration(t_end: float, dt: float) -> tuple[int, float]:
    """Number of uniform steps that land exactly on ``t_end``, and the step that does it.

    The step is ``t_end / ceil(t_end / dt)`` <= ``dt``: uniform steps keep a symplectic
    integrator symplectic, which a short final step would not.
    """
    validate_run_options(dt=dt)
    if not math.isfinite(t_end) or t_end <= 0:
        raise ValueError(f"t_end must be a positive finite number, got {t_end!r}")
    ratio = t_end / dt
    if not math.isfinite(ratio) or ratio > MAX_STEPS:
        raise ValueError(
            f"t_end / dt = {ratio:.3g} steps exceeds the limit of {MAX_STEPS}; use a larger dt or a shorter t_end"
        )
    num_steps = max(1, math.ceil(ratio - 1e-9))
    return num_steps, t_end / num_steps


def check_positive_int(name: str, value, *, limit: int = MAX_STEPS) -> int:
    """``value`` as an int in ``[1, limit]``, else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if value > limit:
        raise ValueError(f"{name} {value} exceeds the limit of {limit}")
    return int(value)


def check_positive_number(name: str, value) -> float:
    """``value`` as a positive finite float, else ``ValueError`` naming ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}") from None
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return number


def save_grid(t0: float, *, t_end=None, num_saves=None, save_times=None) -> np.ndarray:
    """The times an adaptive run lands on and saves, ``t0`` first (float64 ``[k + 1]``).

    ``num_saves`` intervals evenly spaced up to the END time ``t_end`` (``t0 + (t_end - t0)
    k / num_saves``, computed for each ``k``, never accumulated; the last exactly ``t_end``), or the increasing
    ``save_times`` after ``t0`` (the last is the end time; ``t_end``, if also given, must
    equal it).

    Raises:
        ValueError: a non-increasing or non-finite grid, an end time not after ``t0``, a
            bad ``num_saves``.
    """
    if save_times is not None:
        if num_saves is not None:
            raise ValueError("give num_saves or save_times, not both")
        times = np.asarray(save_times, dtype=np.float64).ravel()
        if times.size < 1 or not np.all(np.isfinite(times)) or np.any(np.diff(np.concatenate([[t0], times])) <= 0):
            raise ValueError(f"save_times must be finite and strictly increasing after state.time = {t0!r}")
        if t_end is not None and float(t_end) != float(times[-1]):
            raise ValueError(f"t_end ({t_end!r}) must equal the last save time ({times[-1]!r})")
        return np.concatenate([[t0], times])
    try:
        end = float(t_end)
    except (TypeError, ValueError):
        raise ValueError(f"t_end must be a finite end time later than state.time = {t0!r}, got {t_end!r}") from None
    if not (math.isfinite(end) and end > t0):
        raise ValueError(f"t_end must be a finite end time later than state.time = {t0!r}, got {t_end!r}")
    num_saves = check_positive_int("num_saves", num_saves)
    times = t0 + (end - t0) * np.arange(num_saves + 1) / num_saves
    times[-1] = end
    return times
