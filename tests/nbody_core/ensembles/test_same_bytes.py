"""Same seed, same bytes: one ensemble on 1, 2 and 4 devices, any chunk size, resumed or not.

Each device count is its own process (``--xla_force_host_platform_device_count`` must be set
before JAX starts), run side by side. Every process saves the files of its layouts; every
array of every file must equal the one-device, 16-member-chunk reference byte for byte. No
tolerance: per-member sums are computed in a fixed order (``physics.reductions.ordered_sum``),
so nothing may depend on the vmapped batch. Before that fix the per-device batch (4 vs 16
members at N = 16) changed energies, summaries and velocities by an ulp.

The spec is small (N = 16, 20 steps) because compiles dominate: one per call shape and mesh.
"""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from nbody_core.physics.autoselect import resolve_forces

REPO = Path(__file__).resolve().parents[3]
TIMEOUT_S = 300  # ~15 s per process on a quiet 2-core machine; generous for a loaded one

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import jax
    import nbody_core
    from nbody_core.ensembles import EnsembleCancelled, EnsembleSpec, run_ensemble
    nbody_core.enable_float64()
    out, layouts = Path(sys.argv[1]), json.loads(sys.argv[2])
    assert len(jax.devices()) == max(d for d, _, _ in layouts), jax.devices()
    spec = EnsembleSpec(num_bodies=16, num_members=16, num_steps=20, num_saves=4, seed=1,
                        sweeps=("softening=0.01:0.1:log", "virial_ratio=0.3,0.6"), save_trajectories=True)
    for devices, chunk, how in layouts:
        name = f"{devices}x{chunk}-{how}.npz"
        if how == "resumed":
            # Interrupted after its first chunk, then run again from the checkpoints.
            checkpoints = out / (name + ".chunks")
            done = []
            try:
                # One worker: chunks one after another, so the stop lands after exactly one
                # (more threads could finish a second chunk first on a machine with idle cores).
                run_ensemble(spec, devices=devices, chunk_size=chunk, checkpoint_dir=checkpoints, workers=1,
                             progress=lambda k, total: done.append(k), should_stop=lambda: len(done) > 1)
                raise AssertionError("the run was not interrupted")
            except EnsembleCancelled:
                pass
            result = run_ensemble(spec, devices=devices, chunk_size=chunk, checkpoint_dir=checkpoints)
            assert result.timing["resumed_chunks"] == 1, result.timing
        else:
            result = run_ensemble(spec, devices=devices, chunk_size=chunk)
        result.save(out / name)
    """
)

# (devices, members per device per call, how): every process's device count is its largest.
LAYOUTS = {
    1: [(1, 16, "plain"), (1, 8, "plain"), (1, 64, "plain")],
    2: [(2, 8, "plain"), (2, 5, "resumed")],
    4: [(4, 4, "plain"), (4, 16, "plain"), (4, 2, "resumed")],
}
REFERENCE = "1x16-plain.npz"


def _run_processes(out: Path) -> None:
    processes = []
    for count, layouts in LAYOUTS.items():
        env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu",
               "XLA_FLAGS": f"--xla_force_host_platform_device_count={count}"}
        processes.append(subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, str(out), json.dumps(layouts)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
    deadline = time.monotonic() + TIMEOUT_S
    logs = []
    try:
        for proc in processes:
            logs.append(proc.communicate(timeout=max(1.0, deadline - time.monotonic()))[0])
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    for proc, log in zip(processes, logs):
        assert proc.returncode == 0, log


def test_every_layout_writes_the_same_arrays(tmp_path):
    _run_processes(tmp_path)
    reference = np.load(tmp_path / REFERENCE)
    reference_metadata = json.loads(str(reference["metadata"]))
    assert reference["velocity"].shape == (16, 5, 16, 3)
    assert np.unique(reference["final_virial_ratio"]).size == 16  # 16 distinct members
    files = sorted(tmp_path.glob("*.npz"))
    assert len(files) == sum(len(layouts) for layouts in LAYOUTS.values())
    for path in files:
        data = np.load(path)
        assert sorted(data.files) == sorted(reference.files), path.name
        for name in reference.files:
            if name == "metadata":
                continue
            a, b = reference[name], data[name]
            assert a.dtype == b.dtype and a.shape == b.shape, (path.name, name)
            assert a.tobytes() == b.tobytes(), (path.name, name)  # byte for byte, no tolerance
    for path in files:
        metadata = json.loads(str(np.load(path)["metadata"]))
        devices, chunk = (int(v) for v in path.name.split("-")[0].split("x"))
        # The file records how it was made; the rest of the metadata is the reference's.
        kernel = resolve_forces("auto", n=16, dtype=np.float64, platform="cpu")
        assert metadata.pop("execution") == {"num_devices": devices, "chunk_size": chunk, "forces": kernel}
        assert metadata.pop("devices")["count"] == max(d for d, _, _ in LAYOUTS[devices])
        expected = {k: v for k, v in reference_metadata.items() if k not in ("execution", "devices")}
        assert metadata == expected, path.name
