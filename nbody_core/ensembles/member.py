"""One ensemble member: single-system code for its initial state, its run and its summaries.

Contract: :func:`initial_state` builds member ``i``'s state with the preset's own (traceable)
builder from its inputs; :func:`simulate_member` integrates it and returns the saved energies
and the :data:`SUMMARIES`. Both are written for one system; the runner batches them with
``jax.vmap`` outside. :func:`run_member` runs one member alone (the reference the vmapped
ensemble is tested against).
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from nbody_core.physics.diagnostics import to_center_of_mass_frame, virial_ratio
from nbody_core.physics.potentials import get_potential
from nbody_core.physics.reductions import ordered_sum
from nbody_core.systems.presets import get_preset
from nbody_core.integrate.simulate import integration_loop, make_clock, run_config
from nbody_core.integrate.trajectory import conserved_quantities
from nbody_core.physics.state import ParticleState, PhysicsParams
from nbody_core.registry import Registry
from .spec import EnsembleSpec, MemberTable, check_int

__all__ = [
    "SUMMARIES",
    "SUMMARY_DIMENSIONS",
    "LAGRANGIAN_FRACTIONS",
    "ICConfig",
    "MemberConfig",
    "ic_config",
    "member_config",
    "member_inputs",
    "member_keys",
    "initial_state",
    "MemberRun",
    "start_member",
    "advance_member",
    "summarize_member",
    "member_total_steps",
    "simulate_member",
    "initial_state_jit",
    "simulate_member_jit",
    "member_initial_state",
    "run_member",
]

#: Mass fractions of the Lagrangian radii in the summaries.
LAGRANGIAN_FRACTIONS = (0.1, 0.5, 0.9)

#: Per-member summaries in every result (measured, not requested), with their meaning.
SUMMARIES: Registry[str] = Registry("summary", {
    "final_energy_error": "|E(t_end) - E0| / |E0|",
    "max_energy_error": "max over saved snapshots of |E - E0| / |E0|",
    "initial_virial_ratio": "T / |U| measured at t = 0 with the run's softening (the requested "
    "virial_ratio parameter is set with unsoftened U, so the two differ by O(softening))",
    "final_virial_ratio": "T / |U| measured at t_end with the run's softening",
    "escaper_fraction": "fraction of bodies with positive energy relative to the system at t_end",
    "lagrangian_radius_10": "radius about the centre of mass enclosing 10 % of the mass at t_end",
    "lagrangian_radius_50": "half-mass radius at t_end",
    "lagrangian_radius_90": "radius enclosing 90 % of the mass at t_end",
    "min_pair_distance": "smallest unsoftened pair distance over the saved snapshots",
    "momentum_drift": "|P(t_end) - P0| (absolute, momentum units)",
    "angular_momentum_drift": "|L(t_end) - L0| (absolute, angular-momentum units)",
    "finite": "1 if every saved position, velocity and energy is finite, else 0",
})

#: Dimension (``units.DIMENSIONS``) of each summary.
SUMMARY_DIMENSIONS: dict[str, str] = {
    "final_energy_error": "dimensionless",
    "max_energy_error": "dimensionless",
    "initial_virial_ratio": "dimensionless",
    "final_virial_ratio": "dimensionless",
    "escaper_fraction": "dimensionless",
    "lagrangian_radius_10": "length",
    "lagrangian_radius_50": "length",
    "lagrangian_radius_90": "length",
    "min_pair_distance": "length",
    "momentum_drift": "momentum",
    "angular_momentum_drift": "angular_momentum",
    "finite": "dimensionless",
}


class ICConfig(NamedTuple):
    """Static configuration of the initial-conditions function (hashable).

    Attributes:
        system: preset name.
        num_bodies: N.
        parameters: the preset's initial-condition parameters passed (traced) to its
            builder; the others keep the builder's default.
    """

    system: str
    num_bodies: int
    parameters: tuple[str, ...]


class MemberConfig(NamedTuple):
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


def ic_config(spec: EnsembleSpec) -> ICConfig:
    """The :class:`ICConfig` of ``spec``'s members."""
    names = get_preset(spec.system).parameter_names
    return ICConfig(spec.system, spec.num_bodies, tuple(n for n in spec.parameter_names() if n in names))


