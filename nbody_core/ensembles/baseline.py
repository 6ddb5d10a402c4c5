"""The baseline a vmapped ensemble is measured against: a Python loop over one member.

Contract: :func:`time_python_loop` runs the ensemble's own single-system functions, jitted,
one member after another (initial state, then integration and summaries), and reports the
wall and CPU seconds with compilation apart; on every member, or on a stated sample from
which the whole loop is extrapolated.
"""

from __future__ import annotations

import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .member import ic_config, initial_state_jit, member_config, member_inputs, simulate_member_jit
from .runner import EnsembleCancelled
from .spec import MAX_MEMBERS, EnsembleSpec, check_int

__all__ = ["time_python_loop"]


def time_python_loop(spec: EnsembleSpec, *, num_members: int | None = 8,
                     should_stop: Callable[[], bool] | None = None) -> dict[str, float]:
    """Time a Python loop over the jitted single-member functions on a subset of members.

    This is the baseline the vmapped run is compared with: the same single-system code,
    jitted, called once per member (initial conditions, then the simulation). The members
    are spread evenly over the ensemble (so a dt or integrator sweep is sampled fairly);
    compile time is measured apart. ``num_members=None`` (or at least ``spec.num_members``)
    times every member, so the loop runs exactly what the ensemble ran; fewer are a sample
    and the loop time of the whole ensemble is extrapolated as
    ``spec.num_members * seconds_per_member`` (``"extrapolated"`` says which).

    ``should_stop`` is polled before each member (True raises :class:`EnsembleCancelled`).

    Returns:
        ``{"members_timed", "compile_s", "run_s", "cpu_s", "seconds_per_member",
        "extrapolated_loop_s", "extrapolated"}`` (seconds; ``cpu_s``: process CPU seconds of
        the timed loop).
    """
    if num_members is None:
        num_members = spec.num_members
    check_int("num_members", num_members, 1, MAX_MEMBERS)
    table = spec.table
    chosen = np.unique(np.linspace(0, spec.num_members - 1, min(num_members, spec.num_members)).round().astype(int))
    all_inputs = member_inputs(spec, table, chosen)
    per_member_inputs = [{k: jnp.asarray(v[i]) for k, v in all_inputs.items()} for i in range(chosen.size)]
    initial_config = ic_config(spec)
    start = time.perf_counter()
    ic_fn = initial_state_jit.lower(per_member_inputs[0], config=initial_config).compile()
    state = ic_fn(per_member_inputs[0])
    sim_fns = {
        name: simulate_member_jit.lower(state, per_member_inputs[0], config=member_config(spec, name)).compile()
        for name in sorted(set(table.integrator[chosen]))
    }
    compile_s = time.perf_counter() - start
    # One untimed call per executable: the first run of a fresh executable pays one-off
    # costs (measured: 7 ms of an 8 ms member at N = 8); the baseline is the steady state.
    for name, sim_fn in sim_fns.items():
        jax.block_until_ready(sim_fn(state, per_member_inputs[0]))
    start, cpu_start = time.perf_counter(), time.process_time()
    for inputs, member in zip(per_member_inputs, chosen):
        if should_stop is not None and should_stop():
            raise EnsembleCancelled("the Python-loop timing was stopped")
        jax.block_until_ready(sim_fns[str(table.integrator[member])](ic_fn(inputs), inputs))
    run_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    per_member = run_s / chosen.size
    return {
        "members_timed": int(chosen.size),
        "compile_s": compile_s,
        "run_s": run_s,
        "cpu_s": cpu_s,
        "seconds_per_member": per_member,
        "extrapolated_loop_s": per_member * spec.num_members,
        "extrapolated": bool(chosen.size < spec.num_members),
    }
