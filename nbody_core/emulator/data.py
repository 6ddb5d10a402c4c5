"""Training data for an emulator: the swept parameters and chosen summaries of an ensemble file.

Contract: :func:`load_training_data` reads an npz written by ``nbody ensemble`` (or
``EnsembleResult.save``) and returns a :class:`TrainingData` record: inputs ``[M, P]`` (the
swept numeric parameters), outputs ``[M, S]`` (the chosen summaries), their names and units,
and the fingerprint of the ensemble's spec. :func:`split_members` splits members (never
rows of one member) into train / validation / test with a fixed seed.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from nbody_core.ensembles import PARAMETER_DIMENSIONS, SUMMARY_DIMENSIONS, parse_sweep
from nbody_core.ensembles.converge import DEFAULT_ENERGY_TOLERANCE
from nbody_core.io import load_npz

__all__ = [
    "MIN_MEMBERS",
    "DEFAULT_OUTPUTS",
    "DEFAULT_ENERGY_TOLERANCE",
    "INPUT_UNITS",
    "OUTPUT_UNITS",
    "TrainingData",
    "Split",
    "training_data_from_arrays",
    "load_training_data",
    "spec_fingerprint",
    "split_members",
]

#: Fewest usable (finite) members an emulator is trained on: the test and validation splits
#: need a few members each to say anything (15 % of 20 is 3).
MIN_MEMBERS = 20

#: Summaries learned when none are named: smooth functions of the parameters plus
#: member-to-member scatter. Energy errors (heavy-tailed, set by close encounters) and
#: momentum drifts (round-off) are left out unless asked for.
#: The escaper fraction is not among them (issue 27, item 6): at N = 64 and t = 4 it is a count
#: in steps of 1/64, zero for most members, so a Gaussian mean and sd misdescribe it (its
#: predicted sd was 0.76 of the true scatter) and a Gaussian likelihood over it is wrong; the
#: 90 % Lagrangian radius carries the outer bodies' information continuously. Ask for it by
#: name to learn it anyway.
DEFAULT_OUTPUTS = (
    "final_virial_ratio",
    "lagrangian_radius_10",
    "lagrangian_radius_50",
    "lagrangian_radius_90",
)
_NEVER_DEFAULT = ("finite", "momentum_drift", "angular_momentum_drift", "initial_virial_ratio")

#: Dimension of each sweepable numeric parameter and of each summary (the ensembles' own
#: tables), used for files that carry no unit labels of their own.
INPUT_UNITS = PARAMETER_DIMENSIONS
OUTPUT_UNITS = SUMMARY_DIMENSIONS


@dataclass(frozen=True)
class TrainingData:
    """Inputs and outputs of an ensemble, one row per usable member.

    Attributes:
        inputs: ``[M, P]`` float64 swept parameter values (their own units).
        outputs: ``[M, S]`` float64 summaries.
        members: ``[M]`` member indices in the ensemble file (dropped members left out).
        input_names, output_names: column names.
        input_units, output_units: dimension of each column in ``unit_system``.
        input_log: per input, True when the sweep was log-spaced (the network sees log10).
        input_low, input_high: per input, the swept range (the box the emulator knows).
        unit_system: the ensemble's unit system name (``"nbody"``: G = M = R = 1).
        fingerprint: :func:`spec_fingerprint` of the ensemble's spec.
        spec: the ensemble's spec as JSON (``EnsembleSpec.to_dict()``).
        dropped: members left out, in all (``dropped_nonfinite + dropped_unconverged``).
        dropped_nonfinite: members left out because a summary or the finite flag was not finite.
        dropped_unconverged: finite members left out because their ``max_energy_error``
            exceeds ``energy_tolerance`` (unconverged runs teach the emulator the time step's
            artefacts, issue 27).
        energy_tolerance: the target applied (None: not checked, or the file has no
            ``max_energy_error`` column).
    """

    inputs: np.ndarray
    outputs: np.ndarray
    members: np.ndarray
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    input_units: tuple[str, ...]
    output_units: tuple[str, ...]
    input_log: tuple[bool, ...]
    input_low: tuple[float, ...]
    input_high: tuple[float, ...]
    unit_system: str
    fingerprint: str
    spec: dict
    dropped: int = 0
    dropped_nonfinite: int = 0
    dropped_unconverged: int = 0
    energy_tolerance: float | None = None

    @property
    def num_members(self) -> int:
        return int(self.inputs.shape[0])


@dataclass(frozen=True)
class Split:
    """Row indices (into :class:`TrainingData` rows) of each split, disjoint, sorted."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def spec_fingerprint(spec: Mapping[str, Any]) -> str:
    """sha256 of the ensemble spec's canonical JSON (sorted keys): the ensemble a model
    was trained on. Unlike ``EnsembleSpec.fingerprint`` it leaves library versions out, so
    the same spec run under a newer JAX keeps its fingerprint."""
    return hashlib.sha256(json.dumps(dict(spec), sort_keys=True).encode()).hexdigest()


