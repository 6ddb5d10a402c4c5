"""What an ensemble runs: the validated :class:`EnsembleSpec` and its resolved member table.

Contract: ``EnsembleSpec(...)`` validates eagerly (``ValueError`` naming the problem) and
fills every default from the preset registry; :func:`member_table` resolves the design into
every member's parameters, integrator, seed index and step count. The table is computed
once per spec (cached on it, read-only), however many callers ask.

Design
    ``design="grid"`` takes the Cartesian product of the sweeps' points and gives member
    ``i`` grid point ``i mod G`` (so members beyond ``G`` are replicas that differ by seed);
    ``design="random"`` draws each member's values independently (uniform, log-uniform for
    ``:log`` ranges, uniform choice from lists) with ``numpy.random.PCG64(seed)``. Every
    member integrates to ``t_end = num_steps * dt``; a member whose swept step is ``dt_i``
    takes ``ceil(t_end / dt_i)`` steps (rounded up to a multiple of ``num_saves``, with the
    step shrunk to land exactly on ``t_end``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import asdict, dataclass
from functools import cached_property, partial
from typing import Any, Mapping, NamedTuple

import numpy as np

from nbody_core.physics.forces import acceleration_function
from nbody_core.integrate.integrators import INTEGRATORS
from nbody_core.physics.potentials import get_potential
from nbody_core.systems.presets import MAX_BODIES, PRESETS, get_preset
from nbody_core.provenance import package_versions
from nbody_core.physics.units import get_unit_system
from .sweeps import IC_PARAMETERS, Sweep, check_integrator, check_value, format_sweep, parse_sweep

__all__ = [
    "MAX_MEMBERS",
    "MAX_STEPS_PER_MEMBER",
    "PARAMETER_DIMENSIONS",
    "SYSTEM_PARAMETERS",
    "EnsembleSpec",
    "MemberTable",
    "member_table",
    "check_int",
    "steps_per_save",
]

#: Dimension (``units.DIMENSIONS``) of each numeric sweepable parameter.
PARAMETER_DIMENSIONS: dict[str, str] = {
    "dt": "time",
    "softening": "length",
    **{name: parameter.units for name, parameter in IC_PARAMETERS.items()},
}

#: Hard cap on members of one ensemble (memory of the host-side tables, not of a chunk).
MAX_MEMBERS = 1_000_000
#: Hard cap on integration steps of one member (a tiny swept dt would otherwise run forever).
MAX_STEPS_PER_MEMBER = 10_000_000

#: Initial-condition parameters of each preset (a view of the registry in
#: :mod:`nbody_core.systems.presets`; dt, softening and the integrator apply to every system).
SYSTEM_PARAMETERS: dict[str, tuple[str, ...]] = {name: p.parameter_names for name, p in PRESETS.items()}


def check_int(name: str, value, low: int, high: int) -> None:
    """``ValueError`` naming ``name`` unless ``value`` is an integer in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")
    if value > high:
        raise ValueError(f"{name} {value} exceeds the cap of {high}")


def steps_per_save(t_end: float, dt: float, num_saves: int) -> int:
    """Steps between two saves for a member of step ``dt`` to reach ``t_end`` in ``num_saves``
    equal blocks (at least 1)."""
    return max(1, math.ceil(t_end / (dt * num_saves) - 1e-9))


class MemberTable(NamedTuple):
    """Per-member inputs, all ``[M]`` read-only NumPy arrays, in member order.

    Attributes:
        parameters: numeric parameter name -> ``[M]`` float64 requested values (only the
            parameters with a value: see :meth:`EnsembleSpec.parameter_names`).
        integrator: ``[M]`` integrator names.
        ic_index: ``[M]`` index folded into the seed key for the initial conditions.
        dt_used: ``[M]`` step actually taken (<= the requested dt; lands on t_end).
        num_steps: ``[M]`` steps taken.
    """

    parameters: dict[str, np.ndarray]
    integrator: np.ndarray
    ic_index: np.ndarray
    dt_used: np.ndarray
    num_steps: np.ndarray