def member_config(spec: EnsembleSpec, integrator: str) -> MemberConfig:
    """The :class:`MemberConfig` of ``spec``'s members that use ``integrator``."""
    params = get_preset(spec.system).params
    return MemberConfig(
        spec.num_saves, integrator, spec.forces, spec.potential, float(params.G),
        float(params.screening_length), float(params.power_index), spec.save_trajectories,
        # A static count compiles to a plain loop; a traced, batched one (a dt sweep) to a
        # while loop that masks finished members, measured ~1.5x slower per step on CPU.
        None if spec.sweep("dt") is not None else spec.num_steps // spec.num_saves,
    )


def initial_state(inputs: Mapping[str, jax.Array], *, config: ICConfig) -> ParticleState:
    """One member's initial state: the preset's builder with the key
    ``fold_in(wrap_key_data(inputs["seed"]), inputs["ic_index"])`` and the traced values of
    ``config.parameters``; single-system code, vmapped outside. A fixed system (no traced
    inputs) is built at trace time and baked in as constants."""
    key = jax.random.fold_in(jax.random.wrap_key_data(inputs["seed"]), inputs["ic_index"])
    preset = get_preset(config.system)
    return preset.build(key, config.num_bodies if preset.scalable else None,
                        **{name: inputs[name] for name in config.parameters})


# Every sum over bodies in a member's diagnostics and summaries is an ordered_sum (a fixed
# pairwise order of elementwise additions) and the cumulative mass an associative_scan (also
# elementwise additions): jnp.sum / jnp.cumsum lower to XLA reductions whose order depends on
# the vmapped batch shape, so a member's summaries changed by an ulp with the per-device
# chunk size (1 device x 16 members vs 4 devices x 4). Minima, maxima and sorts are exact in
# any order. Same seed, same bytes: on any number of devices, with any chunk size.


def _squared_distances(position):
    dr = position[:, None, :] - position[None, :, :]
    return ordered_sum(dr * dr, axis=-1)


def _min_pair_distance(position):
    n = position.shape[0]
    r2 = jnp.where(jnp.eye(n, dtype=bool), jnp.inf, _squared_distances(position))
    return jnp.sqrt(jnp.min(r2))


def _final_summaries(state: ParticleState, params: PhysicsParams, potential) -> dict:
    state = to_center_of_mass_frame(state)
    n = state.position.shape[0]
    off_diagonal = ~jnp.eye(n, dtype=bool)
    # Self-pairs masked before the square root (as softened_distance_matrix does).
    s = jnp.sqrt(jnp.where(off_diagonal, _squared_distances(state.position) + params.softening**2, 1.0))
    phi = jnp.where(off_diagonal, potential.pair_energy(s, params), 0.0)
    body_potential = state.mass * ordered_sum(phi * state.mass[None, :], axis=1)
    body_kinetic = 0.5 * state.mass * ordered_sum(state.velocity**2, axis=-1)
    # A count of 0/1 values: exact in any order.
    escaper_fraction = jnp.mean((body_kinetic + body_potential > 0).astype(state.position.dtype))
    radius = jnp.sqrt(ordered_sum(state.position**2, axis=-1))
    order = jnp.argsort(radius)
    cumulative = lax.associative_scan(jnp.add, state.mass[order]) / ordered_sum(state.mass)
    sorted_radius = radius[order]
    out = {"escaper_fraction": escaper_fraction}
    for fraction in LAGRANGIAN_FRACTIONS:
        index = jnp.minimum(jnp.searchsorted(cumulative, fraction - 1e-12), radius.shape[0] - 1)
        out[f"lagrangian_radius_{round(fraction * 100)}"] = sorted_radius[index]
    return out


def _norm(vector):
    return jnp.sqrt(ordered_sum(vector * vector))


class MemberRun(NamedTuple):
    """Where one member's integration stands between compiled calls (a pytree).

    Attributes:
        carry: the integration loop's carry (integrator state, initial energy).
        saved: observation buffers, each ``[num_saves + 1, ...]``; row ``k`` is filled
            once the member has taken ``k * steps_per_save`` steps.
        steps_done: global steps taken so far (int scalar).
        initial_virial_ratio: T / |U| of the initial state (measured at the start, so a
            run cut into calls and an uncut one compute it in the same place).
    """

    carry: Any
    saved: dict
    steps_done: jax.Array
    initial_virial_ratio: jax.Array