def _swept(metadata: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> list[tuple[str, bool, float, float]]:
    """``(name, log, low, high)`` of every swept numeric parameter, in sweep order."""
    out = []
    for text in metadata["spec"].get("sweeps", ()):
        sweep = parse_sweep(text)
        if sweep.name == "integrator":
            continue
        if sweep.is_range:
            out.append((sweep.name, sweep.scale == "log", float(sweep.low), float(sweep.high)))
        elif len(sweep.values) > 1:
            values = np.asarray(sweep.values, dtype=float)
            log = bool(values.min() > 0 and values.max() / values.min() >= 10.0)
            out.append((sweep.name, log, float(values.min()), float(values.max())))
    return out


def _units(arrays, key: str, names: list[str], chosen: list[str], fallback: Mapping[str, str]) -> tuple[str, ...]:
    """Unit labels of ``chosen`` columns: the file's own (``parameter_units`` /
    ``summary_units``) when it has them, else the dimension from ``fallback``."""
    if key in arrays and len(arrays[key]) == len(names):
        labels = dict(zip(names, (str(u) for u in np.asarray(arrays[key]).tolist())))
        return tuple(labels[name] for name in chosen)
    return tuple(fallback.get(name, "unknown") for name in chosen)


def training_data_from_arrays(
    arrays: Mapping[str, np.ndarray],
    metadata: Mapping[str, Any],
    *,
    outputs: Sequence[str] | None = None,
    source: str = "ensemble",
    energy_tolerance: float | None = DEFAULT_ENERGY_TOLERANCE,
) -> TrainingData:
    """:func:`load_training_data` for arrays already in memory (e.g. ``EnsembleResult``
    ``.arrays()`` and ``.metadata()``, or an uploaded file)."""
    if energy_tolerance is not None and not (math.isfinite(energy_tolerance) and energy_tolerance > 0):
        raise ValueError(f"energy_tolerance must be a positive number or None, got {energy_tolerance!r}")
    if not isinstance(metadata, Mapping) or "ensemble" not in str(metadata.get("format", "")) or "spec" not in metadata:
        raise ValueError(f"{source} is not an ensemble file written by 'nbody ensemble' (no ensemble metadata)")
    for key in ("parameters", "parameter_names", "summaries", "summary_names"):
        if key not in arrays:
            raise ValueError(f"{source} is not a complete ensemble file: array {key!r} is missing")
    try:
        swept = _swept(metadata, arrays)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{source}: unreadable sweep in the ensemble metadata ({error})") from None
    if not swept:
        raise ValueError(
            f"{source} has no swept numeric parameter, so there is nothing to learn: run the "
            "ensemble with e.g. --sweep softening=0.01:0.3:log --sweep virial_ratio=0.3:0.7"
        )
    parameter_names = [str(n) for n in np.asarray(arrays["parameter_names"]).tolist()]
    summary_names = [str(n) for n in np.asarray(arrays["summary_names"]).tolist()]
    parameters = np.asarray(arrays["parameters"], dtype=np.float64)
    summaries = np.asarray(arrays["summaries"], dtype=np.float64)
    if parameters.ndim != 2 or summaries.ndim != 2 or parameters.shape[0] != summaries.shape[0]:
        raise ValueError(f"{source}: parameters and summaries must be [M, P] and [M, S] tables of one M")
    if parameters.shape[1] != len(parameter_names) or summaries.shape[1] != len(summary_names):
        raise ValueError(f"{source}: the name lists do not match the table widths")
    for name, *_ in swept:
        if name not in parameter_names:
            raise ValueError(f"{source}: swept parameter {name!r} has no column in 'parameters'")
    if outputs is None:
        varying = [n for n in summary_names if np.nanstd(summaries[:, summary_names.index(n)]) > 0]
        chosen = [n for n in DEFAULT_OUTPUTS if n in varying]
        if not chosen:
            chosen = [n for n in varying if n not in _NEVER_DEFAULT]
        if not chosen:
            raise ValueError(f"{source}: every summary is constant across members; nothing to learn")
    else:
        chosen = list(outputs)
        if not chosen:
            raise ValueError("choose at least one output summary")
        for name in chosen:
            if name not in summary_names:
                raise ValueError(f"unknown output {name!r}; the ensemble has {summary_names}")
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"an output is named twice: {chosen}")
    if "parameter_swept" in arrays:
        # Files that mark swept columns: a column the spec sweeps must be marked swept.
        marked = {n for n, flag in zip(parameter_names, np.asarray(arrays["parameter_swept"]).tolist()) if flag}
        for name, *_ in swept:
            if name not in marked:
                raise ValueError(f"{source}: {name!r} is swept in the spec but not marked swept in the file")
    input_units = _units(arrays, "parameter_units", parameter_names, [n for n, *_ in swept], INPUT_UNITS)
    output_units = _units(arrays, "summary_units", summary_names, chosen, OUTPUT_UNITS)
    x = parameters[:, [parameter_names.index(name) for name, *_ in swept]]
    y = summaries[:, [summary_names.index(name) for name in chosen]]
    keep = np.all(np.isfinite(x), axis=1) & np.all(np.isfinite(y), axis=1)
    if "finite" in summary_names:
        keep &= summaries[:, summary_names.index("finite")] == 1
    nonfinite = int((~keep).sum())
    checked = energy_tolerance is not None and "max_energy_error" in summary_names
    if checked:
        # NaN compares False: a non-finite error is counted as non-finite above or here.
        converged = summaries[:, summary_names.index("max_energy_error")] <= energy_tolerance
        unconverged = int((keep & ~converged).sum())
        keep &= converged
    else:
        unconverged = 0
    usable = int(keep.sum())
    if usable < MIN_MEMBERS:
        over = f", {unconverged} over the energy-error target {energy_tolerance:g}" if unconverged else ""
        fix = ("rerun the ensemble with --energy-tolerance (members over the target are rerun at smaller "
               "steps) or run more --members" if unconverged else "run more --members")
        raise ValueError(
            f"{source} has {usable} usable member(s) (of {x.shape[0]}{over}); an emulator needs at least "
            f"{MIN_MEMBERS} to hold some out for validation and testing: {fix}"
        )
    spec = dict(metadata["spec"])
    return TrainingData(
        inputs=x[keep],
        outputs=y[keep],
        members=np.flatnonzero(keep),
        input_names=tuple(name for name, *_ in swept),
        output_names=tuple(chosen),
        input_units=input_units,
        output_units=output_units,
        input_log=tuple(log for _, log, _, _ in swept),
        input_low=tuple(low for _, _, low, _ in swept),
        input_high=tuple(high for _, _, _, high in swept),
        unit_system=str(metadata.get("units", "nbody")),
        fingerprint=spec_fingerprint(spec),
        spec=spec,
        dropped=int(x.shape[0] - usable),
        dropped_nonfinite=nonfinite,
        dropped_unconverged=unconverged,
        energy_tolerance=float(energy_tolerance) if checked else None,
    )