@dataclass(frozen=True)
class EnsembleSpec:
    """What to run; validated eagerly on construction (``ValueError`` naming the problem).

    Attributes:
        system: preset name (see ``nbody_core.PRESETS``).
        num_bodies: N per member (scalable presets; None = the preset's default).
        num_members: M >= 1 members (at most :data:`MAX_MEMBERS`).
        num_steps: steps at the base ``dt``; every member integrates to ``num_steps * dt``.
        dt: base step, time units (None = the preset's).
        softening: base Plummer softening, length units (None = the preset's).
        integrator: base integrator name.
        sweeps: the swept parameters (at most one sweep per parameter).
        design: ``"grid"`` or ``"random"``.
        seed: non-negative integer below 2**32; the root of every random choice.
        shared_initial_conditions: every member starts from member 0's initial conditions.
        num_saves: snapshots after the initial one (None = the largest divisor of
            ``num_steps`` up to 20); must divide ``num_steps``.
        save_trajectories: keep positions and velocities of every saved snapshot.
        forces, potential: force method and pair potential (as in ``simulate``).
        virial_ratio, eccentricity, mass_ratio: fixed values of the preset's
            initial-condition parameters (``Preset.parameters``) for members that do not
            sweep them (None = the preset's default).
    """

    system: str = "plummer"
    num_bodies: int | None = None
    num_members: int = 16
    num_steps: int = 500
    dt: float | None = None
    softening: float | None = None
    integrator: str = "leapfrog"
    sweeps: tuple[Sweep, ...] = ()
    design: str = "grid"
    seed: int = 0
    shared_initial_conditions: bool = False
    num_saves: int | None = None
    save_trajectories: bool = False
    forces: str = "auto"
    potential: str = "newtonian"
    virial_ratio: float | None = None
    eccentricity: float | None = None
    mass_ratio: float | None = None

    def __post_init__(self):
        set_ = partial(object.__setattr__, self)
        preset = get_preset(self.system)
        if preset.scalable:
            n = preset.default_num_bodies if self.num_bodies is None else self.num_bodies
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
                raise ValueError(f"num_bodies must be an integer >= 2, got {n!r}")
            if n > MAX_BODIES:
                raise ValueError(f"num_bodies {n} exceeds the cap of {MAX_BODIES}")
            set_("num_bodies", int(n))
        else:
            if self.num_bodies not in (None, preset.num_bodies):
                raise ValueError(
                    f"system {self.system!r} always has {preset.num_bodies} bodies, got num_bodies={self.num_bodies!r}"
                )
            set_("num_bodies", preset.num_bodies)
        check_int("num_members", self.num_members, 1, MAX_MEMBERS)
        check_int("num_steps", self.num_steps, 1, MAX_STEPS_PER_MEMBER)
        check_int("seed", self.seed, 0, 2**32 - 1)
        set_("dt", check_value("dt", preset.dt if self.dt is None else self.dt))
        set_("softening", check_value("softening", preset.softening if self.softening is None else self.softening))
        check_integrator(self.integrator)
        if self.design not in ("grid", "random"):
            raise ValueError(f"design must be 'grid' or 'random', got {self.design!r}")
        potential = get_potential(self.potential)
        acceleration_function(self.forces, potential)  # method/potential pair, eagerly
        if not isinstance(self.potential, str):
            raise ValueError("potential must be a registry name (it is recorded in the metadata)")
        sweeps = tuple(parse_sweep(s) if isinstance(s, str) else s for s in self.sweeps)
        for sweep in sweeps:
            if not isinstance(sweep, Sweep):
                raise ValueError(f"sweeps must be Sweep objects or strings, got {sweep!r}")
        names = [s.name for s in sweeps]
        for name in set(names):
            if names.count(name) > 1:
                raise ValueError(f"parameter {name!r} is swept twice")
        for name in IC_PARAMETERS:
            value = getattr(self, name)
            if name in names or value is not None:
                preset.parameter(name)  # "does not apply to system ..." for another system's
            if value is not None:
                set_(name, preset.parameter(name).check(value))
        if self.design == "random" and any(s.is_range and s.points is not None for s in sweeps):
            raise ValueError("a range's number of points only applies to the grid design; drop ':K' for design='random'")
        set_("sweeps", sweeps)
        if self.num_saves is None:
            set_("num_saves", max(d for d in range(1, 21) if self.num_steps % d == 0))
        check_int("num_saves", self.num_saves, 1, self.num_steps)
        if self.num_steps % self.num_saves:
            raise ValueError(f"num_saves {self.num_saves} must divide num_steps {self.num_steps}")
        set_("shared_initial_conditions", bool(self.shared_initial_conditions))
        set_("save_trajectories", bool(self.save_trajectories))
        if self.design == "grid":
            grid_size = len(self.grid_points())
            if grid_size > self.num_members:
                raise ValueError(
                    f"the grid has {grid_size} points but only {self.num_members} members; "
                    "raise num_members or lower the points per sweep"
                )
            if self.shared_initial_conditions and self.num_members != grid_size and sweeps:
                raise ValueError(
                    f"with shared initial conditions members beyond the {grid_size} grid points "
                    f"would repeat identical runs; use num_members={grid_size}"
                )
        dt_sweep = self.sweep("dt")
        if dt_sweep is not None:
            smallest = min(dt_sweep.values) if not dt_sweep.is_range else dt_sweep.low
            steps = steps_per_save(self.t_end, smallest, self.num_saves) * self.num_saves
            if steps > MAX_STEPS_PER_MEMBER:
                raise ValueError(
                    f"dt = {smallest!r} needs {steps} steps to reach t_end = {self.t_end!r}; "
                    f"the cap is {MAX_STEPS_PER_MEMBER}"
                )

    @property
    def t_end(self) -> float:
        """End time of every member, ``num_steps * dt``, time units."""
        return self.num_steps * self.dt

    @property
    def integrators(self) -> tuple[str, ...]:
        sweep = self.sweep("integrator")
        return (self.integrator,) if sweep is None else sweep.values

    def sweep(self, name: str) -> Sweep | None:
        return next((s for s in self.sweeps if s.name == name), None)

    def initial_condition_values(self) -> dict[str, float | None]:
        """The preset's initial-condition parameters: the spec's fixed value, else the
        preset's default (None: not imposed, e.g. Plummer velocities as sampled)."""
        return {
            p.name: p.default if getattr(self, p.name) is None else getattr(self, p.name)
            for p in get_preset(self.system).parameters
        }

    def parameter_names(self) -> tuple[str, ...]:
        """Numeric columns of the parameter table: dt, softening and the system's
        initial-condition parameters that have a value (swept, fixed, or a default that is
        not None). A parameter left free (Plummer's virial ratio unless requested) has no
        column, so no column is ever all NaN."""
        values = self.initial_condition_values()
        return ("dt", "softening", *(
            name for name, value in values.items() if value is not None or self.sweep(name) is not None
        ))

    def swept_names(self) -> tuple[str, ...]:
        """Names of the swept parameters, integrator included, in sweep order."""
        return tuple(s.name for s in self.sweeps)

    def parameter_units(self) -> dict[str, str]:
        """Unit label of each numeric column in the preset's unit system (``"1"``:
        dimensionless)."""
        units = get_unit_system(get_preset(self.system).units)
        return {name: units.label(PARAMETER_DIMENSIONS[name]) for name in self.parameter_names()}

    def grid_points(self) -> list[tuple]:
        """Cartesian product of the sweeps' points (grid design), in sweep order."""
        if not self.sweeps:
            return [()]
        counts = {s.name: len(s.values) for s in self.sweeps if not s.is_range}
        counts.update({s.name: s.points for s in self.sweeps if s.is_range and s.points is not None})
        free = [s for s in self.sweeps if s.name not in counts]
        known = math.prod(counts.values()) if counts else 1
        if free:
            share = max(1, self.num_members // known)
            points = max(1, int(math.floor(share ** (1.0 / len(free)) + 1e-9)))
        else:
            points = None
        return list(itertools.product(*(s.grid_values(points) for s in self.sweeps)))

    @cached_property
    def table(self) -> MemberTable:
        """The resolved :class:`MemberTable`, computed once per spec (read-only arrays)."""
        return _resolve(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (sweeps in their command-line syntax)."""
        data = asdict(self)
        data["sweeps"] = [format_sweep(s) for s in self.sweeps]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EnsembleSpec":
        data = dict(data)
        data["sweeps"] = tuple(parse_sweep(s) for s in data.get("sweeps", ()))
        return cls(**data)

    def fingerprint(self) -> str:
        """sha256 of the spec and the library versions (checkpoints match it on resume)."""
        text = json.dumps({"spec": self.to_dict(), "versions": package_versions()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def member_table(spec: EnsembleSpec) -> MemberTable:
    """Every member's parameters, integrator, seed index and steps (``spec.table``: resolved
    once per spec)."""
    return spec.table


def _resolve(spec: EnsembleSpec) -> MemberTable:
    m = spec.num_members
    base = {"dt": spec.dt, "softening": spec.softening}
    base.update({name: value for name, value in spec.initial_condition_values().items() if value is not None})
    columns: dict[str, Any] = {name: np.full(m, value, dtype=np.float64) for name, value in base.items()}
    integrator = np.full(m, spec.integrator, dtype=f"<U{max(len(n) for n in INTEGRATORS)}")
    if spec.design == "grid":
        grid = spec.grid_points()
        index = np.arange(m) % len(grid)
        for column, sweep in enumerate(spec.sweeps):
            values = [point[column] for point in grid]
            if sweep.name == "integrator":
                integrator[:] = np.asarray(values)[index]
            else:
                columns[sweep.name] = np.asarray(values, dtype=np.float64)[index]
    else:
        rng = np.random.Generator(np.random.PCG64(spec.seed))
        for sweep in spec.sweeps:
            if not sweep.is_range:
                choice = rng.integers(0, len(sweep.values), size=m)
                if sweep.name == "integrator":
                    integrator[:] = np.asarray(sweep.values)[choice]
                else:
                    columns[sweep.name] = np.asarray(sweep.values, dtype=np.float64)[choice]
            elif sweep.scale == "log":
                columns[sweep.name] = np.exp(rng.uniform(math.log(sweep.low), math.log(sweep.high), size=m))
            else:
                columns[sweep.name] = rng.uniform(sweep.low, sweep.high, size=m)
    ic_index = np.zeros(m, np.int64) if spec.shared_initial_conditions else np.arange(m, dtype=np.int64)
    t_end = spec.t_end
    dt = columns["dt"]
    per_save = np.where(
        dt == spec.dt,
        spec.num_steps // spec.num_saves,
        np.maximum(1, np.ceil(t_end / (dt * spec.num_saves) - 1e-9)),
    ).astype(np.int64)
    num_steps = per_save * spec.num_saves
    # Keep the requested step when it lands on t_end to round-off; else shrink it so
    # uniform steps end exactly at t_end (a short last step would break symplecticity).
    dt_used = np.where(np.abs(num_steps * dt - t_end) <= 1e-12 * t_end, dt, t_end / num_steps)
    columns = {name: columns[name] for name in spec.parameter_names()}
    for array in (*columns.values(), integrator, ic_index, dt_used, num_steps):
        array.flags.writeable = False
    return MemberTable(columns, integrator, ic_index, dt_used, num_steps)
