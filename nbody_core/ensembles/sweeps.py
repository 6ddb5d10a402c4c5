"""Sweep grammar: which parameters an ensemble may vary, and over which values.

Contract: :func:`parse_sweep` turns ``softening=0.001:0.1:log``, ``dt=1e-3:1e-2:8:log``,
``virial_ratio=0.2:0.8`` or ``integrator=leapfrog,yoshida4`` into a validated :class:`Sweep`;
:func:`format_sweep` is its inverse. The initial-condition parameters and their bounds come
from the preset registry (:mod:`nbody_core.systems.presets`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nbody_core.integrate.integrators import INTEGRATORS, get_integrator
from nbody_core.registry import Registry
from nbody_core.systems.presets import PRESETS, ICParameter

__all__ = ["SWEEPABLE_PARAMETERS", "IC_PARAMETERS", "Sweep", "parse_sweep", "format_sweep", "check_value",
           "check_integrator"]

#: Initial-condition parameters of every preset, by name (a name means the same thing, with
#: the same bounds, in every preset that has it).
IC_PARAMETERS: Registry[ICParameter] = Registry("initial-condition parameter", record_type=ICParameter)
for _preset in PRESETS.values():
    for _parameter in _preset.parameters:
        if _parameter.name not in IC_PARAMETERS:
            IC_PARAMETERS.register(_parameter.name, _parameter)
del _preset, _parameter

#: Parameters a sweep may vary, with what they mean.
SWEEPABLE_PARAMETERS: Registry[str] = Registry("sweep parameter", {
    "dt": "integration step, time units (every member still integrates to t_end = num_steps * dt)",
    "softening": "Plummer softening length eps, length units",
    **{
        name: f"{parameter.doc} ({', '.join(p.name for p in PRESETS.values() if name in p.parameter_names)})"
        for name, parameter in IC_PARAMETERS.items()
    },
    "integrator": "fixed-step integrator (static: members are grouped per integrator)",
})


def check_integrator(name) -> str:
    """``name`` if it is a fixed-step integrator, else ``ValueError`` in words: ensemble
    members run the fixed-step loop under ``vmap`` (an adaptive integrator's step count
    differs per member)."""
    record = get_integrator(name)
    if record.adaptive:
        fixed = INTEGRATORS.where(lambda integrator: not integrator.adaptive)
        raise ValueError(f"ensembles run fixed-step integrators ({', '.join(fixed)}); {record.name} is adaptive")
    return record.name


def check_value(name: str, value: float) -> float:
    """``value`` of the numeric parameter ``name`` as a float, or ``ValueError`` naming the
    bound it breaks (dt > 0, softening >= 0, the registry's bounds for the others)."""
    if name in IC_PARAMETERS:
        return IC_PARAMETERS[name].check(value)
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if name == "dt" and value <= 0:
        raise ValueError(f"dt must be positive, got {value!r}")
    if name == "softening" and value < 0:
        raise ValueError(f"softening must be >= 0, got {value!r}")
    return value


@dataclass(frozen=True)
class Sweep:
    """One swept parameter: a range (``low``, ``high``, ``scale``, optional ``points``) or an
    explicit tuple of ``values`` (numbers, or integrator names for ``integrator``)."""

    name: str
    low: float | None = None
    high: float | None = None
    scale: str = "linear"
    points: int | None = None
    values: tuple | None = None

    def __post_init__(self):
        SWEEPABLE_PARAMETERS.get(self.name)
        if self.values is not None:
            if self.low is not None or self.high is not None or self.points is not None:
                raise ValueError(f"sweep {self.name!r}: give either a range or a list of values, not both")
            values = tuple(self.values)
            if not values:
                raise ValueError(f"sweep {self.name!r} has an empty list of values")
            if self.name == "integrator":
                for value in values:
                    check_integrator(value)
            else:
                values = tuple(check_value(self.name, v) for v in values)
            if len(set(values)) != len(values):
                raise ValueError(f"sweep {self.name!r} lists a value twice: {values}")
            object.__setattr__(self, "values", values)
            return
        if self.name == "integrator":
            raise ValueError("the integrator sweep takes a list of names, e.g. integrator=leapfrog,yoshida4")
        if self.low is None or self.high is None:
            raise ValueError(f"sweep {self.name!r} needs both ends of its range (low:high)")
        low, high = check_value(self.name, self.low), check_value(self.name, self.high)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        if self.scale not in ("linear", "log"):
            raise ValueError(f"sweep {self.name!r}: scale must be 'linear' or 'log', got {self.scale!r}")
        if not low < high:
            raise ValueError(f"sweep {self.name!r} has an empty range: low {low!r} must be below high {high!r}")
        if self.scale == "log" and low <= 0:
            raise ValueError(f"sweep {self.name!r}: a log range needs low > 0, got {low!r}")
        if self.points is not None:
            if isinstance(self.points, bool) or not isinstance(self.points, (int, np.integer)) or self.points < 2:
                raise ValueError(f"sweep {self.name!r}: a range needs at least 2 points, got {self.points!r}")
            object.__setattr__(self, "points", int(self.points))

    @property
    def is_range(self) -> bool:
        return self.values is None

    def grid_values(self, points: int | None = None) -> tuple:
        """The grid points of this sweep (``points`` for a range without its own count)."""
        if not self.is_range:
            return self.values
        count = self.points if self.points is not None else points
        if count is None or count < 1:
            raise ValueError(f"sweep {self.name!r} needs a number of points")
        if count == 1:
            return (self.low,)
        if self.scale == "log":
            grid = np.geomspace(self.low, self.high, count)
        else:
            grid = np.linspace(self.low, self.high, count)
        return tuple(float(v) for v in grid)


def parse_sweep(text: str) -> Sweep:
    """Parse a sweep from the command-line syntax.

    ``NAME=LOW:HIGH`` (linear range), ``NAME=LOW:HIGH:log`` (log range), ``NAME=LOW:HIGH:K``
    or ``NAME=LOW:HIGH:K:log`` (a range with its own K grid points), ``NAME=V1,V2,...``
    (explicit values; the only form for ``integrator``). A range without K gets its points
    from the member count (grid design) or is sampled per member (random design).

    Raises:
        ValueError: naming the problem (syntax, unknown parameter, empty range, ...).
    """
    if not isinstance(text, str) or "=" not in text:
        raise ValueError(f"sweep {text!r} must look like NAME=LOW:HIGH[:POINTS][:log] or NAME=V1,V2,...")
    name, _, spec = (part.strip() for part in text.partition("="))
    if not spec:
        raise ValueError(f"sweep {text!r} has nothing after '='")
    SWEEPABLE_PARAMETERS.get(name)
    if ":" not in spec:
        items = [item.strip() for item in spec.split(",") if item.strip()]
        if name == "integrator":
            return Sweep(name, values=tuple(items))
        return Sweep(name, values=tuple(_number(name, item) for item in items))
    parts = [part.strip() for part in spec.split(":")]
    if len(parts) < 2 or len(parts) > 4:
        raise ValueError(f"sweep {text!r} must look like NAME=LOW:HIGH[:POINTS][:log]")
    low, high, rest = _number(name, parts[0]), _number(name, parts[1]), parts[2:]
    scale, points = "linear", None
    if rest and rest[-1].lower() in ("log", "lin", "linear"):
        scale = "log" if rest.pop().lower() == "log" else "linear"
    if rest:
        if len(rest) > 1 or not rest[0].isdigit():
            raise ValueError(f"sweep {text!r}: expected a whole number of points or 'log' after LOW:HIGH")
        points = int(rest[0])
    return Sweep(name, low=low, high=high, scale=scale, points=points)


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"sweep {name!r}: {text!r} is not a number") from None


def format_sweep(sweep: Sweep) -> str:
    """The canonical command-line text of ``sweep`` (inverse of :func:`parse_sweep`)."""
    if not sweep.is_range:
        return f"{sweep.name}=" + ",".join(str(v) if isinstance(v, str) else repr(v) for v in sweep.values)
    text = f"{sweep.name}={sweep.low!r}:{sweep.high!r}"
    if sweep.points is not None:
        text += f":{sweep.points}"
    return text + (":log" if sweep.scale == "log" else "")
