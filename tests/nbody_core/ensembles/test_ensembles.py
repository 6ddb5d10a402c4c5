"""Ensembles: vmap == Python loop, sharded == unsharded, chunked == unchunked, seeds, export.

Compiles are the cost here, so one small Plummer ensemble (module fixture) serves most
tests, and the physics checks use the two-body Kepler problem, which compiles fast.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest

import nbody_core
from nbody_core.ensembles import (
    MAX_MEMBERS,
    PIECE_PAIR_STEPS,
    SUMMARIES,
    EnsembleCancelled,
    EnsembleSpec,
    Sweep,
    fit_power_law,
    default_segment_steps,
    format_sweep,
    load_ensemble,
    member_initial_state,
    member_table,
    parse_sweep,
    run_ensemble,
    run_member,
    time_python_loop,
)

# A batch of members and the same member run alone may round differently (another compiled
# program: XLA fuses and contracts multiply-adds per program): measured differences are 1 ulp.
# (Batches of different sizes are bit-identical: test_same_bytes.py.) 40 leapfrog steps of a softened 8-body Plummer sphere keep the accumulated
# difference far below 1e-12 relative.
ROUND_OFF_RTOL = 1e-12


@pytest.fixture(scope="module")
def plummer_spec():
    return EnsembleSpec(
        system="plummer",
        num_bodies=8,
        num_members=10,
        num_steps=40,
        num_saves=4,
        sweeps=("softening=0.01:0.1:5:log", "virial_ratio=0.3,0.6"),
        seed=3,
        save_trajectories=True,
    )


@pytest.fixture(scope="module")
def plummer_result(plummer_spec):
    # One thread, one chunk: the unchunked reference the chunked and threaded runs must equal.
    return run_ensemble(plummer_spec, workers=1)


def assert_results_equal(a, b, *, rtol=0.0):
    for name in SUMMARIES:
        np.testing.assert_allclose(a.summaries[name], b.summaries[name], rtol=rtol, atol=0, err_msg=name)
    np.testing.assert_allclose(a.energy, b.energy, rtol=rtol, atol=0)
    np.testing.assert_array_equal(a.time, b.time)
    if a.position is not None:
        np.testing.assert_allclose(a.position, b.position, rtol=rtol, atol=rtol)


# ----------------------------------------------------------------------------- equivalences


def test_vmap_equals_python_loop_member_by_member(plummer_spec, plummer_result):
    for member in range(plummer_spec.num_members):
        alone = run_member(plummer_spec, member)
        for name in SUMMARIES:
            np.testing.assert_allclose(
                alone[name], plummer_result.summaries[name][member], rtol=ROUND_OFF_RTOL, atol=1e-15, err_msg=name
            )
        np.testing.assert_allclose(alone["energy"], plummer_result.energy[member], rtol=ROUND_OFF_RTOL, atol=0)
        np.testing.assert_allclose(alone["position"], plummer_result.position[member], rtol=0, atol=ROUND_OFF_RTOL)


def test_chunked_equals_unchunked(plummer_spec, plummer_result):
    # Three chunks shared by two threads: the same bytes as one chunk on one thread.
    chunked = run_ensemble(plummer_spec, chunk_size=4, workers=2)
    assert chunked.timing["num_chunks"] == 3 and plummer_result.timing["num_chunks"] == 1
    assert chunked.timing["workers"] == 2
    # Bit for bit: per-member sums have a fixed order whatever the batch (ordered_sum).
    assert_results_equal(chunked, plummer_result)
    np.testing.assert_array_equal(chunked.velocity, plummer_result.velocity)


def test_members_match_the_core_engine(plummer_spec, plummer_result):
    member = 7
    table = plummer_result.table
    key = jax.random.fold_in(jax.random.key(plummer_spec.seed), member)
    reference = nbody_core.plummer(key, 8, virial_ratio=float(table.parameters["virial_ratio"][member]))
    state = member_initial_state(plummer_spec, member)
    # Same sampler, jitted vs eager: equal to round-off.
    np.testing.assert_allclose(state.position, reference.position, rtol=0, atol=1e-14)
    np.testing.assert_allclose(state.velocity, reference.velocity, rtol=0, atol=1e-14)
    trajectory = nbody_core.simulate(
        reference, dt=plummer_spec.dt, num_steps=40, save_every=10,
        params=nbody_core.PhysicsParams(softening=float(table.parameters["softening"][member])),
    )
    np.testing.assert_allclose(trajectory.energy, plummer_result.energy[member], rtol=ROUND_OFF_RTOL, atol=0)
    np.testing.assert_allclose(trajectory.time, plummer_result.time[member], rtol=1e-15, atol=0)


# Sharded == unsharded, any chunk size, resumed or not: bit for bit in test_same_bytes.py.


def test_determinism_from_seeds(plummer_spec, plummer_result):
    again = run_ensemble(plummer_spec)
    assert_results_equal(again, plummer_result)  # bit for bit
    other = run_ensemble(EnsembleSpec(**{**plummer_spec.to_dict(), "seed": 4}))
    assert not np.array_equal(other.position[:, 0], plummer_result.position[:, 0])
    # Member i's initial conditions depend on (seed, i) only, not on M or chunking.
    smaller = EnsembleSpec(**{**plummer_spec.to_dict(), "num_members": 20, "sweeps": ()})
    np.testing.assert_array_equal(
        member_initial_state(smaller, 13).position, member_initial_state(
            EnsembleSpec(**{**plummer_spec.to_dict(), "num_members": 14, "sweeps": ()}), 13).position
    )


def test_shared_initial_conditions():
    spec = EnsembleSpec(system="plummer", num_bodies=8, num_members=3, num_steps=40, num_saves=4,
                        sweeps=("softening=0.01:0.1:log",), seed=3, shared_initial_conditions=True,
                        virial_ratio=0.6)
    table = member_table(spec)
    np.testing.assert_array_equal(table.ic_index, 0)
    first, last = member_initial_state(spec, 0), member_initial_state(spec, 2)
    np.testing.assert_array_equal(first.position, last.position)


# ----------------------------------------------------------------------------- summaries


def test_summaries_match_numpy_recomputation(plummer_spec, plummer_result):
    result = plummer_result
    for member in (0, 5, 9):
        eps = result.table.parameters["softening"][member]
        x = result.position[member, -1]
        v = result.velocity[member, -1]
        m = result.mass[member]
        x = x - (m[:, None] * x).sum(0) / m.sum()
        v = v - (m[:, None] * v).sum(0) / m.sum()
        dr = x[:, None] - x[None]
        r2 = (dr**2).sum(-1)
        off = ~np.eye(len(m), dtype=bool)
        phi = np.where(off, -1.0 / np.sqrt(np.where(off, r2, 1.0) + eps**2), 0.0)
        body_energy = 0.5 * m * (v**2).sum(-1) + m * (phi * m[None]).sum(1)
        potential = 0.5 * (m[:, None] * m[None] * phi).sum()
        kinetic = 0.5 * (m * (v**2).sum(-1)).sum()
        radius = np.sqrt((x**2).sum(-1))
        order = np.argsort(radius)
        cumulative = np.cumsum(m[order]) / m.sum()
        summary = {name: values[member] for name, values in result.summaries.items()}
        # Same formulas in another order: agreement to round-off.
        assert summary["escaper_fraction"] == np.mean(body_energy > 0)
        np.testing.assert_allclose(summary["final_virial_ratio"], kinetic / abs(potential), rtol=1e-12)
        for fraction, name in ((0.1, "lagrangian_radius_10"), (0.5, "lagrangian_radius_50"), (0.9, "lagrangian_radius_90")):
            expected = radius[order][np.argmax(cumulative >= fraction - 1e-12)]
            np.testing.assert_allclose(summary[name], expected, rtol=1e-12)
        pair_min = min(
            np.sqrt(((p[:, None] - p[None]) ** 2).sum(-1))[off].min() for p in result.position[member]
        )
        np.testing.assert_allclose(summary["min_pair_distance"], pair_min, rtol=1e-12)
        error = np.abs(result.energy[member] - result.energy[member, 0]) / abs(result.energy[member, 0])
        np.testing.assert_allclose(summary["max_energy_error"], error.max(), rtol=1e-12)
        assert summary["finite"] == 1.0
        assert summary["lagrangian_radius_10"] < summary["lagrangian_radius_50"] < summary["lagrangian_radius_90"]
        # Linear momentum is conserved to round-off by the pairwise-symmetric kernel.
        assert summary["momentum_drift"] < 1e-14


def test_swept_virial_ratio_is_the_initial_one(plummer_spec, plummer_result):
    for member in (1, 6):
        state = member_initial_state(plummer_spec, member)
        # The rescaling uses the unsoftened potential (as initial_conditions.plummer does).
        q = nbody_core.virial_ratio(state)
        np.testing.assert_allclose(q, plummer_result.table.parameters["virial_ratio"][member], rtol=1e-12)


def test_kepler_dt_sweep_shows_integrator_orders():
    period = nbody_core.kepler_period(a=1.0, total_mass=2.0)
    spec = EnsembleSpec(
        system="kepler", num_members=10, num_steps=1000, dt=period / 1000,
        sweeps=("dt=0.004:0.04:5:log", "integrator=leapfrog,yoshida4"), shared_initial_conditions=True,
    )
    result = run_ensemble(spec)
    table = result.table
    # Every member ends at one period, whatever its step.
    np.testing.assert_allclose(result.time[:, -1], period, rtol=1e-12)
    np.testing.assert_allclose(table.dt_used * table.num_steps, period, rtol=1e-12)
    assert np.all(table.dt_used <= table.parameters["dt"] * (1 + 1e-12))
    for integrator, order in (("leapfrog", 2), ("yoshida4", 4)):
        chosen = table.integrator == integrator
        slope, _ = fit_power_law(table.dt_used[chosen], result.summaries["max_energy_error"][chosen])
        # House rule: measured convergence order within +-0.3 of theory.
        assert abs(slope - order) < 0.3, (integrator, slope)
    # Snapshot 0 is pericentre, r = a (1 - e) with the preset's e = 0.5.
    np.testing.assert_allclose(result.summaries["min_pair_distance"], 0.5, rtol=1e-12)
    assert np.all(result.summaries["escaper_fraction"] == 0.0)


# ----------------------------------------------------------------------------- export


def test_export_round_trip(tmp_path, plummer_result):
    path = plummer_result.save(tmp_path / "ensemble.npz", command=["nbody", "ensemble", "--seed", "3"])
    data = np.load(path)  # one line, no pickle
    parameters, names = plummer_result.parameter_table()
    np.testing.assert_array_equal(data["parameters"], parameters)
    assert tuple(data["parameter_names"]) == names == ("dt", "softening", "virial_ratio")
    assert tuple(data["summary_names"]) == tuple(SUMMARIES)
    np.testing.assert_array_equal(data["final_energy_error"], plummer_result.summaries["final_energy_error"])
    assert data["position"].shape == (10, 5, 8, 3)
    metadata = json.loads(str(data["metadata"]))
    assert metadata["seeds"]["seed"] == 3
    assert metadata["units"] == "nbody"
    assert set(metadata["versions"]) >= {"nbody-explorer", "jax", "numpy"}
    assert metadata["command"] == ["nbody", "ensemble", "--seed", "3"]
    loaded = load_ensemble(path)
    assert loaded.spec == plummer_result.spec
    assert_results_equal(loaded, plummer_result)
    for name, values in plummer_result.table.parameters.items():
        np.testing.assert_array_equal(loaded.table.parameters[name], values)
    # The same result writes the same bytes (no timestamps in the file).
    again = plummer_result.save(tmp_path / "again.npz", command=["nbody", "ensemble", "--seed", "3"])
    assert path.read_bytes() == again.read_bytes()


def test_file_is_usable_without_the_code(tmp_path, plummer_result):
    """issue 12 point 12: units per column, swept vs fixed marked, per-member seeds,
    requested and measured quantities named apart."""
    data = np.load(plummer_result.save(tmp_path / "ensemble.npz"))
    metadata = json.loads(str(data["metadata"]))
    names = tuple(data["parameter_names"])
    assert dict(zip(names, data["parameter_units"])) == {"dt": "T", "softening": "L", "virial_ratio": "1"}
    assert dict(zip(names, data["parameter_swept"])) == {"dt": False, "softening": True, "virial_ratio": True}
    assert metadata["swept"] == ["softening", "virial_ratio"]
    assert metadata["fixed"] == {"dt": plummer_result.spec.dt, "integrator": "leapfrog"}
    units = dict(zip(data["summary_names"], data["summary_units"]))
    assert units["lagrangian_radius_50"] == "L" and units["final_energy_error"] == "1"
    assert units["momentum_drift"] == "L M / T"
    columns = metadata["columns"]
    assert {c["role"] for c in columns["parameters"].values()} == {"requested"}
    assert {c["role"] for c in columns["summaries"].values()} == {"measured"}
    # Requested and measured names never collide.
    assert not set(names) & set(data["summary_names"])
    # Per-member seeds: member i's key rebuilds its initial state exactly.
    assert data["member_key"].shape == (10, 2) and data["member_key"].dtype == np.uint32
    key = jax.random.wrap_key_data(data["member_key"][7])
    rebuilt = nbody_core.plummer(key, 8, virial_ratio=float(data["param_virial_ratio"][7]))
    np.testing.assert_allclose(rebuilt.position, member_initial_state(plummer_result.spec, 7).position,
                               rtol=0, atol=1e-14)  # centring in NumPy vs JAX: round-off


def test_no_nan_parameter_columns_for_a_default_plummer_ensemble(tmp_path):
    """A default Plummer ensemble had an all-NaN virial_ratio column: a parameter the run
    leaves free (velocities as sampled) now has no column, and the file says so."""
    spec = EnsembleSpec(num_bodies=8, num_members=2, num_steps=4, sweeps=("softening=0.01:0.1",))
    data = np.load(run_ensemble(spec).save(tmp_path / "plummer.npz"))
    assert tuple(data["parameter_names"]) == ("dt", "softening")
    assert np.isfinite(data["parameters"]).all() and np.isfinite(data["summaries"]).all()
    assert "virial_ratio" in json.loads(str(data["metadata"]))["free"]
    # A requested one is a column, held fixed.
    fixed = EnsembleSpec(num_bodies=8, num_members=2, num_steps=4, virial_ratio=0.4)
    assert fixed.parameter_names() == ("dt", "softening", "virial_ratio")
    np.testing.assert_array_equal(fixed.table.parameters["virial_ratio"], [0.4, 0.4])


def test_file_mode_follows_the_umask(tmp_path, plummer_result):
    """Files were written 0600 (mkstemp's mode) whatever the umask."""
    previous = os.umask(0o022)
    try:
        path = plummer_result.save(tmp_path / "shared.npz")
        assert path.stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        assert plummer_result.save(tmp_path / "private.npz").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(previous)


def test_member_table_is_resolved_once_per_spec(monkeypatch):
    from nbody_core.ensembles import spec as spec_module

    calls = []
    resolve = spec_module._resolve
    monkeypatch.setattr(spec_module, "_resolve", lambda spec: calls.append(1) or resolve(spec))
    spec = EnsembleSpec(system="kepler", num_members=4, num_steps=4, sweeps=("eccentricity=0.1:0.6",))
    result = run_ensemble(spec)
    time_python_loop(spec, num_members=2)
    member_table(spec), result.arrays()
    assert len(calls) == 1
    with pytest.raises(ValueError, match="read-only"):
        member_table(spec).dt_used[0] = 1.0


def test_every_initial_condition_parameter_is_a_spec_field():
    # A parameter added to a preset must be settable (and recorded) in an EnsembleSpec.
    from nbody_core.ensembles.sweeps import IC_PARAMETERS

    fields = set(EnsembleSpec.__dataclass_fields__)
    assert set(IC_PARAMETERS) <= fields and set(IC_PARAMETERS) <= set(nbody_core.ensembles.SWEEPABLE_PARAMETERS)


@pytest.mark.parametrize(
    "platform, memory, cache, n, expected",
    [
        # CPU: a quarter of the last-level cache. N = 64: 393 KiB per member, 8 MiB -> 16.
        ("cpu", None, 32 * 2**20, 64, 16),
        ("cpu", None, 32 * 2**20, 8, 128),      # capped at DEFAULT_MAX_CHUNK
        ("cpu", None, 8 * 2**20, 64, 4),        # a smaller cache, a smaller chunk
        ("cpu", None, 32 * 2**20, 2048, 1),     # one member is already past the budget
        # Accelerator: 1/64 of its memory. 16 GiB -> 256 MiB: N = 64 -> 512 members.
        ("gpu", 16 * 2**30, None, 64, 512),
        ("gpu", 141 * 2**30, None, 64, 4096),   # an H200: more members per call
        ("gpu", 141 * 2**30, None, 8, 8192),    # capped at MAX_ACCELERATOR_CHUNK
        ("gpu", None, None, 64, 512),           # memory unknown: 16 GiB assumed
    ],
)
def test_chunk_size_from_the_device(platform, memory, cache, n, expected):
    from nbody_core.ensembles.runner import chunk_size_for, member_bytes

    size = chunk_size_for(member_bytes(n), platform=platform, memory_bytes=memory, cache_bytes=cache)
    assert size == expected
    assert chunk_size_for(member_bytes(n), platform=platform, memory_bytes=memory, cache_bytes=cache,
                          largest_group=3) == min(3, expected)


def test_default_chunk_size_reads_the_device():
    from nbody_core.ensembles import default_chunk_size
    from nbody_core.ensembles.runner import device_memory_bytes

    spec = EnsembleSpec(num_bodies=64, num_members=256, num_steps=4)
    device = jax.devices()[0]
    size = device_memory_bytes(device)
    assert size is None or size > 0
    assert default_chunk_size(spec, device) >= 1
    assert default_chunk_size(spec, "cpu") == 16  # the fallback 32 MiB cache


def test_checkpoints_resume_an_interrupted_run(tmp_path, plummer_spec, plummer_result):
    checkpoints = tmp_path / "chunks"
    calls = []
    # One worker: chunks one after another, so the stop lands after exactly one chunk.
    with pytest.raises(EnsembleCancelled, match="after 1 of 3"):
        run_ensemble(plummer_spec, chunk_size=4, checkpoint_dir=checkpoints, workers=1,
                     should_stop=lambda: len(calls) > 0, progress=lambda done, total: done and calls.append(done))
    assert len(list(checkpoints.glob("chunk-*.npz"))) == 1
    progress = []
    resumed = run_ensemble(plummer_spec, chunk_size=4, checkpoint_dir=checkpoints,
                           progress=lambda done, total: progress.append((done, total)))
    assert resumed.timing["resumed_chunks"] == 1
    assert progress == [(0, 3), (1, 3), (2, 3), (3, 3)]
    fresh = run_ensemble(plummer_spec, chunk_size=4)
    assert_results_equal(resumed, fresh)
    # A checkpoint of another spec is never reused.
    other = EnsembleSpec(**{**plummer_spec.to_dict(), "seed": 99})
    assert run_ensemble(other, chunk_size=4, checkpoint_dir=checkpoints).timing["resumed_chunks"] == 0


def test_a_run_cut_into_bounded_pieces_is_bit_identical(plummer_spec, plummer_result):
    # The pieces take the same steps with the same step function and exact clock as one
    # call, so nothing may differ, not even by one ulp.
    reference = run_ensemble(plummer_spec, chunk_size=4)
    for steps in (1, 3, 7, 39):
        assert_results_equal(run_ensemble(plummer_spec, chunk_size=4, segment_steps=steps), reference)
    # A dt sweep: every member its own step count (traced), RK4.
    kepler = EnsembleSpec(system="kepler", num_members=6, num_steps=60, sweeps=("dt=0.001:0.01:log",),
                          integrator="rk4", seed=1)
    assert_results_equal(run_ensemble(kepler, chunk_size=4, segment_steps=7), run_ensemble(kepler, chunk_size=4))


def test_a_stop_is_seen_before_the_next_piece(plummer_spec):
    pieces = []

    def should_stop():
        pieces.append(1)
        return len(pieces) > 3

    with pytest.raises(EnsembleCancelled, match="after 0 of 3 chunks"):
        run_ensemble(plummer_spec, chunk_size=4, segment_steps=5, should_stop=should_stop, workers=1)
    assert len(pieces) == 4  # polled before each piece; the fourth poll stopped the run


def test_a_stop_ends_every_worker(plummer_spec):
    # Two threads poll the same stop: once it says True, no piece of any chunk starts, and
    # the run raises instead of returning a partial result.
    polls = []

    def should_stop():
        polls.append(1)
        return len(polls) > 3

    with pytest.raises(EnsembleCancelled, match="of 3 chunks"):
        run_ensemble(plummer_spec, chunk_size=4, segment_steps=5, should_stop=should_stop, workers=2)
    assert len(polls) == 4  # one thread at a time asks; once told to stop, no thread asks again


def test_default_workers_follow_the_idle_cores(monkeypatch):
    from nbody_core.ensembles import default_workers

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    cpu = jax.devices("cpu")[:1]
    assert default_workers(cpu, load_average=0.2) == 4  # idle: a thread per core
    assert default_workers(cpu, load_average=1.0) == 4  # this process alone
    assert default_workers(cpu, load_average=2.5) == 2
    assert default_workers(cpu, load_average=15.0) == 1  # a busy machine: one thread


def test_workers_are_checked(plummer_spec):
    with pytest.raises(ValueError, match="workers must be at least 1"):
        run_ensemble(plummer_spec, workers=0)


def test_default_pieces_hold_a_bounded_number_of_pair_interactions():
    assert default_segment_steps(64, 32) == PIECE_PAIR_STEPS // (32 * 64 * 64)
    assert default_segment_steps(64, 32, 4) == PIECE_PAIR_STEPS // (4 * 32 * 64 * 64)
    assert default_segment_steps(20_000, 1024) == 1  # at least one step


def test_python_loop_timing(plummer_spec):
    timing = time_python_loop(plummer_spec, num_members=3)
    assert timing["members_timed"] == 3
    assert timing["run_s"] > 0 and timing["seconds_per_member"] > 0
    np.testing.assert_allclose(timing["extrapolated_loop_s"], timing["seconds_per_member"] * 10)


# ----------------------------------------------------------------------------- designs


def test_grid_design_spreads_one_point_per_member():
    spec = EnsembleSpec(num_bodies=8, num_members=256, sweeps=("softening=0.001:0.1:log",))
    table = member_table(spec)
    np.testing.assert_allclose(table.parameters["softening"], np.geomspace(0.001, 0.1, 256))
    np.testing.assert_array_equal(table.ic_index, np.arange(256))
    np.testing.assert_array_equal(table.parameters["dt"], spec.dt)


def test_grid_design_cartesian_product_with_replicas():
    spec = EnsembleSpec(num_bodies=8, num_members=12,
                        sweeps=("virial_ratio=0.2:0.8:3", "integrator=leapfrog,rk4"))
    table = member_table(spec)
    points = list(zip(table.parameters["virial_ratio"], table.integrator))
    assert points[:6] == [(0.2, "leapfrog"), (0.2, "rk4"), (0.5, "leapfrog"), (0.5, "rk4"), (0.8, "leapfrog"), (0.8, "rk4")]
    assert points[6:] == points[:6]  # replicas differ by seed only
    assert len(set(table.ic_index)) == 12
    # Two free ranges share the members: floor(sqrt(M)) points each.
    two = EnsembleSpec(num_bodies=8, num_members=20, sweeps=("softening=0.01:0.1", "virial_ratio=0.2:0.8"))
    assert len(two.grid_points()) == 16


def test_random_design_is_seeded_and_in_range():
    spec = EnsembleSpec(num_bodies=8, num_members=500, design="random", seed=5,
                        sweeps=("softening=0.001:0.1:log", "virial_ratio=0.2:0.8", "integrator=leapfrog,yoshida4"))
    table = member_table(spec)
    softening = table.parameters["softening"]
    assert softening.min() >= 0.001 and softening.max() <= 0.1
    # Log-uniform: about half the members below the geometric middle 0.01 (500 draws: +-5 sigma).
    assert abs(np.mean(softening < 0.01) - 0.5) < 5 * 0.5 / np.sqrt(500)
    assert set(table.integrator) == {"leapfrog", "yoshida4"}
    again = member_table(spec)
    np.testing.assert_array_equal(again.parameters["virial_ratio"], table.parameters["virial_ratio"])
    other = member_table(EnsembleSpec(**{**spec.to_dict(), "seed": 6}))
    assert not np.array_equal(other.parameters["virial_ratio"], table.parameters["virial_ratio"])


def test_parse_sweep_syntax():
    assert parse_sweep("softening=0.001:0.1:log") == Sweep("softening", 0.001, 0.1, "log")
    assert parse_sweep("dt = 1e-3:1e-2:8:log") == Sweep("dt", 1e-3, 1e-2, "log", 8)
    assert parse_sweep("virial_ratio=0.2:0.8:lin") == Sweep("virial_ratio", 0.2, 0.8)
    assert parse_sweep("eccentricity=0.1,0.5,0.9").values == (0.1, 0.5, 0.9)
    assert parse_sweep("integrator=leapfrog,rk4").values == ("leapfrog", "rk4")
    for text in ("softening=0.001:0.1:log", "dt=0.001:0.01:4", "integrator=euler,leapfrog", "mass_ratio=0.5,1.0"):
        assert format_sweep(parse_sweep(text)) == format_sweep(parse_sweep(format_sweep(parse_sweep(text))))
        assert parse_sweep(format_sweep(parse_sweep(text))) == parse_sweep(text)


@pytest.mark.parametrize(
    "text, message",
    [
        ("softening", "must look like"),
        ("foo=1:2", "unknown sweep parameter 'foo'"),
        ("softening=0.1:0.01", "empty range"),
        ("softening=0.1:0.1", "empty range"),
        ("softening=0:0.1:log", "log range needs low > 0"),
        ("softening=-1:0.1", "softening must be >= 0"),
        ("dt=0:1", "dt must be positive"),
        ("eccentricity=0.5:1.0", "0 <= e < 1"),
        ("softening=a:b", "'a' is not a number"),
        ("softening=0.1:0.2:1", "at least 2 points"),
        ("softening=0.1:0.2:x", "whole number of points"),
        ("integrator=leapfrog,warp", "unknown integrator 'warp'"),
        ("integrator=0:1", "list of names"),
        ("softening=", "nothing after"),
        ("virial_ratio=0.1,0.1", "twice"),
    ],
)
def test_bad_sweeps_raise_clear_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_sweep(text)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_members": 0}, "num_members must be at least 1"),
        ({"num_members": MAX_MEMBERS + 1}, "exceeds the cap"),
        ({"num_members": 2.5}, "num_members must be an integer"),
        ({"num_steps": 0}, "num_steps must be at least 1"),
        ({"system": "galaxy"}, "unknown preset 'galaxy'"),
        ({"num_bodies": 1}, "num_bodies must be an integer >= 2"),
        ({"system": "figure_eight", "num_bodies": 5}, "always has 3 bodies"),
        ({"dt": -1.0}, "dt must be positive"),
        ({"softening": -0.1}, "softening must be >= 0"),
        ({"integrator": "warp"}, "unknown integrator"),
        ({"design": "latin"}, "design must be 'grid' or 'random'"),
        ({"seed": -1}, "seed must be at least 0"),
        ({"sweeps": ("eccentricity=0.1:0.5",)}, "eccentricity does not apply to system 'plummer'"),
        ({"mass_ratio": 2.0}, "mass_ratio does not apply"),
        ({"sweeps": ("softening=0.01:0.1:8",), "num_members": 4}, "grid has 8 points but only 4 members"),
        ({"sweeps": ("softening=0.01:0.1:8",), "design": "random"}, "only applies to the grid design"),
        ({"sweeps": ("softening=0.01:0.1", "softening=0.1:0.2")}, "swept twice"),
        ({"num_steps": 10, "num_saves": 3}, "must divide num_steps"),
        ({"sweeps": ("dt=1e-9:1e-3:log",)}, "needs .* steps"),
        ({"forces": "analytic", "potential": "yukawa"}, "Newtonian gravity only"),
        ({"shared_initial_conditions": True, "sweeps": ("softening=0.01:0.1:4",), "num_members": 8}, "identical runs"),
    ],
)
def test_bad_specs_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EnsembleSpec(**{"num_bodies": 8, **kwargs} if kwargs.get("system", "plummer") == "plummer" else kwargs)