def load_training_data(path, *, outputs: Sequence[str] | None = None,
                       energy_tolerance: float | None = DEFAULT_ENERGY_TOLERANCE) -> TrainingData:
    """Read an ensemble npz into :class:`TrainingData`.

    Args:
        path: file written by ``nbody ensemble`` / ``EnsembleResult.save``.
        outputs: summary names to learn (None: :data:`DEFAULT_OUTPUTS` that vary, else every
            varying summary but the finite flag, initial virial ratio and momentum drifts).
        energy_tolerance: members whose ``max_energy_error`` exceeds it are dropped and
            counted (``dropped_unconverged``); None keeps them.

    Raises:
        ValueError: not an npz / not an ensemble / no numeric sweep / too few usable
            members / unknown output, each with a message naming the problem.
        OSError: the file does not exist.
    """
    arrays, metadata = load_npz(path)
    return training_data_from_arrays(arrays, metadata, outputs=outputs, source=repr(str(Path(path).name)),
                                     energy_tolerance=energy_tolerance)


def split_members(num: int, *, seed: int = 0, validation: float = 0.15, test: float = 0.15) -> Split:
    """Random train / validation / test split of ``num`` rows (each row one member).

    At least 2 rows go to validation and to test; the rest train. The permutation comes
    from ``numpy.random.PCG64(seed)``, so the same seed gives the same split.
    """
    if num < MIN_MEMBERS:
        raise ValueError(f"need at least {MIN_MEMBERS} members to split, got {num}")
    order = np.random.Generator(np.random.PCG64(seed)).permutation(num)
    n_test = max(2, int(math.floor(test * num + 0.5)))
    n_val = max(2, int(math.floor(validation * num + 0.5)))
    return Split(
        train=np.sort(order[n_test + n_val:]),
        validation=np.sort(order[n_test:n_test + n_val]),
        test=np.sort(order[:n_test]),
    )
