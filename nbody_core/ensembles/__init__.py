"""Ensembles: many N-body systems at once, vmapped over members and sharded over devices.

Contract: :func:`run_ensemble` takes an :class:`EnsembleSpec` (system, N, members, steps,
sweeps, design, seed) and returns an :class:`EnsembleResult` (a parameter table, per-member
summaries, energy traces and, on request, trajectories). One member is plain single-system
code (build its initial state, integrate, summarize; :func:`run_member` runs one alone);
``jax.vmap`` batches it *outside*, and the batch axis is sharded over a 1-D device mesh
``("members",)``.

Modules, one concern each:

========== ==================================================================
sweeps     the sweep grammar (``softening=0.001:0.1:log``) and value checks
spec       :class:`EnsembleSpec` (validated) and the resolved :class:`MemberTable`
member     one member: initial state (the preset's builder), run, summaries
result     :class:`EnsembleResult`, its npz file and :func:`load_ensemble`
runner     chunks, threads, devices, sharding, checkpoints: :func:`run_ensemble`
baseline   the Python loop over one member it is timed against
converge   members rerun at smaller steps to an energy target: :func:`run_converged`
========== ==================================================================

Members
    Member ``i`` starts from the preset's initial conditions built with the key
    ``jax.random.fold_in(jax.random.key(seed), i)`` (``i = 0`` for every member with
    ``shared_initial_conditions=True``) and with its own value of each swept parameter.
    Every member integrates to the same end time ``t_end = num_steps * dt``.
"""

from .converge import (
    DEFAULT_ENERGY_TOLERANCE as DEFAULT_ENERGY_TOLERANCE,
    converged_flags as converged_flags,
    run_converged as run_converged,
)
from .member import (
    LAGRANGIAN_FRACTIONS as LAGRANGIAN_FRACTIONS,
    SUMMARIES as SUMMARIES,
    SUMMARY_DIMENSIONS as SUMMARY_DIMENSIONS,
    member_initial_state as member_initial_state,
    run_member as run_member,
)
from .result import (
    EnsembleResult as EnsembleResult,
    fit_power_law as fit_power_law,
    load_ensemble as load_ensemble,
)
from .runner import (
    DEFAULT_MAX_CHUNK as DEFAULT_MAX_CHUNK,
    PIECE_PAIR_STEPS as PIECE_PAIR_STEPS,
    EnsembleCancelled as EnsembleCancelled,
    chunk_size_for as chunk_size_for,
    default_chunk_size as default_chunk_size,
    default_segment_steps as default_segment_steps,
    default_workers as default_workers,
    run_ensemble as run_ensemble,
)
from .baseline import time_python_loop as time_python_loop
from .spec import (
    MAX_MEMBERS as MAX_MEMBERS,
    MAX_STEPS_PER_MEMBER as MAX_STEPS_PER_MEMBER,
    PARAMETER_DIMENSIONS as PARAMETER_DIMENSIONS,
    SYSTEM_PARAMETERS as SYSTEM_PARAMETERS,
    EnsembleSpec as EnsembleSpec,
    MemberTable as MemberTable,
    member_table as member_table,
)
from .sweeps import SWEEPABLE_PARAMETERS as SWEEPABLE_PARAMETERS, Sweep as Sweep, format_sweep as format_sweep
from .sweeps import parse_sweep as parse_sweep

__all__ = [
    "SWEEPABLE_PARAMETERS",
    "SYSTEM_PARAMETERS",
    "SUMMARIES",
    "SUMMARY_DIMENSIONS",
    "PARAMETER_DIMENSIONS",
    "LAGRANGIAN_FRACTIONS",
    "MAX_MEMBERS",
    "MAX_STEPS_PER_MEMBER",
    "DEFAULT_MAX_CHUNK",
    "default_chunk_size",
    "default_workers",
    "default_segment_steps",
    "PIECE_PAIR_STEPS",
    "chunk_size_for",
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
    "run_converged",
    "converged_flags",
    "DEFAULT_ENERGY_TOLERANCE",
    "run_member",
    "time_python_loop",
    "load_ensemble",
    "fit_power_law",
]
