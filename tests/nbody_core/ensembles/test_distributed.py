"""One ensemble across two jax.distributed processes on localhost equals a one-process run.

Each process sees one CPU device; ``run_ensemble`` builds its mesh over both (global
``jax.devices()``), hands each process its shards and gathers the results, so every process
returns the whole ensemble. Each device computes the same 2-member batch as the lone device
of the one-process run, so the results must be bit-identical (no tolerance).
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WORKER = Path(__file__).with_name("_distributed_worker.py")
REPO = WORKER.parents[3]
TIMEOUT_S = 180  # compile + run ~10 s per process on a quiet 2-core machine; generous for load


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(out: Path, num_processes: int, process_id: int, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(out), str(num_processes), str(process_id), str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _finish(processes: list[subprocess.Popen]) -> list[str]:
    """Wait for every process within one deadline; kill (by PID) any still running after it."""
    deadline = time.monotonic() + TIMEOUT_S
    logs = []
    try:
        for proc in processes:
            out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            logs.append(out)
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    for proc, log in zip(processes, logs):
        assert proc.returncode == 0, log
    return logs


def test_two_process_ensemble_is_bit_identical_to_one_process(tmp_path):
    port = _free_port()
    outs = [tmp_path / f"process{i}.npz" for i in range(2)]
    reference_out = tmp_path / "single.npz"
    processes = [_start(out, 2, i, port) for i, out in enumerate(outs)]
    processes.append(_start(reference_out, 1, 0, 0))
    _finish(processes)

    reference = np.load(reference_out)
    assert int(reference["devices"]) == 1
    assert np.unique(reference["summary_final_virial_ratio"]).size == 10  # 10 distinct members
    for out in outs:
        result = np.load(out)
        assert int(result["devices"]) == 2  # the mesh spans both processes
        for name in reference.files:
            if name != "devices":
                assert np.array_equal(result[name], reference[name]), name