def test_run_options_are_validated():
    spec = EnsembleSpec(num_bodies=8, num_members=2, num_steps=4)
    with pytest.raises(ValueError, match="chunk_size must be at least 1"):
        run_ensemble(spec, chunk_size=0)
    with pytest.raises(ValueError, match="devices must be between 1 and"):
        run_ensemble(spec, devices=len(jax.devices()) + 1)


def test_fit_power_law():
    x = np.geomspace(1e-3, 1e-1, 7)
    slope, intercept = fit_power_law(x, 3.0 * x**2.5)
    np.testing.assert_allclose([slope, intercept], [2.5, np.log(3.0)], rtol=1e-10)
    assert np.isnan(fit_power_law([1.0, 1.0], [2.0, 3.0])[0])


@pytest.mark.parametrize(
    "system, kwargs, build",
    [
        ("cold_collapse", {"virial_ratio": 0.3}, lambda key: nbody_core.cold_collapse(key, 8, virial_ratio=0.3)),
        ("cold_collapse", {}, lambda key: nbody_core.cold_collapse(key, 8)),
        ("rotating_disk", {}, lambda key: nbody_core.rotating_disk(key, 8)),
        ("kepler", {"eccentricity": 0.7, "mass_ratio": 0.25},
         lambda key: nbody_core.kepler(2.0 / 1.25, 0.5 / 1.25, a=1.0, e=0.7)),
    ],
)
def test_member_initial_conditions_are_the_presets(system, kwargs, build):
    spec = EnsembleSpec(system=system, num_bodies=8 if system != "kepler" else None,
                        num_members=4, num_steps=10, seed=11, **kwargs)
    state = member_initial_state(spec, 2)
    reference = build(jax.random.fold_in(jax.random.key(11), 2))
    # Same samplers; centring in JAX here, in NumPy in the presets: equal to round-off.
    np.testing.assert_allclose(state.position, reference.position, rtol=0, atol=1e-14)
    np.testing.assert_allclose(state.velocity, reference.velocity, rtol=0, atol=1e-14)
    np.testing.assert_allclose(state.mass, reference.mass, rtol=1e-15)