def _member_setup(state: ParticleState, inputs: Mapping[str, jax.Array], config: MemberConfig):
    dtype = state.position.dtype
    dt = jnp.asarray(inputs["dt"], dtype)
    params = PhysicsParams(
        G=jnp.asarray(config.G, dtype),
        softening=jnp.asarray(inputs["softening"], dtype),
        screening_length=jnp.asarray(config.screening_length, dtype),
        power_index=jnp.asarray(config.power_index, dtype),
    )
    potential = get_potential(config.potential)
    run = run_config(config.integrator, config.forces, potential)
    count = inputs["steps_per_save"] if config.steps_per_save is None else config.steps_per_save
    clock = make_clock(jnp.asarray(state.time, dtype), dt, count * config.num_saves)

    def snapshot(state, params, potential):
        quantities = conserved_quantities(state, params, potential)
        out = {
            "time": state.time,
            "energy": quantities.energy,
            "linear_momentum": quantities.linear_momentum,
            "angular_momentum": quantities.angular_momentum,
            "min_pair_distance": _min_pair_distance(state.position),
        }
        if config.save_trajectories:
            out["position"] = state.position
            out["velocity"] = state.velocity
        return out

    return params, potential, run, count, clock, snapshot


def member_total_steps(inputs: Mapping[str, jax.Array], *, config: MemberConfig):
    """Steps one member takes in all (``steps_per_save * num_saves``)."""
    count = inputs["steps_per_save"] if config.steps_per_save is None else config.steps_per_save
    return count * config.num_saves


def start_member(state: ParticleState, inputs: Mapping[str, jax.Array], *, config: MemberConfig) -> MemberRun:
    """One member before its first step: the initial acceleration and observation, and
    empty rows for the later ones (single-system code, vmapped outside).

    Args:
        state: the member's initial :class:`ParticleState` (``[n, 3]`` leaves).
        inputs: scalars ``dt`` (time units), ``steps_per_save`` (int) and ``softening``
            (length units); other entries are ignored.
        config: static configuration.
    """
    params, potential, run, count, clock, snapshot = _member_setup(state, inputs, config)
    carry, first = integration_loop(
        state, clock, params, config=run, num_saves=0, save_every=count, observe=snapshot
    )
    saved = jax.tree.map(lambda x: jnp.zeros((config.num_saves + 1, *x.shape[1:]), x.dtype).at[0].set(x[0]), first)
    return MemberRun(carry, saved, jnp.zeros((), clock.total.dtype), virial_ratio(state, params, potential))


def advance_member(
    state: ParticleState, member: MemberRun, inputs: Mapping[str, jax.Array], stop, *, config: MemberConfig
) -> MemberRun:
    """Take the member's steps up to global step ``min(stop, total)``, one bounded piece of a
    run cut into compiled calls (single-system code, vmapped outside).

    The steps are those of one uncut run (the same step function, the time of global step
    ``k`` computed as ``t0 + k * dt``), so a run cut anywhere gives bit-identical results.
    Each save is observed when its step is reached.

    Args:
        state: the member's initial state (its start time and masses set the clock).
        member: the :class:`MemberRun` so far.
        inputs: as in :func:`start_member`.
        stop: global step to stop at (int scalar; may be shared by every member).
        config: static configuration.
    """
    params, potential, run, count, clock, snapshot = _member_setup(state, inputs, config)
    stop = jnp.minimum(jnp.asarray(stop, member.steps_done.dtype), member_total_steps(inputs, config=config))

    def more(member: MemberRun):
        return member.steps_done < stop

    def piece(member: MemberRun):
        done = member.steps_done
        next_save = (done // count + 1) * count
        upto = jnp.minimum(next_save, stop)
        carry, seen = integration_loop(
            member.carry, clock._replace(first_step=done), params, config=run, num_saves=1,
            save_every=upto - done, first=False, observe=snapshot,
        )
        hit = upto == next_save
        row = upto // count
        saved = jax.tree.map(
            lambda buffer, value: buffer.at[row].set(jnp.where(hit, value[0], buffer[row])), member.saved, seen
        )
        return member._replace(carry=carry, saved=saved, steps_done=upto)

    return lax.while_loop(more, piece, member)


def summarize_member(
    state: ParticleState, member: MemberRun, inputs: Mapping[str, jax.Array], *, config: MemberConfig
) -> dict:
    """The outputs of a finished member (see :func:`simulate_member`)."""
    params, potential, *_ = _member_setup(state, inputs, config)
    saved = member.saved
    dtype = state.position.dtype
    final = member.carry.state.particles
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
        "initial_virial_ratio": member.initial_virial_ratio,
        "final_virial_ratio": virial_ratio(final, params, potential),
        **_final_summaries(final, params, potential),
        "min_pair_distance": jnp.min(saved["min_pair_distance"]),
        "momentum_drift": _norm(saved["linear_momentum"][-1] - saved["linear_momentum"][0]),
        "angular_momentum_drift": _norm(saved["angular_momentum"][-1] - saved["angular_momentum"][0]),
        "finite": finite.astype(dtype),
    }
    if config.save_trajectories:
        out.update(position=saved["position"], velocity=saved["velocity"], mass=state.mass)
    return out


