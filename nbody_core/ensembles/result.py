"""Ensemble results and their files: a table an emulator can read without this code.

Contract: :class:`EnsembleResult` holds every member's requested parameters and measured
summaries; :meth:`EnsembleResult.save` writes one deterministic npz (same run, same bytes);
:func:`load_ensemble` reads it back. In the file:

* ``parameters [M, P]`` are *requested* inputs (``parameter_names``, ``parameter_units``,
  ``parameter_swept``: True for a swept column, False for one held fixed). A parameter the
  run left free (the Plummer sphere's virial ratio unless one is requested) has no column,
  so no column is ever NaN.
* ``summaries [M, S]`` are *measured* outputs (``summary_names``, ``summary_units``).
* ``member_key [M, 2]`` is each member's initial-conditions PRNG key
  (``jax.random.wrap_key_data``); ``ic_index``, ``dt_used`` and ``num_steps`` per member.
* ``metadata`` (JSON) repeats the columns with their role, units and meaning, the fixed
  values, the spec and the provenance (versions, platform, devices, command; no timestamp),
  and ``execution``: the devices and chunk size the run used and the force kernel
  ``forces="auto"`` resolved to. The arrays do not depend on them (bit-identical on any
  device count and chunk size); the record says how the file was made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nbody_core.io import load_npz, npz_bytes, save_npz
from nbody_core.systems.presets import get_preset
from nbody_core.provenance import provenance
from nbody_core.physics.units import get_unit_system
from .member import LAGRANGIAN_FRACTIONS, SUMMARIES, SUMMARY_DIMENSIONS, member_keys
from .spec import EnsembleSpec, MemberTable
from .sweeps import IC_PARAMETERS, SWEEPABLE_PARAMETERS

__all__ = ["FORMAT", "EnsembleResult", "load_ensemble", "fit_power_law"]

#: ``metadata["format"]`` of the files written here (v1 files are still read).
FORMAT = "nbody-explorer ensemble v2"
_READABLE = (FORMAT, "nbody-explorer ensemble v1")


@dataclass
class EnsembleResult:
    """Outputs of :func:`~nbody_core.ensembles.run_ensemble`, every array in member order.

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
        execution: how the run was laid out, saved in the metadata: ``num_devices``,
            ``chunk_size`` (members per device per call) and ``forces`` (the kernel the
            spec's force method resolved to).
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
    execution: dict[str, Any] = field(default_factory=dict)

    @property
    def num_members(self) -> int:
        return self.spec.num_members

    def parameter_table(self) -> tuple[np.ndarray, tuple[str, ...]]:
        """``([M, P] float64, names)``: the requested numeric parameters, one column each."""
        names = self.spec.parameter_names()
        return np.column_stack([self.table.parameters[n] for n in names]), names

    def summary_table(self) -> tuple[np.ndarray, tuple[str, ...]]:
        """``([M, S] float64, names)``: the measured summaries, one column each."""
        names = tuple(SUMMARIES)
        return np.column_stack([self.summaries[n] for n in names]), names

    def summary_units(self) -> dict[str, str]:
        """Unit label of each summary in the preset's unit system (``"1"``: dimensionless)."""
        units = get_unit_system(get_preset(self.spec.system).units)
        return {name: units.label(SUMMARY_DIMENSIONS[name]) for name in SUMMARIES}

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array of the npz file (see :meth:`save`)."""
        parameters, parameter_names = self.parameter_table()
        summaries, summary_names = self.summary_table()
        parameter_units, summary_units = self.spec.parameter_units(), self.summary_units()
        swept = set(self.spec.swept_names())
        out = {
            "parameters": parameters,
            "parameter_names": np.asarray(parameter_names),
            "parameter_units": np.asarray([parameter_units[n] for n in parameter_names]),
            "parameter_swept": np.asarray([n in swept for n in parameter_names]),
            "summaries": summaries,
            "summary_names": np.asarray(summary_names),
            "summary_units": np.asarray([summary_units[n] for n in summary_names]),
            "integrator": self.table.integrator,
            "member": np.arange(self.num_members),
            "member_key": member_keys(self.spec, self.table.ic_index),
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

    def columns(self) -> dict[str, dict[str, dict[str, Any]]]:
        """What each column means: ``{"parameters": {name: {role, units, swept, doc}},
        "summaries": {name: {role, units, doc}}}``."""
        swept = set(self.spec.swept_names())
        parameter_units, summary_units = self.spec.parameter_units(), self.summary_units()
        parameters = {
            name: {"role": "requested", "units": parameter_units[name], "swept": name in swept,
                   "doc": SWEEPABLE_PARAMETERS[name]}
            for name in self.spec.parameter_names()
        }
        summaries = {
            name: {"role": "measured", "units": summary_units[name], "doc": doc} for name, doc in SUMMARIES.items()
        }
        return {"parameters": parameters, "summaries": summaries}

    def metadata(self, *, command: Sequence[str] | None = None) -> dict[str, Any]:
        """Deterministic JSON metadata: spec, columns, fixed values, seeds, units, provenance."""
        preset = get_preset(self.spec.system)
        swept = set(self.spec.swept_names())
        fixed = {name: float(self.table.parameters[name][0]) for name in self.spec.parameter_names() if name not in swept}
        if "integrator" not in swept:
            fixed["integrator"] = self.spec.integrator
        free = [name for name in preset.parameter_names if name not in self.spec.parameter_names()]
        return {
            "format": FORMAT,
            "spec": self.spec.to_dict(),
            "t_end": self.spec.t_end,
            "columns": self.columns(),
            "swept": list(self.spec.swept_names()),
            "fixed": fixed,
            "free": {name: IC_PARAMETERS[name].doc for name in free},
            "seeds": {
                "seed": self.spec.seed,
                "initial_conditions": "member i starts from the preset built with key "
                "jax.random.fold_in(jax.random.key(seed), ic_index[i]), whose raw data is member_key[i]",
                "random_design": "numpy.random.Generator(numpy.random.PCG64(seed))",
            },
            "units": preset.units,
            "G": float(preset.params.G),
            "execution": dict(self.execution),
            # No timestamp: the same run writes the same bytes (checkpoint resume relies on it).
            **provenance(command, timestamp=False),
            "summaries": dict(SUMMARIES),
            "sweepable_parameters": dict(SWEEPABLE_PARAMETERS),
            "load": "d = numpy.load(path); X, y = d['parameters'], d['summaries'] "
            "(names, units: d['parameter_names'], d['parameter_units'], d['summary_names'], d['summary_units'])",
        }

    def save(self, path, *, command: Sequence[str] | None = None) -> Path:
        """Write one compressed npz atomically (the same run writes the same bytes).

        ``np.load(path)`` gives ``parameters [M, P]`` with ``parameter_names``,
        ``parameter_units`` and ``parameter_swept``, ``summaries [M, S]`` with
        ``summary_names`` and ``summary_units``, each column again by name (``param_dt``,
        ``final_energy_error``, ...), ``integrator``, ``member_key``, ``ic_index``,
        ``dt_used``, ``num_steps``, ``time``/``energy [M, T]``, optional
        ``position``/``velocity [M, T, n, 3]`` and ``mass [M, n]``, and ``metadata`` (JSON).
        """
        return save_npz(path, self.arrays(), self.metadata(command=command))

    def npz_bytes(self, *, command: Sequence[str] | None = None) -> bytes:
        """The bytes :meth:`save` writes (for downloads)."""
        return npz_bytes(self.arrays(), self.metadata(command=command))


def load_ensemble(path) -> EnsembleResult:
    """Read a file written by :meth:`EnsembleResult.save` back into an :class:`EnsembleResult`."""
    arrays, metadata = load_npz(path)
    if metadata.get("format") not in _READABLE:
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
        execution=dict(metadata.get("execution", {})),
    )


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
