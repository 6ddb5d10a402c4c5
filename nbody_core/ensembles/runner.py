"""Running an ensemble: members vmapped in chunks, sharded over devices, resumable.

Contract: :func:`run_ensemble` takes an :class:`~nbody_core.ensembles.EnsembleSpec` and
returns an :class:`~nbody_core.ensembles.EnsembleResult`. The single-member functions of
:mod:`.member` are batched with ``jax.vmap`` and the batch axis is sharded over a 1-D device
mesh ``("members",)``.

Memory and devices
    Members run in fixed-size chunks (the last one padded by repeating its last member, so
    one compiled executable serves every chunk); device memory is bounded by the chunk size
    whatever ``num_members`` is. :func:`chunk_size_for` picks the chunk from the device: a
    share of an accelerator's memory, or of a CPU's last-level cache. Each chunk's member
    axis is laid out with ``NamedSharding(Mesh(devices, ("members",)),
    PartitionSpec("members"))``: each of the D devices computes ``chunk_size`` members per
    call. Results are bit-identical whatever the device count and chunk size: the kernel
    ``forces="auto"`` picks depends on the platform, dtype and N only
    (:mod:`nbody_core.physics.autoselect`), and every per-member sum over bodies (forces,
    energies, momenta, summaries) is an :func:`~nbody_core.physics.reductions.ordered_sum`
    whose rounding does not depend on the vmapped batch (a ``jnp.sum`` lowers to an XLA
    reduce whose order XLA picks per batch shape: before, 1 device x 16 members and 4
    devices x 4 members differed by an ulp in energies, summaries and velocities). The
    file records the device count, chunk size and kernel (``metadata["execution"]``). The
    integrator is static (compiled in), so members are grouped per integrator.

Threads
    XLA:CPU runs one compiled call on one core, so on CPU devices the chunks are shared by
    ``workers`` host threads (:func:`default_workers`: the idle cores per device), each issuing
    its chunks' calls; a call issued from two threads runs on two cores at once, on one
    device. Every chunk is the same computation whichever thread runs it, so results do not
    depend on the worker count. Compiles are serialized (one lock), and the outputs are
    gathered, checkpoints aside, on the calling thread.

Energy checks
    Each member's energy, momenta and smallest pair distance are taken at its ``num_saves``
    snapshots (20 per run by default), inside the same compiled loop as the steps: no host
    round trip. The summaries are computed on the device from those and the final state.

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

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait, FIRST_EXCEPTION
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from nbody_core.integrate.integrators import get_integrator
from nbody_core.physics.autoselect import resolve_forces
from nbody_core.physics.potentials import NEWTONIAN, get_potential
from nbody_core.io import load_npz, save_npz
from .member import (
    SUMMARIES,
    advance_member,
    start_member,
    summarize_member,
    ic_config,
    initial_state,
    member_config,
    member_inputs,
    simulate_member,
)
from .result import EnsembleResult
from .spec import MAX_MEMBERS, EnsembleSpec, check_int

__all__ = [
    "DEFAULT_MAX_CHUNK",
    "MAX_ACCELERATOR_CHUNK",
    "EnsembleCancelled",
    "PIECE_PAIR_STEPS",
    "default_segment_steps",
    "clear_compiled",
    "chunk_size_for",
    "member_bytes",
    "device_memory_bytes",
    "default_chunk_size",
    "resolved_forces",
    "run_ensemble",
    "default_workers",
]


class EnsembleCancelled(RuntimeError):
    """Raised by :func:`run_ensemble` when ``should_stop()`` returned True between chunks."""


#: Largest number of members per CPU device in one compiled call.
DEFAULT_MAX_CHUNK = 128
#: Largest number of members per accelerator in one compiled call.
MAX_ACCELERATOR_CHUNK = 8192
# Assumed when the device does not say: a 16 GiB accelerator, a 32 MiB last-level cache.
_FALLBACK_ACCELERATOR_BYTES = 16 * 2**30
_FALLBACK_CACHE_BYTES = 32 * 2**20


def member_bytes(num_bodies: int, *, num_saves: int = 0, save_trajectories: bool = False) -> int:
    """Bytes one member holds on the device during a step: its ``[n, n, 3]`` float64 pair
    arrays (x4 for temporaries), plus its saved trajectory."""
    size = 4 * num_bodies**2 * 3 * 8
    if save_trajectories:
        size += 2 * (num_saves + 1) * num_bodies * 3 * 8
    return size


def chunk_size_for(per_member: int, *, platform: str, memory_bytes: int | None = None,
                   cache_bytes: int | None = None, largest_group: int | None = None) -> int:
    """Members per device per compiled call, from the device's size (a pure function).

    On an accelerator one device's share of a chunk stays under 1/64 of its memory (256 MiB
    on a 16 GiB device; room for XLA's buffers and other sessions), at most
    :data:`MAX_ACCELERATOR_CHUNK`. On a CPU it stays in a quarter of the last-level cache
    (8 MiB of a 32 MiB L3: measured at N = 64, chunks of 16 ran ~3x faster per member than
    128), at most :data:`DEFAULT_MAX_CHUNK`. A power of two, at least 1, never more than
    ``largest_group``. It never depends on the device count, so a sharded run computes the
    same per-device batches as a one-device run (bit-identical results).

    Args:
        per_member: bytes per member (:func:`member_bytes`).
        platform: ``"cpu"``, ``"gpu"``, ``"tpu"``... (``jax.Device.platform``).
        memory_bytes: the accelerator's memory (None: 16 GiB).
        cache_bytes: the CPU's last-level cache (None: 32 MiB).
        largest_group: most members sharing one integrator (None: no limit).
    """
    if platform == "cpu":
        budget, size = (cache_bytes or _FALLBACK_CACHE_BYTES) // 4, DEFAULT_MAX_CHUNK
    else:
        budget, size = (memory_bytes or _FALLBACK_ACCELERATOR_BYTES) // 64, MAX_ACCELERATOR_CHUNK
    while size > 1 and size * per_member > budget:
        size //= 2
    return max(1, size if largest_group is None else min(size, largest_group))


def device_memory_bytes(device) -> int | None:
    """An accelerator's memory (``memory_stats()["bytes_limit"]``), or for a CPU its
    largest cache (from ``/sys/devices/system/cpu/cpu0/cache``); None when unknown."""
    if device.platform != "cpu":
        try:
            return int((device.memory_stats() or {})["bytes_limit"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError):
            return None
    sizes = []
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (index / "size").read_text().strip().upper()
        except OSError:
            continue
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        digits = text[:-1] if text[-1:] in "KMG" else text
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes) if sizes else None


def default_workers(devices: Sequence | None = None, *, load_average: float | None = None) -> int:
    """Host threads :func:`run_ensemble` runs chunks on when not told: on CPU devices, the
    cores this process may use (``os.sched_getaffinity``) shared among the devices, less the
    cores other work keeps busy (the 1-minute load average, this process counted as 1), at
    least 1; on accelerators 1 (one stream of calls per device keeps it busy).

    Why threads: XLA:CPU runs one vmapped call on one core, and two calls issued from two
    threads run at once on one CPU device. Measured on the 2-core EPYC (Plummer N = 32, 256
    members, 200 steps): idle, 0.155 s in one call against 0.091 s as two halves from two
    threads; at load 15-20, 0.50 s on one thread against 0.86 s on two (the second thread
    only waited for a core: benchmarks/results/ensembles.md). Results never depend on it.

    Args:
        devices: the devices (None: ``jax.devices()``).
        load_average: the load to assume (None: ``os.getloadavg()[0]``).
    """
    devices = list(jax.devices()) if devices is None else list(devices)
    if any(device.platform != "cpu" for device in devices):
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    if load_average is None:
        try:
            load_average = os.getloadavg()[0]
        except OSError:
            load_average = 0.0
    idle = int(cores - max(load_average, 1.0) + 1)  # cores free of other work, this one included
    return max(1, min(cores // max(1, len(devices)), idle))


def default_chunk_size(spec: EnsembleSpec, device: Any = "cpu", *, workers: int = 1) -> int:
    """Members per device per call that :func:`run_ensemble` uses when not told.

    Args:
        spec: the ensemble.
        device: a ``jax.Device`` (its memory or cache is read) or a platform name
            (``"cpu"``, ``"gpu"``: the fallback sizes of :func:`chunk_size_for`).
        workers: threads the chunks are shared among (:func:`default_workers`): the chunk
            is lowered (a power of two) until the largest integrator group has a chunk per
            worker, so every core has work.
    """
    platform = device if isinstance(device, str) else device.platform
    size = None if isinstance(device, str) else device_memory_bytes(device)
    largest_group = max(np.count_nonzero(spec.table.integrator == name) for name in spec.integrators)
    chunk = chunk_size_for(
        member_bytes(spec.num_bodies, num_saves=spec.num_saves, save_trajectories=spec.save_trajectories),
        platform=platform, memory_bytes=size if platform != "cpu" else None,
        cache_bytes=size if platform == "cpu" else None, largest_group=largest_group,
    )
    share = -(-largest_group // max(1, workers))
    while chunk > 1 and chunk // 2 >= share:
        chunk //= 2
    return chunk


#: Batched functions kept (see :func:`_batched`): each holds JAX's own cache of its compiled
#: executables, one per argument shape; the least recently used is dropped with them.
BATCHED_CACHE_SIZE = 32


def clear_compiled() -> int:
    """Forget every cached batched function and the executables JAX holds on them
    (``jax.clear_caches()`` alone leaves the jitted objects alive here); a server calls it once
    no session is left. Returns how many were dropped."""
    count = _batched.cache_info().currsize
    _batched.cache_clear()
    return count


@lru_cache(maxsize=BATCHED_CACHE_SIZE)
def _batched(fn: Callable, config: NamedTuple, num_args: int, sharding: NamedSharding, *, sequential: bool,
             num_shared: int = 0):
    """``fn`` batched over members for one config and mesh, as one ``jax.jit`` object.

    Keyed by hashable records only (the member function, its config record, the sharding),
    so a repeated ensemble (a dashboard session pressing Run again, the next chunk) gets the
    same jitted object and JAX's cache on it: no recompile. Bounded: at most
    :data:`BATCHED_CACHE_SIZE` configurations are kept in the process.
    """
    single = partial(fn, config=config)
    if not sequential:
        # The last ``num_shared`` arguments are scalars shared by every member (a piece's
        # end step): unbatched, so the loops they bound are not masked per member.
        replicated = NamedSharding(sharding.mesh, PartitionSpec())
        in_axes = (0,) * (num_args - num_shared) + (None,) * num_shared
        in_shardings = (sharding,) * (num_args - num_shared) + (replicated,) * num_shared
        return jax.jit(jax.vmap(single, in_axes=in_axes), in_shardings=in_shardings, out_shardings=sharding)
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


def _compiled(fn: Callable, config: NamedTuple, args: tuple, sharding: NamedSharding, *, sequential: bool = False,
              num_shared: int = 0):
    """``fn`` batched over members for this config, argument shapes and mesh, compiled ahead
    of time: ``jit(vmap(fn))`` sharded over the mesh, or (``sequential``) a per-device
    ``lax.map`` under ``shard_map``.

    Returns ``(executable, compile_seconds)``. The executable comes from JAX's cache on the
    jitted object of :func:`_batched` when these shapes were compiled before: then the
    seconds are those of the cache look-up (measured ~0.3 ms), not a compile.
    """
    jitted = _batched(fn, config, len(args), sharding, sequential=sequential, num_shared=num_shared)
    # One compile at a time: a second worker thread asking for the same executable waits
    # and then finds it in JAX's cache instead of compiling it again.
    with _COMPILE_LOCK:
        start = time.perf_counter()
        executable = jitted.lower(*args).compile()
        return executable, time.perf_counter() - start


_COMPILE_LOCK = threading.Lock()


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


#: Pair interactions x steps of one bounded piece when a run can be stopped. Measured on
#: the 2-core EPYC (load 3-5, leapfrog, auto forces): 1.6-2.7e8 pair-steps per CPU second
#: for 32-256 members of N = 16-256, so a piece is 0.1-0.2 s of CPU and a stop is seen
#: well within half a second (nbody_explorer.limits.PAIR_STEPS_PER_CPU_SECOND is the same figure).
PIECE_PAIR_STEPS = 30_000_000


def default_segment_steps(num_bodies: int, members_per_call: int, force_evaluations_per_step: int = 1) -> int:
    """Steps per bounded piece: about :data:`PIECE_PAIR_STEPS` pair interactions for one
    call of ``members_per_call`` members of ``num_bodies`` bodies (at least one step)."""
    per_step = max(1, members_per_call * num_bodies * num_bodies * force_evaluations_per_step)
    return max(1, PIECE_PAIR_STEPS // per_step)


def _run_in_pieces(states, inputs, config, sharding, *, longest: int, segment_steps: int, should_stop, where):
    """One chunk as bounded compiled calls: start, ``advance`` by ``segment_steps`` steps
    at a time (``should_stop`` polled before each; ``where()`` says how far the run got),
    summarize. Bit-identical to one call. Returns ``(outputs on the devices, compile_seconds)``."""
    start_fn, start_s = _compiled(start_member, config, (states, inputs), sharding)
    member = start_fn(states, inputs)
    step_dtype = member.steps_done.dtype
    stop0 = np.asarray(min(segment_steps, longest), step_dtype)
    advance_fn, advance_s = _compiled(advance_member, config, (states, member, inputs, stop0), sharding, num_shared=1)
    for stop in range(segment_steps, longest + segment_steps, segment_steps):
        if should_stop is not None and should_stop():
            raise EnsembleCancelled(f"ensemble stopped after {where()} (and {stop - segment_steps} steps of the next)")
        member = jax.block_until_ready(advance_fn(states, member, inputs, np.asarray(min(stop, longest), step_dtype)))
    summarize_fn, summarize_s = _compiled(summarize_member, config, (states, member, inputs), sharding)
    return summarize_fn(states, member, inputs), start_s + advance_s + summarize_s


def run_ensemble(
    spec: EnsembleSpec,
    *,
    chunk_size: int | None = None,
    devices: int | Sequence | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint_dir: str | Path | None = None,
    segment_steps: int | None = None,
    workers: int | None = None,
) -> EnsembleResult:
    """Run every member of ``spec``: vmapped chunks, sharded over devices, on host threads.

    Args:
        spec: what to run.
        chunk_size: members *per device* in one compiled call (None: chosen from the
            first device's memory or cache by :func:`default_chunk_size`, lowered until
            every worker has a chunk). One call runs ``chunk_size * num_devices`` members;
            the last call of each integrator is padded, so one executable serves them all.
        devices: the devices of the 1-D ``("members",)`` mesh: None (all of
            ``jax.devices()``, every host's after ``jax.distributed.initialize()``), a count
            (the first k) or a sequence of devices. With the same ``chunk_size`` the results
            are bit-identical whatever the device count.
        progress: called as ``progress(done_chunks, total_chunks)`` once with 0 before the
            first chunk and after each chunk (always from the calling thread).
        should_stop: polled between chunks and between the bounded pieces of a chunk (from
            the worker threads too); True raises :class:`EnsembleCancelled`.
        checkpoint_dir: if given, each finished chunk is saved there (atomically) and a
            chunk already saved by a run of the same spec, chunk size and device count is
            loaded instead of recomputed (resume after an interruption).
        segment_steps: steps per compiled call of a chunk's members, the integrator state
            carried from one call to the next (results bit-identical to one call). None:
            one call per chunk without ``should_stop``; with it, pieces of about
            :data:`PIECE_PAIR_STEPS` pair interactions (:func:`default_segment_steps`), so
            a stop is seen within a fraction of a second.
        workers: host threads that run chunks at once (None: :func:`default_workers`, the
            idle cores per CPU device; 1 on accelerators). Results do not depend on it: each
            chunk is the same computation whichever thread runs it.

    Returns:
        :class:`EnsembleResult`; ``timing`` holds ``compile_s`` apart from ``run_s`` (the
        wall time of the run less the compiles, which are serialized) and ``cpu_s``
        (process CPU seconds of the whole call, compiles included).

    Raises:
        ValueError: for a bad chunk size, worker count or device choice.
        EnsembleCancelled: when ``should_stop()`` says so.
    """
    if not isinstance(spec, EnsembleSpec):
        raise ValueError(f"spec must be an EnsembleSpec, got {type(spec).__name__}")
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    device_list = _resolve_devices(devices)
    num_devices = len(device_list)
    if workers is None:
        workers = default_workers(device_list)
    check_int("workers", workers, 1, 1024)
    workers = int(workers)
    if chunk_size is None:
        chunk_size = default_chunk_size(spec, device_list[0], workers=workers)
    check_int("chunk_size", chunk_size, 1, MAX_MEMBERS)
    chunk_size = int(chunk_size)
    call_size = chunk_size * num_devices
    if segment_steps is not None:
        check_int("segment_steps", segment_steps, 1, 2**31 - 1)
        segment_steps = int(segment_steps)
    elif should_stop is not None:
        # Devices run their shares in parallel, so a piece's time follows the per-device batch.
        evaluations = max(get_integrator(name).force_evaluations_per_step for name in spec.integrators)
        segment_steps = default_segment_steps(spec.num_bodies, chunk_size, evaluations)
    mesh = Mesh(np.asarray(device_list), ("members",))
    sharding = NamedSharding(mesh, PartitionSpec("members"))

    table = spec.table
    groups = [(name, np.flatnonzero(table.integrator == name)) for name in spec.integrators]
    plan = [
        (name, k, members[start:start + call_size])
        for name, members in groups
        for k, start in enumerate(range(0, members.size, call_size))
    ]
    checkpoint = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if checkpoint is not None:
        checkpoint.mkdir(parents=True, exist_ok=True)
    # Hashing the spec reads every package's version (~9 ms): only for checkpoints.
    fingerprint = f"{spec.fingerprint()}-{chunk_size}x{num_devices}" if checkpoint is not None else ""
    all_inputs = member_inputs(spec, table, np.arange(spec.num_members))
    failed = threading.Event()  # a chunk raised: the queued ones return at once
    finished = [0]  # chunks collected so far (read by the workers' messages)

    def where() -> str:
        return f"{finished[0]} of {len(plan)} chunks"

    stop_lock = threading.Lock()

    def stopping() -> bool:
        # should_stop is called by one thread at a time (a dashboard's may wait there for its
        # turn, and the other workers then wait behind it); once it says stop, nobody asks again.
        if failed.is_set() or should_stop is None:
            return failed.is_set()
        with stop_lock:
            try:
                if not failed.is_set() and should_stop():
                    failed.set()
            except BaseException:  # a stop that raises its own exception (a dashboard job's)
                failed.set()
                raise
            return failed.is_set()

    def run_chunk(index: int):
        integrator, k, members = plan[index]
        if stopping():
            raise EnsembleCancelled(f"ensemble stopped after {where()}")
        chunk_file = checkpoint / f"chunk-{integrator}-{k:06d}.npz" if checkpoint is not None else None
        chunk = _load_chunk(chunk_file, fingerprint, members) if chunk_file is not None else None
        if chunk is not None:
            return chunk, 0.0, True
        chunk, seconds = _run_chunk(
            spec, integrator, members, all_inputs, call_size, sharding, segment_steps=segment_steps,
            should_stop=stopping, where=where,
        )
        if chunk_file is not None:
            save_npz(chunk_file, {**chunk, "members": members}, {"fingerprint": fingerprint})
        return chunk, seconds, False

    outputs: dict[str, np.ndarray] = {}
    compile_s = 0.0
    resumed = 0

    def collect(index: int, done: int, chunk: dict, seconds: float, was_resumed: bool) -> None:
        nonlocal compile_s, resumed
        compile_s += seconds
        resumed += was_resumed
        finished[0] = done
        members = plan[index][2]
        for name, value in chunk.items():
            if name not in outputs:
                outputs[name] = np.empty((spec.num_members, *value.shape[1:]), value.dtype)
            outputs[name][members] = value
        if progress is not None:
            progress(done, len(plan))

    if progress is not None:
        progress(0, len(plan))
    if workers == 1 or len(plan) == 1:
        for index in range(len(plan)):
            collect(index, index + 1, *run_chunk(index))
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(plan)), thread_name_prefix="ensemble") as pool:
            pending = {pool.submit(run_chunk, index): index for index in range(len(plan))}
            done = 0
            try:
                while pending:
                    ready, _ = wait(pending, return_when=FIRST_EXCEPTION)
                    for future in ready:
                        index = pending.pop(future)
                        done += 1
                        collect(index, done, *future.result())
            except BaseException:
                failed.set()
                for future in pending:
                    future.cancel()
                raise
    summaries = {name: outputs[name].astype(np.float64) for name in SUMMARIES}
    wall_s = time.perf_counter() - wall_start
    run_s = max(wall_s - compile_s, 0.0)
    return EnsembleResult(
        spec=spec,
        table=table,
        summaries=summaries,
        time=outputs["time"],
        energy=outputs["energy"],
        position=outputs.get("position"),
        velocity=outputs.get("velocity"),
        mass=outputs.get("mass"),
        execution={"num_devices": num_devices, "chunk_size": chunk_size, "forces": resolved_forces(spec)},
        timing={
            "compile_s": compile_s,
            "run_s": run_s,
            "wall_s": wall_s,
            "cpu_s": time.process_time() - cpu_start,
            "num_chunks": len(plan),
            "resumed_chunks": resumed,
            "chunk_size": chunk_size,
            "num_devices": num_devices,
            "workers": workers,
            "members_per_s": spec.num_members / run_s if run_s > 0 else float("nan"),
        },
    )


def _run_chunk(spec: EnsembleSpec, integrator: str, members: np.ndarray, all_inputs: dict, call_size: int,
               sharding: NamedSharding, *, segment_steps: int | None, should_stop, where):
    """One chunk's members, padded to ``call_size`` by repeating the last: initial states,
    integration and summaries on the devices, the outputs back on the host. Returns
    ``(outputs, compile_seconds)``."""
    padded = np.concatenate([members, np.full(call_size - members.size, members[-1])])
    inputs = {name: _to_global(value[padded], sharding) for name, value in all_inputs.items()}
    ic_fn, compile_s = _compiled(initial_state, ic_config(spec), (inputs,), sharding, sequential=True)
    states = ic_fn(inputs)
    config = member_config(spec, integrator)
    longest = int(spec.table.num_steps[members].max())
    if segment_steps is None or segment_steps >= longest:
        sim_fn, seconds = _compiled(simulate_member, config, (states, inputs), sharding)
        device_out = sim_fn(states, inputs)
    else:
        device_out, seconds = _run_in_pieces(
            states, inputs, config, sharding, longest=longest, segment_steps=segment_steps,
            should_stop=should_stop, where=where,
        )
    return {name: _to_host(value)[: members.size] for name, value in device_out.items()}, compile_s + seconds


def resolved_forces(spec: EnsembleSpec) -> str:
    """The force kernel ``spec.forces`` runs with: itself, or for ``"auto"`` the choice of
    :func:`~nbody_core.physics.autoselect.resolve_forces` for the members' N, dtype, potential
    and JAX's default backend (as the kernel resolves it when traced)."""
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    newtonian = get_potential(spec.potential).pair_energy is NEWTONIAN.pair_energy
    return resolve_forces(spec.forces, n=spec.num_bodies, dtype=dtype, newtonian=newtonian)


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