def simulate_member(state: ParticleState, inputs: Mapping[str, jax.Array], *, config: MemberConfig) -> dict:
    """One member, single-system code: integrate from ``state`` and summarize, in one call
    (:func:`start_member`, :func:`advance_member` to the end, :func:`summarize_member`;
    the runner makes the same calls as separate bounded pieces).

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
    member = start_member(state, inputs, config=config)
    member = advance_member(state, member, inputs, member_total_steps(inputs, config=config), config=config)
    return summarize_member(state, member, inputs, config=config)


def member_keys(spec: EnsembleSpec, ic_index: np.ndarray) -> np.ndarray:
    """``[len(ic_index), 2]`` uint32 raw key data of each member's initial-conditions key,
    ``fold_in(key(seed), ic_index)`` (rebuild one with ``jax.random.wrap_key_data``)."""
    root = jax.random.key(spec.seed)
    keys = jax.vmap(lambda i: jax.random.key_data(jax.random.fold_in(root, i)))(jnp.asarray(ic_index, jnp.int32))
    return np.asarray(keys)


def member_inputs(spec: EnsembleSpec, table: MemberTable, members: np.ndarray) -> dict[str, np.ndarray]:
    """Host-side ``[len(members)]`` input arrays of :func:`initial_state` and
    :func:`simulate_member`."""
    seed = np.asarray(jax.random.key_data(jax.random.key(spec.seed)))
    inputs = {
        "seed": np.broadcast_to(seed, (len(members), *seed.shape)).copy(),
        "ic_index": table.ic_index[members].astype(np.int32),
        "dt": table.dt_used[members],
        "steps_per_save": (table.num_steps[members] // spec.num_saves).astype(np.int32),
        "softening": table.parameters["softening"][members],
    }
    for name in ic_config(spec).parameters:
        inputs[name] = table.parameters[name][members]
    return inputs


initial_state_jit = jax.jit(initial_state, static_argnames=("config",))
simulate_member_jit = jax.jit(simulate_member, static_argnames=("config",))


def _one_member_inputs(spec: EnsembleSpec, member: int) -> dict[str, jax.Array]:
    check_int("member", member, 0, spec.num_members - 1)
    inputs = member_inputs(spec, spec.table, np.array([member]))
    return {k: jnp.asarray(v[0]) for k, v in inputs.items()}


def member_initial_state(spec: EnsembleSpec, member: int) -> ParticleState:
    """The initial state of member ``member`` (as the ensemble builds it)."""
    return initial_state_jit(_one_member_inputs(spec, member), config=ic_config(spec))


def run_member(spec: EnsembleSpec, member: int) -> dict[str, np.ndarray]:
    """Run one member alone with the jitted single-system function (no vmap).

    The reference the vmapped ensemble is tested against, and the Python-loop baseline of
    the benchmark. Returns the member's outputs as NumPy arrays (see :func:`simulate_member`).
    """
    inputs = _one_member_inputs(spec, member)
    state = initial_state_jit(inputs, config=ic_config(spec))
    out = simulate_member_jit(state, inputs, config=member_config(spec, str(spec.table.integrator[member])))
    return {k: np.asarray(v) for k, v in out.items()}
