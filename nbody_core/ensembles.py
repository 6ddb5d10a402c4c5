"""Ensembles: many N-body systems at once, vmapped over members and sharded over devices.

Contract: :func:`run_ensemble` takes an :class:`EnsembleSpec` (system, N, members, steps,
sweeps, design, seed) and returns an :class:`EnsembleResult` (a parameter table, per-member
summaries, energy traces and, on request, trajectories). One member is plain single-system
code (build its initial state, integrate, summarize; :func:`run_member` runs one alone);
``jax.vmap`` batches it *outside*, and the batch axis is sharded over a 1-D device mesh
``("members",)``.

Members
    Member ``i`` starts from the preset's initial conditions built with the key
    ``jax.random.fold_in(jax.random.key(seed), i)`` (``i = 0`` for every member with
    ``shared_initial_conditions=True``) and with its own value of each swept parameter.
    Every member integrates to the same end time ``t_end = num_steps * dt``; a member whose
    swept step is ``dt_i`` takes ``ceil(t_end / dt_i)`` steps (rounded up to a multiple of
    ``num_saves``, with the step shrunk to land exactly on ``t_end``).

Sweeps (see :func:`parse_sweep`)
    ``softening=0.001:0.1:log`` (log-spaced range), ``dt=1e-3:1e-2:8:log`` (8 grid points),
    ``virial_ratio=0.2:0.8`` (linear range), ``integrator=leapfrog,yoshida4`` (a list).
    ``design="grid"`` takes the Cartesian product of the sweeps' points and gives member
    ``i`` grid point ``i mod G`` (so members beyond ``G`` are replicas that differ by seed);
    ``design="random"`` draws each member's values independently (uniform, log-uniform for
    ``:log`` ranges, uniform choice from lists) with ``numpy.random.PCG64(seed)``.

Memory and devices
    Members run in fixed-size chunks (the last one padded by repeating its last member, so
    one compiled executable serves every chunk); device memory is bounded by the chunk size
    whatever ``num_members`` is. Each chunk's member axis is laid out with
    ``NamedSharding(Mesh(devices, ("members",)), PartitionSpec("members"))``: each of the D
    devices computes ``chunk_size`` members per call, exactly the batch a one-device run
    computes, so sharded results are bit-identical to unsharded ones. (XLA may sum in a
    different order for a different batch size, so runs with different chunk sizes, and a
    vmapped member against the same member run alone, agree to round-off, not bit for
    bit.) The integrator is static (compiled in), so members are grouped per integrator.

Multi-host
    The same code runs on several hosts. Start one process per host and call
    ``jax.distributed.initialize()`` (arguments or the cluster's environment variables, e.g.
    SLURM or ``JAX_COORDINATOR_ADDRESS``/``JAX_NUM_PROCESSES``/``JAX_PROCESS_ID``) *before*
    anything else touches JAX; then ``jax.devices()`` lists the devices of every host and
    :func:`run_ensemble` builds its mesh over all of them. Every process computes the same
    (small) member table from the seed, :func:`jax.make_array_from_callback` hands each
    process the shards its own devices hold, and results are gathered with
    ``jax.experimental.multihost_utils.process_allgather``; every process then holds the full
    result (write the file from ``jax.process_index() == 0`` only)::

        import jax
        jax.distributed.initialize()          # one call per process, before any JAX work
        from nbody_core.ensembles import EnsembleSpec, run_ensemble, parse_sweep
        result = run_ensemble(EnsembleSpec(num_members=100_000,
                                           sweeps=(parse_sweep("softening=1e-3:0.1:log"),)))
        if jax.process_index() == 0:
            result.save("ensemble.npz")
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import platform
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .diagnostics import to_center_of_mass_frame, virial_ratio
from .forces import acceleration_function
from .initial_conditions import (
    MAX_BODIES,
    _cold_collapse_sample,
    _disk_sample,
    _plummer_sample,
    _rescale_velocities,
    get_preset,
)
from .integrators import INTEGRATORS, get_integrator
from .io import _npz_bytes, load_npz, save_npz
from .potentials import get_potential, softened_distance_matrix
from .simulate import conserved_quantities
from .state import ParticleState, PhysicsParams

__all__ = [
    "SWEEPABLE_PARAMETERS",
    "SYSTEM_PARAMETERS",
    "SUMMARIES",
    "LAGRANGIAN_FRACTIONS",
    "MAX_MEMBERS",
    "MAX_STEPS_PER_MEMBER",
    "DEFAULT_MAX_CHUNK",
    "default_chunk_size",
    "Sweep",
    "parse_sweep",
    "format_sweep",
    "EnsembleSpec",
    "MemberTable",
    "member_table",
    "member_initial_state",
    "EnsembleResult",
    "EnsembleCancelled",
    "run_ensemble",
    "run_member",
    "time_python_loop",
    "load_ensemble",
    "fit_power_law",
]

#: Hard cap on members of one ensemble (memory of the host-side tables, not of a chunk).
MAX_MEMBERS = 1_000_000
#: Hard cap on integration steps of one member (a tiny swept dt would otherwise run forever).
MAX_STEPS_PER_MEMBER = 10_000_000
#: Mass fractions of the Lagrangian radii in the summaries.
LAGRANGIAN_FRACTIONS = (0.1, 0.5, 0.9)

#: Parameters a sweep may vary, with what they mean.
SWEEPABLE_PARAMETERS: dict[str, str] = {
    "dt": "integration step, time units (every member still integrates to t_end = num_steps * dt)",
    "softening": "Plummer softening length eps, length units",
    "virial_ratio": "initial virial ratio Q = T / |U| (velocities rescaled; plummer, cold_collapse)",
    "mass_ratio": "mass ratio q = m2 / m1 at fixed total mass 2 (kepler)",
    "eccentricity": "orbital eccentricity 0 <= e < 1 (kepler)",
    "integrator": "fixed-step integrator (static: members are grouped per integrator)",
}
_NUMERIC = ("dt", "softening", "virial_ratio", "mass_ratio", "eccentricity")

#: Initial-condition parameters each supported system understands (besides dt, softening and
#: the integrator, which every system accepts).
SYSTEM_PARAMETERS: dict[str, tuple[str, ...]] = {
    "plummer": ("virial_ratio",),
    "cold_collapse": ("virial_ratio",),
    "rotating_disk": (),
    "kepler": ("eccentricity", "mass_ratio"),
    "figure_eight": (),
    "pythagorean": (),
    "solar_system": (),
}
# Defaults of the initial-condition parameters; plummer's None keeps the sampled velocities
# (Q close to, not exactly, 1/2), as the preset does.
_IC_DEFAULTS = {
    "plummer": {"virial_ratio": None},
    "cold_collapse": {"virial_ratio": 0.0},
    "kepler": {"eccentricity": 0.5, "mass_ratio": 1.0},
}

#: Per-member summaries in every result, with their meaning.
SUMMARIES: dict[str, str] = {
    "final_energy_error": "|E(t_end) - E0| / |E0|",
    "max_energy_error": "max over saved snapshots of |E - E0| / |E0|",
    "initial_virial_ratio": "T / |U| at t = 0",
    "final_virial_ratio": "T / |U| at t_end",
    "escaper_fraction": "fraction of bodies with positive energy relative to the system at t_end",
    "lagrangian_radius_10": "radius about the centre of mass enclosing 10 % of the mass at t_end",
    "lagrangian_radius_50": "half-mass radius at t_end",
    "lagrangian_radius_90": "radius enclosing 90 % of the mass at t_end",
    "min_pair_distance": "smallest unsoftened pair distance over the saved snapshots",
    "momentum_drift": "|P(t_end) - P0| (absolute, momentum units)",
    "angular_momentum_drift": "|L(t_end) - L0| (absolute, angular-momentum units)",
    "finite": "1 if every saved position, velocity and energy is finite, else 0",
}


# ----------------------------------------------------------------------------- sweeps


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
        if self.name not in SWEEPABLE_PARAMETERS:
            raise ValueError(
                f"unknown sweep parameter {self.name!r}; choose one of {sorted(SWEEPABLE_PARAMETERS)}"
            )
        if self.values is not None:
            if self.low is not None or self.high is not None or self.points is not None:
                raise ValueError(f"sweep {self.name!r}: give either a range or a list of values, not both")
            values = tuple(self.values)
            if not values:
                raise ValueError(f"sweep {self.name!r} has an empty list of values")
            if self.name == "integrator":
                for value in values:
                    get_integrator(value)
            else:
                values = tuple(float(v) for v in values)
                for value in values:
                    _check_value(self.name, value)
            if len(set(values)) != len(values):
                raise ValueError(f"sweep {self.name!r} lists a value twice: {values}")
            object.__setattr__(self, "values", values)
            return
        if self.name == "integrator":
            raise ValueError("the integrator sweep takes a list of names, e.g. integrator=leapfrog,yoshida4")
        if self.low is None or self.high is None:
            raise ValueError(f"sweep {self.name!r} needs both ends of its range (low:high)")
        low, high = float(self.low), float(self.high)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        if self.scale not in ("linear", "log"):
            raise ValueError(f"sweep {self.name!r}: scale must be 'linear' or 'log', got {self.scale!r}")
        _check_value(self.name, low)
        _check_value(self.name, high)
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


def _check_value(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if name == "dt" and value <= 0:
        raise ValueError(f"dt must be positive, got {value!r}")
    if name in ("softening", "virial_ratio") and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    if name == "mass_ratio" and value <= 0:
        raise ValueError(f"mass_ratio must be positive, got {value!r}")
    if name == "eccentricity" and not 0 <= value < 1:
        raise ValueError(f"eccentricity must satisfy 0 <= e < 1, got {value!r}")


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
    if name not in SWEEPABLE_PARAMETERS:
        raise ValueError(f"unknown sweep parameter {name!r}; choose one of {sorted(SWEEPABLE_PARAMETERS)}")
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


# ----------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class EnsembleSpec:
    """What to run; validated eagerly on construction (``ValueError`` naming the problem).

    Attributes:
        system: preset name (see ``nbody_core.PRESETS`` and :data:`SYSTEM_PARAMETERS`).
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
        virial_ratio, eccentricity, mass_ratio: fixed values of the initial-condition
            parameters for members that do not sweep them (None = the preset's).
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
    forces: str = "tiled"
    potential: str = "newtonian"
    virial_ratio: float | None = None
    eccentricity: float | None = None
    mass_ratio: float | None = None

    def __post_init__(self):
        set_ = partial(object.__setattr__, self)
        if self.system not in SYSTEM_PARAMETERS:
            get_preset(self.system)  # unknown name: the registry's message
            raise ValueError(f"system {self.system!r} is not supported by ensembles; choose one of {sorted(SYSTEM_PARAMETERS)}")
        preset = get_preset(self.system)
        if preset.scalable:
            n = preset.default_num_bodies if self.num_bodies is None else self.num_bodies
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
                raise ValueError(f"num_bodies must be an integer >= 2, got {n!r}")
            if n > MAX_BODIES:
                raise ValueError(f"num_bodies {n} exceeds the cap of {MAX_BODIES}")
            set_("num_bodies", int(n))
        else:
            fixed = int(preset.build(jax.random.key(0), None).position.shape[0])
            if self.num_bodies not in (None, fixed):
                raise ValueError(f"system {self.system!r} always has {fixed} bodies, got num_bodies={self.num_bodies!r}")
            set_("num_bodies", fixed)
        _check_int("num_members", self.num_members, 1, MAX_MEMBERS)
        _check_int("num_steps", self.num_steps, 1, MAX_STEPS_PER_MEMBER)
        _check_int("seed", self.seed, 0, 2**32 - 1)
        set_("dt", float(preset.dt if self.dt is None else self.dt))
        _check_value("dt", self.dt)
        set_("softening", float(preset.params.softening if self.softening is None else self.softening))
        _check_value("softening", self.softening)
        get_integrator(self.integrator)
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
        allowed = SYSTEM_PARAMETERS[self.system]
        for name in names + [n for n in ("virial_ratio", "eccentricity", "mass_ratio") if getattr(self, n) is not None]:
            if name in ("virial_ratio", "eccentricity", "mass_ratio") and name not in allowed:
                users = sorted(s for s, p in SYSTEM_PARAMETERS.items() if name in p)
                raise ValueError(f"{name} does not apply to system {self.system!r}; it applies to {users}")
        for name in ("virial_ratio", "eccentricity", "mass_ratio"):
            value = getattr(self, name)
            if value is not None:
                set_(name, float(value))
                _check_value(name, getattr(self, name))
        if self.design == "random" and any(s.is_range and s.points is not None for s in sweeps):
            raise ValueError("a range's number of points only applies to the grid design; drop ':K' for design='random'")
        set_("sweeps", sweeps)
        if self.num_saves is None:
            set_("num_saves", max(d for d in range(1, 21) if self.num_steps % d == 0))
        _check_int("num_saves", self.num_saves, 1, self.num_steps)
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
            steps = _steps_per_save(self.t_end, smallest, self.num_saves) * self.num_saves
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

    def parameter_names(self) -> tuple[str, ...]:
        """Numeric columns of the parameter table: dt, softening and the system's IC ones."""
        return ("dt", "softening", *SYSTEM_PARAMETERS[self.system])

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
        text = json.dumps({"spec": self.to_dict(), "versions": _versions()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def _check_int(name: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")
    if value > high:
        raise ValueError(f"{name} {value} exceeds the cap of {high}")


def _steps_per_save(t_end: float, dt: float, num_saves: int) -> int:
    return max(1, math.ceil(t_end / (dt * num_saves) - 1e-9))


# ----------------------------------------------------------------------------- members


class MemberTable(NamedTuple):
    """Per-member inputs, all ``[M]`` NumPy arrays, in member order.

    Attributes:
        parameters: numeric parameter name -> ``[M]`` float64 requested values.
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


def member_table(spec: EnsembleSpec) -> MemberTable:
    """Resolve the design: every member's parameters, integrator, seed index and steps."""
    m = spec.num_members
    base = {"dt": spec.dt, "softening": spec.softening}
    for name in SYSTEM_PARAMETERS[spec.system]:
        value = getattr(spec, name)
        if value is None:
            value = _IC_DEFAULTS[spec.system][name]
        base[name] = np.nan if value is None else value  # NaN: keep the sampled velocities
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
    return MemberTable(columns, integrator, ic_index, dt_used, num_steps)


class _ICConfig(NamedTuple):
    """Static configuration of the initial-conditions function (hashable)."""

    system: str
    num_bodies: int
    rescale_virial: bool


class _Config(NamedTuple):
    """Static configuration of one compiled member simulation (hashable)."""

    num_saves: int
    integrator: str
    forces: str
    potential: str
    G: float
    screening_length: float
    power_index: float
    save_trajectories: bool
    steps_per_save: int | None  # static when every member takes the same steps, else traced


def _ic_config(spec: EnsembleSpec) -> _ICConfig:
    vr = spec.virial_ratio
    rescale = "virial_ratio" in SYSTEM_PARAMETERS[spec.system] and (
        spec.sweep("virial_ratio") is not None
        or (vr if vr is not None else _IC_DEFAULTS[spec.system]["virial_ratio"]) is not None
    )
    return _ICConfig(spec.system, spec.num_bodies, bool(rescale))


def _config(spec: EnsembleSpec, integrator: str) -> _Config:
    params = get_preset(spec.system).params
    return _Config(
        spec.num_saves, integrator, spec.forces, spec.potential, float(params.G),
        float(params.screening_length), float(params.power_index), spec.save_trajectories,
        # A static count compiles to a plain loop; a traced, batched one (a dt sweep) to a
        # while loop that masks finished members, measured ~1.5x slower per step on CPU.
        None if spec.sweep("dt") is not None else spec.num_steps // spec.num_saves,
    )


def _com_state(position, velocity, mass) -> ParticleState:
    dtype = jnp.float64
    state = ParticleState(
        jnp.asarray(position, dtype), jnp.asarray(velocity, dtype), jnp.asarray(mass, dtype), jnp.zeros((), dtype)
    )
    return to_center_of_mass_frame(state)


# The presets' own traceable samplers (initial_conditions._*_sample), so member i's state is
# the preset's for the same key; only the eager validation and NumPy centring are left out.
def _plummer_ic(key, n, virial_ratio, rescale):
    position, velocity = _plummer_sample(key, n, 1.0, 1.0)
    state = _com_state(position, velocity, jnp.full((n,), 1.0 / n))
    return _rescale_velocities(state, virial_ratio) if rescale else state


def _cold_collapse_ic(key, n, virial_ratio):
    # Q = 0 scales the Gaussian velocities to 0: the preset's cold start, same positions.
    position, velocity = _cold_collapse_sample(key, n, 1.0, moving=True)
    state = _com_state(position, velocity, jnp.full((n,), 1.0 / n))
    return _rescale_velocities(state, virial_ratio)


def _rotating_disk_ic(key, n):
    return _com_state(*_disk_sample(key, n, 1.0, 0.01, 0.5, 2.0, 0.01))


def _kepler_ic(eccentricity, mass_ratio):
    # initial_conditions.kepler(m1, m2, a=1, e) with m1 + m2 = 2 and m2 / m1 = mass_ratio.
    m1 = 2.0 / (1.0 + mass_ratio)
    m2 = 2.0 * mass_ratio / (1.0 + mass_ratio)
    total = m1 + m2
    r_peri = 1.0 - eccentricity
    v_peri = jnp.sqrt(total * (1.0 + eccentricity) / r_peri)  # vis-viva at pericentre, G = 1
    zero = jnp.zeros_like(r_peri)
    position = jnp.stack([
        jnp.stack([-m2 / total * r_peri, zero, zero]), jnp.stack([m1 / total * r_peri, zero, zero])
    ])
    velocity = jnp.stack([
        jnp.stack([zero, -m2 / total * v_peri, zero]), jnp.stack([zero, m1 / total * v_peri, zero])
    ])
    return _com_state(position, velocity, jnp.stack([m1, m2]))


def _initial_state(inputs: Mapping[str, jax.Array], *, config: _ICConfig) -> ParticleState:
    """One member's initial state from its inputs (``seed`` key data, ``ic_index`` and the
    system's initial-condition parameters); single-system code, vmapped outside."""
    key = jax.random.fold_in(jax.random.wrap_key_data(inputs["seed"]), inputs["ic_index"])
    n = config.num_bodies
    if config.system == "plummer":
        return _plummer_ic(key, n, inputs["virial_ratio"], config.rescale_virial)
    if config.system == "cold_collapse":
        return _cold_collapse_ic(key, n, inputs["virial_ratio"])
    if config.system == "rotating_disk":
        return _rotating_disk_ic(key, n)
    if config.system == "kepler":
        return _kepler_ic(inputs["eccentricity"], inputs["mass_ratio"])
    # Fixed systems do not depend on traced values: built at trace time, baked in as constants.
    return get_preset(config.system).build(None, None)


def _pair_extremes(position):
    n = position.shape[0]
    dr = position[:, None, :] - position[None, :, :]
    r2 = jnp.where(jnp.eye(n, dtype=bool), jnp.inf, jnp.sum(dr * dr, axis=-1))
    return jnp.sqrt(jnp.min(r2))


def _final_summaries(state: ParticleState, params: PhysicsParams, potential) -> dict:
    state = to_center_of_mass_frame(state)
    s, off_diagonal = softened_distance_matrix(state.position, params.softening)
    phi = jnp.where(off_diagonal, potential.pair_energy(s, params), 0.0)
    body_potential = state.mass * jnp.sum(phi * state.mass[None, :], axis=1)
    body_kinetic = 0.5 * state.mass * jnp.sum(state.velocity**2, axis=-1)
    escaper_fraction = jnp.mean((body_kinetic + body_potential > 0).astype(state.position.dtype))
    radius = jnp.sqrt(jnp.sum(state.position**2, axis=-1))
    order = jnp.argsort(radius)
    cumulative = jnp.cumsum(state.mass[order]) / jnp.sum(state.mass)
    sorted_radius = radius[order]
    out = {"escaper_fraction": escaper_fraction}
    for fraction in LAGRANGIAN_FRACTIONS:
        index = jnp.minimum(jnp.searchsorted(cumulative, fraction - 1e-12), radius.shape[0] - 1)
        out[f"lagrangian_radius_{round(fraction * 100)}"] = sorted_radius[index]
    return out


def _run_member(state: ParticleState, inputs: Mapping[str, jax.Array], *, config: _Config) -> dict:
    """One member, single-system code: integrate from ``state`` and summarize.

    Args:
        state: the member's initial :class:`ParticleState` (``[n, 3]`` leaves).
        inputs: scalars ``dt`` (the step taken, time units), ``steps_per_save`` (int) and
            ``softening`` (length units); other entries are ignored.
        config: static configuration.

    Returns:
        dict of ``time [T]``, ``energy [T]``, the :data:`SUMMARIES` scalars and, with
        ``save_trajectories``, ``position``/``velocity [T, n, 3]`` and ``mass [n]``
        (T = num_saves + 1).
    """
    dtype = state.position.dtype
    dt = jnp.asarray(inputs["dt"], dtype)
    params = PhysicsParams(
        G=jnp.asarray(config.G, dtype),
        softening=jnp.asarray(inputs["softening"], dtype),
        screening_length=jnp.asarray(config.screening_length, dtype),
        power_index=jnp.asarray(config.power_index, dtype),
    )
    potential = get_potential(config.potential)
    acceleration_fn = acceleration_function(config.forces, potential)
    step_fn = get_integrator(config.integrator).make_step(acceleration_fn)

    def snapshot(state):
        quantities = conserved_quantities(state, params, potential)
        out = {
            "time": state.time,
            "energy": quantities.energy,
            "linear_momentum": quantities.linear_momentum,
            "angular_momentum": quantities.angular_momentum,
            "min_pair_distance": _pair_extremes(state.position),
        }
        if config.save_trajectories:
            out["position"] = state.position
            out["velocity"] = state.velocity
        return out

    def save_block(carry, _):
        count = inputs["steps_per_save"] if config.steps_per_save is None else config.steps_per_save
        carry = lax.fori_loop(0, count, lambda _, c: step_fn(*c, dt, params), carry)
        return carry, snapshot(carry[0])

    carry = (state, acceleration_fn(state.position, state.mass, params))
    (final, _), saved = lax.scan(save_block, carry, None, length=config.num_saves)
    saved = jax.tree.map(lambda first, rest: jnp.concatenate([first[None], rest]), snapshot(state), saved)
    energy = saved["energy"]
    error = jnp.abs(energy - energy[0]) / jnp.abs(energy[0])
    finite = jnp.isfinite(energy).all()
    if config.save_trajectories:
        finite &= jnp.isfinite(saved["position"]).all() & jnp.isfinite(saved["velocity"]).all()
    else:
        finite &= jnp.isfinite(final.position).all() & jnp.isfinite(final.velocity).all()
    out = {
        "time": saved["time"],
        "energy": energy,
        "final_energy_error": error[-1],
        "max_energy_error": jnp.max(error),
        "initial_virial_ratio": virial_ratio(state, params, potential),
        "final_virial_ratio": virial_ratio(final, params, potential),
        **_final_summaries(final, params, potential),
        "min_pair_distance": jnp.min(saved["min_pair_distance"]),
        "momentum_drift": jnp.linalg.norm(saved["linear_momentum"][-1] - saved["linear_momentum"][0]),
        "angular_momentum_drift": jnp.linalg.norm(saved["angular_momentum"][-1] - saved["angular_momentum"][0]),
        "finite": finite.astype(dtype),
    }
    if config.save_trajectories:
        out.update(position=saved["position"], velocity=saved["velocity"], mass=state.mass)
    return out


def _member_inputs(spec: EnsembleSpec, table: MemberTable, members: np.ndarray) -> dict[str, np.ndarray]:
    """Host-side ``[len(members)]`` input arrays for the member function."""
    seed = np.asarray(jax.random.key_data(jax.random.key(spec.seed)))
    inputs = {
        "seed": np.broadcast_to(seed, (len(members), *seed.shape)).copy(),
        "ic_index": table.ic_index[members].astype(np.int32),
        "dt": table.dt_used[members],
        "steps_per_save": (table.num_steps[members] // spec.num_saves).astype(np.int32),
        "softening": table.parameters["softening"][members],
    }
    for name in SYSTEM_PARAMETERS[spec.system]:
        inputs[name] = table.parameters[name][members]
    return inputs


def member_initial_state(spec: EnsembleSpec, member: int) -> ParticleState:
    """The initial state of member ``member`` (as the ensemble builds it)."""
    table = member_table(spec)
    _check_int("member", member, 0, spec.num_members - 1)
    inputs = _member_inputs(spec, table, np.array([member]))
    inputs = {k: jnp.asarray(v[0]) for k, v in inputs.items()}
    return _initial_state_jit(inputs, config=_ic_config(spec))


_initial_state_jit = jax.jit(_initial_state, static_argnames=("config",))
_run_member_jit = jax.jit(_run_member, static_argnames=("config",))


def run_member(spec: EnsembleSpec, member: int) -> dict[str, np.ndarray]:
    """Run one member alone with the jitted single-system function (no vmap).

    The reference the vmapped ensemble is tested against, and the Python-loop baseline of
    the benchmark. Returns the member's outputs as NumPy arrays (see ``_run_member``).
    """
    table = member_table(spec)
    _check_int("member", member, 0, spec.num_members - 1)
    inputs = _member_inputs(spec, table, np.array([member]))
    inputs = {k: jnp.asarray(v[0]) for k, v in inputs.items()}
    state = _initial_state_jit(inputs, config=_ic_config(spec))
    out = _run_member_jit(state, inputs, config=_config(spec, str(table.integrator[member])))
    return {k: np.asarray(v) for k, v in out.items()}


# ----------------------------------------------------------------------------- running


class EnsembleCancelled(RuntimeError):
    """Raised by :func:`run_ensemble` when ``should_stop()`` returned True between chunks."""


@dataclass
class EnsembleResult:
    """Outputs of :func:`run_ensemble`, every array in member order (NumPy).

    Attributes:
        spec: the :class:`EnsembleSpec` that produced it.
        table: the resolved :class:`MemberTable` (parameters, integrator, seeds, steps).
        summaries: name -> ``[M]`` float64 (see :data:`SUMMARIES`).
        time: ``[M, T]`` saved times, time units.
        energy: ``[M, T]`` total energy at the saved times, energy units.
        position, velocity: ``[M, T, n, 3]`` with ``save_trajectories``, else None.
        mass: ``[M, n]`` with ``save_trajectories``, else None.
        timing: compile and run seconds, chunks, chunk size, devices (not saved to files:
            they differ between identical runs).
    """

    spec: EnsembleSpec
    table: MemberTable
    summaries: dict[str, np.ndarray]
    time: np.ndarray
    energy: np.ndarray
    position: np.ndarray | None = None
    velocity: np.ndarray | None = None
    mass: np.ndarray | None = None
    timing: dict[str, Any] = field(default_factory=dict)

    @property
    def num_members(self) -> int:
        return self.spec.num_members

    def parameter_table(self) -> tuple[np.ndarray, tuple[str, ...]]:
        """``([M, P] float64, names)``: the numeric parameters, one column each."""
        names = self.spec.parameter_names()
        return np.column_stack([self.table.parameters[n] for n in names]), names

    def summary_table(self) -> tuple[np.ndarray, tuple[str, ...]]:
        """``([M, S] float64, names)``: the summaries, one column each."""
        names = tuple(SUMMARIES)
        return np.column_stack([self.summaries[n] for n in names]), names

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array of the npz file (see :meth:`save`)."""
        parameters, parameter_names = self.parameter_table()
        summaries, summary_names = self.summary_table()
        out = {
            "parameters": parameters,
            "parameter_names": np.asarray(parameter_names),
            "summaries": summaries,
            "summary_names": np.asarray(summary_names),
            "integrator": self.table.integrator,
            "member": np.arange(self.num_members),
            "ic_index": self.table.ic_index,
            "dt_used": self.table.dt_used,
            "num_steps": self.table.num_steps,
            "time": self.time,
            "energy": self.energy,
            "lagrangian_fractions": np.asarray(LAGRANGIAN_FRACTIONS),
        }
        out.update({f"param_{name}": self.table.parameters[name] for name in parameter_names})
        out.update(self.summaries)
        if self.position is not None:
            out.update(position=self.position, velocity=self.velocity, mass=self.mass)
        return out

    def metadata(self, *, command: Sequence[str] | None = None) -> dict[str, Any]:
        """Deterministic JSON metadata: spec, seeds, versions, units, the command."""
        preset = get_preset(self.spec.system)
        return {
            "format": "nbody-explorer ensemble v1",
            "spec": self.spec.to_dict(),
            "t_end": self.spec.t_end,
            "seeds": {
                "seed": self.spec.seed,
                "initial_conditions": "member i starts from the preset built with key "
                "jax.random.fold_in(jax.random.key(seed), ic_index[i])",
                "random_design": "numpy.random.Generator(numpy.random.PCG64(seed))",
            },
            "units": preset.units,
            "G": float(preset.params.G),
            "versions": _versions(),
            "command": list(command) if command is not None else None,
            "summaries": SUMMARIES,
            "sweepable_parameters": SWEEPABLE_PARAMETERS,
            "load": "d = numpy.load(path); X, y = d['parameters'], d['summaries']",
        }

    def save(self, path, *, command: Sequence[str] | None = None) -> Path:
        """Write one compressed npz atomically (the same run writes the same bytes).

        ``np.load(path)`` gives ``parameters [M, P]`` with ``parameter_names``, ``summaries
        [M, S]`` with ``summary_names``, each column again by name (``param_dt``,
        ``final_energy_error``, ...), ``integrator``, ``ic_index``, ``dt_used``,
        ``num_steps``, ``time``/``energy [M, T]``, optional ``position``/``velocity
        [M, T, n, 3]`` and ``mass [M, n]``, and ``metadata`` (a JSON string).
        """
        return save_npz(path, self.arrays(), self.metadata(command=command))

    def npz_bytes(self, *, command: Sequence[str] | None = None) -> bytes:
        """The bytes :meth:`save` writes (for downloads)."""
        return _npz_bytes(self.arrays(), self.metadata(command=command))


def _versions() -> dict[str, str]:
    from . import __version__

    return {"nbody_core": __version__, "jax": jax.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def load_ensemble(path) -> EnsembleResult:
    """Read a file written by :meth:`EnsembleResult.save` back into an :class:`EnsembleResult`."""
    arrays, metadata = load_npz(path)
    if metadata.get("format") != "nbody-explorer ensemble v1":
        raise ValueError(f"{str(path)!r} is not an ensemble file written by nbody_core.ensembles")
    spec = EnsembleSpec.from_dict(metadata["spec"])
    names = [str(n) for n in arrays["parameter_names"]]
    table = MemberTable(
        {name: arrays["parameters"][:, k] for k, name in enumerate(names)},
        arrays["integrator"], arrays["ic_index"], arrays["dt_used"], arrays["num_steps"],
    )
    summary_names = [str(n) for n in arrays["summary_names"]]
    summaries = {name: arrays["summaries"][:, k] for k, name in enumerate(summary_names)}
    return EnsembleResult(
        spec, table, summaries, arrays["time"], arrays["energy"],
        arrays.get("position"), arrays.get("velocity"), arrays.get("mass"),
    )


#: Largest default number of members per device in one compiled call.
DEFAULT_MAX_CHUNK = 128


def default_chunk_size(spec: EnsembleSpec, platform: str = "cpu") -> int:
    """Members per device per call that :func:`run_ensemble` uses when not told."""
    # The [n, n, 3] pair arrays dominate memory. On an accelerator keep one device's share
    # of a chunk under ~256 MB (a factor ~4 for temporaries); on a CPU keep it in cache,
    # under ~8 MB: measured at N = 64, chunks of 16 ran ~3x faster per member than 128. At
    # most DEFAULT_MAX_CHUNK members. It never depends on the device count, so a sharded
    # run computes the same per-device batches as a one-device run (bit-identical results).
    per_member = 4 * spec.num_bodies**2 * 3 * 8
    if spec.save_trajectories:
        per_member += 2 * (spec.num_saves + 1) * spec.num_bodies * 3 * 8
    budget = (8 if platform == "cpu" else 256) * 2**20
    size = DEFAULT_MAX_CHUNK
    while size > 1 and size * per_member > budget:
        size //= 2
    largest_group = max(np.count_nonzero(member_table(spec).integrator == name) for name in spec.integrators)
    return max(1, min(size, largest_group))


_COMPILED: "OrderedDict[tuple, Any]" = OrderedDict()
_COMPILED_MAX = 32
_COMPILED_LOCK = threading.Lock()  # dashboard sessions run ensembles in parallel threads


def _batched(fn: Callable, config: NamedTuple, num_args: int, sharding: NamedSharding, *, sequential: bool):
    single = partial(fn, config=config)
    if not sequential:
        return jax.jit(jax.vmap(single), in_shardings=(sharding,) * num_args, out_shardings=sharding)
    # Each device loops over its own members. Used for the initial conditions: vmapping the
    # threefry samplers triples their compile time (measured 4.1 s vs 1.5 s of CPU for a
    # Plummer sphere) for no gain, as they run once per member, not once per step.
    spec = PartitionSpec("members")
    return jax.jit(
        jax.shard_map(
            lambda *args: lax.map(lambda member_args: single(*member_args), args),
            mesh=sharding.mesh, in_specs=(spec,) * num_args, out_specs=spec,
        )
    )


def _compiled(fn: Callable, config: NamedTuple, args: tuple, sharding: NamedSharding, *, sequential: bool = False):
    """AOT-compile (and cache) ``fn`` batched over members for this config, argument shapes
    and mesh: ``jit(vmap(fn))`` sharded over the mesh, or (``sequential``) a per-device
    ``lax.map`` under ``shard_map``.

    Returns ``(executable, compile_seconds)``; a cache hit costs 0 s.
    """
    shapes = tuple((str(path), leaf.shape, str(leaf.dtype)) for path, leaf in jax.tree_util.tree_leaves_with_path(args))
    cache_key = (fn.__name__, sequential, config, shapes, tuple(d.id for d in sharding.mesh.devices.flat))
    with _COMPILED_LOCK:
        if cache_key in _COMPILED:
            _COMPILED.move_to_end(cache_key)
            return _COMPILED[cache_key], 0.0
    jitted = _batched(fn, config, len(args), sharding, sequential=sequential)
    start = time.perf_counter()
    executable = jitted.lower(*args).compile()
    elapsed = time.perf_counter() - start
    with _COMPILED_LOCK:
        _COMPILED[cache_key] = executable
        while len(_COMPILED) > _COMPILED_MAX:
            _COMPILED.popitem(last=False)
    return executable, elapsed


def _to_global(value: np.ndarray, sharding: NamedSharding) -> jax.Array:
    # Each process supplies the shards its own devices hold: the same call works multi-host.
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def _to_host(value: jax.Array) -> np.ndarray:
    if value.is_fully_addressable:
        return np.asarray(value)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(value, tiled=True))


def _resolve_devices(devices) -> list:
    if devices is None:
        return list(jax.devices())
    if isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        available = jax.devices()
        if not 1 <= devices <= len(available):
            raise ValueError(f"devices must be between 1 and {len(available)} (available), got {devices}")
        return list(available[:devices])
    devices = list(devices)
    if not devices:
        raise ValueError("devices must not be empty")
    return devices


def run_ensemble(
    spec: EnsembleSpec,
    *,
    chunk_size: int | None = None,
    devices: int | Sequence | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint_dir: str | Path | None = None,
) -> EnsembleResult:
    """Run every member of ``spec``: vmapped chunks, sharded over devices.

    Args:
        spec: what to run.
        chunk_size: members *per device* in one compiled call (None: up to
            :data:`DEFAULT_MAX_CHUNK`, fewer for large N so one device's pair arrays stay
            under ~8 MB on a CPU (cache) or ~256 MB on an accelerator, and never more than
            the largest integrator group). One call
            runs ``chunk_size * num_devices`` members; the last call of each integrator is
            padded, so one executable serves them all.
        devices: the devices of the 1-D ``("members",)`` mesh: None (all of
            ``jax.devices()``, every host's after ``jax.distributed.initialize()``), a count
            (the first k) or a sequence of devices. With the same ``chunk_size`` the results
            are bit-identical whatever the device count.
        progress: called as ``progress(done_chunks, total_chunks)`` once with 0 before the
            first chunk and after each chunk.
        should_stop: polled between chunks; True raises :class:`EnsembleCancelled`.
        checkpoint_dir: if given, each finished chunk is saved there (atomically) and a
            chunk already saved by a run of the same spec, chunk size and device count is
            loaded instead of recomputed (resume after an interruption).

    Returns:
        :class:`EnsembleResult`; ``timing`` holds ``compile_s`` apart from ``run_s``.

    Raises:
        ValueError: for a bad chunk size or device choice.
        EnsembleCancelled: when ``should_stop()`` says so.
    """
    if not isinstance(spec, EnsembleSpec):
        raise ValueError(f"spec must be an EnsembleSpec, got {type(spec).__name__}")
    device_list = _resolve_devices(devices)
    num_devices = len(device_list)
    if chunk_size is None:
        chunk_size = default_chunk_size(spec, device_list[0].platform)
    _check_int("chunk_size", chunk_size, 1, MAX_MEMBERS)
    chunk_size = int(chunk_size)
    call_size = chunk_size * num_devices
    mesh = Mesh(np.asarray(device_list), ("members",))
    sharding = NamedSharding(mesh, PartitionSpec("members"))

    table = member_table(spec)
    ic_config = _ic_config(spec)
    groups = [(name, np.flatnonzero(table.integrator == name)) for name in spec.integrators]
    plan = [
        (name, k, members[start:start + call_size])
        for name, members in groups
        for k, start in enumerate(range(0, members.size, call_size))
    ]
    checkpoint = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if checkpoint is not None:
        checkpoint.mkdir(parents=True, exist_ok=True)
    fingerprint = f"{spec.fingerprint()}-{chunk_size}x{num_devices}"
    outputs: dict[str, np.ndarray] = {}
    compile_s = run_s = 0.0
    resumed = 0
    if progress is not None:
        progress(0, len(plan))
    for done, (integrator, k, members) in enumerate(plan, start=1):
        if should_stop is not None and should_stop():
            raise EnsembleCancelled(f"ensemble stopped after {done - 1} of {len(plan)} chunks")
        chunk_file = checkpoint / f"chunk-{integrator}-{k:06d}.npz" if checkpoint is not None else None
        chunk = _load_chunk(chunk_file, fingerprint, members) if chunk_file is not None else None
        if chunk is None:
            padded = np.concatenate([members, np.full(call_size - members.size, members[-1])])
            host_inputs = _member_inputs(spec, table, padded)
            inputs = {name: _to_global(value, sharding) for name, value in host_inputs.items()}
            ic_fn, ic_seconds = _compiled(_initial_state, ic_config, (inputs,), sharding, sequential=True)
            start = time.perf_counter()
            states = ic_fn(inputs)
            run_s += time.perf_counter() - start
            sim_fn, sim_seconds = _compiled(_run_member, _config(spec, integrator), (states, inputs), sharding)
            compile_s += ic_seconds + sim_seconds
            start = time.perf_counter()
            device_out = sim_fn(states, inputs)
            chunk = {name: _to_host(value)[: members.size] for name, value in device_out.items()}
            run_s += time.perf_counter() - start
            if chunk_file is not None:
                save_npz(chunk_file, {**chunk, "members": members}, {"fingerprint": fingerprint})
        else:
            resumed += 1
        for name, value in chunk.items():
            if name not in outputs:
                outputs[name] = np.empty((spec.num_members, *value.shape[1:]), value.dtype)
            outputs[name][members] = value
        if progress is not None:
            progress(done, len(plan))
    summaries = {name: outputs[name].astype(np.float64) for name in SUMMARIES}
    return EnsembleResult(
        spec=spec,
        table=table,
        summaries=summaries,
        time=outputs["time"],
        energy=outputs["energy"],
        position=outputs.get("position"),
        velocity=outputs.get("velocity"),
        mass=outputs.get("mass"),
        timing={
            "compile_s": compile_s,
            "run_s": run_s,
            "num_chunks": len(plan),
            "resumed_chunks": resumed,
            "chunk_size": chunk_size,
            "num_devices": num_devices,
            "members_per_s": spec.num_members / run_s if run_s > 0 else float("nan"),
        },
    )


def _load_chunk(path: Path, fingerprint: str, members: np.ndarray) -> dict | None:
    if not path.is_file():
        return None
    try:
        arrays, metadata = load_npz(path)
    except (OSError, ValueError, KeyError, EOFError):
        return None  # a damaged checkpoint is recomputed, never trusted
    if metadata.get("fingerprint") != fingerprint or not np.array_equal(arrays.pop("members", None), members):
        return None
    return arrays


def time_python_loop(spec: EnsembleSpec, *, num_members: int = 8) -> dict[str, float]:
    """Time a Python loop over the jitted single-member functions on a subset of members.

    This is the baseline the vmapped run is compared with: the same single-system code,
    jitted, called once per member (initial conditions, then the simulation). The members
    are spread evenly over the ensemble (so a dt or integrator sweep is sampled fairly);
    compile time is measured apart. The loop time of the whole ensemble is extrapolated as
    ``spec.num_members * seconds_per_member``.

    Returns:
        ``{"members_timed", "compile_s", "run_s", "seconds_per_member",
        "extrapolated_loop_s"}`` (seconds).
    """
    _check_int("num_members", num_members, 1, MAX_MEMBERS)
    table = member_table(spec)
    chosen = np.unique(np.linspace(0, spec.num_members - 1, min(num_members, spec.num_members)).round().astype(int))
    all_inputs = _member_inputs(spec, table, chosen)
    member_inputs = [{k: jnp.asarray(v[i]) for k, v in all_inputs.items()} for i in range(chosen.size)]
    ic_config = _ic_config(spec)
    start = time.perf_counter()
    ic_fn = _initial_state_jit.lower(member_inputs[0], config=ic_config).compile()
    state = ic_fn(member_inputs[0])
    sim_fns = {
        name: _run_member_jit.lower(state, member_inputs[0], config=_config(spec, name)).compile()
        for name in sorted(set(table.integrator[chosen]))
    }
    compile_s = time.perf_counter() - start
    # One untimed call per executable: the first run of a fresh executable pays one-off
    # costs (measured: 7 ms of an 8 ms member at N = 8); the baseline is the steady state.
    for name, sim_fn in sim_fns.items():
        jax.block_until_ready(sim_fn(state, member_inputs[0]))
    start = time.perf_counter()
    for inputs, member in zip(member_inputs, chosen):
        jax.block_until_ready(sim_fns[str(table.integrator[member])](ic_fn(inputs), inputs))
    run_s = time.perf_counter() - start
    per_member = run_s / chosen.size
    return {
        "members_timed": int(chosen.size),
        "compile_s": compile_s,
        "run_s": run_s,
        "seconds_per_member": per_member,
        "extrapolated_loop_s": per_member * spec.num_members,
    }


def fit_power_law(x, y) -> tuple[float, float]:
    """Least-squares fit ``log y = slope * log x + intercept`` over positive finite pairs.

    Returns:
        ``(slope, intercept)``; NaNs when fewer than two usable points.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if np.unique(x[ok]).size < 2:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)
    return float(slope), float(intercept)
