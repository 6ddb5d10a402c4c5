"""One process of tests/nbody_core/ensembles/test_distributed.py: run a small ensemble, save what it returned.

Usage: ``python tests/nbody_core/ensembles/_distributed_worker.py OUT.npz NUM_PROCESSES PROCESS_ID PORT``. With
``NUM_PROCESSES > 1`` it joins a ``jax.distributed`` cluster on localhost first (before any
other JAX work), so ``jax.devices()`` lists every process's CPU device.
"""

import os
import sys

os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402

out, num_processes, process_id, port = sys.argv[1], *map(int, sys.argv[2:5])
if num_processes > 1:
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}",
                               num_processes=num_processes, process_id=process_id,
                               initialization_timeout=60)

import numpy as np  # noqa: E402

import nbody_core  # noqa: E402
from nbody_core.ensembles import EnsembleSpec, run_ensemble  # noqa: E402

nbody_core.enable_float64()

spec = EnsembleSpec(system="plummer", num_bodies=8, num_members=10, num_steps=40, dt=1e-3,
                    softening=0.05, seed=3)
# Two members per device per call: the 10 members take 3 calls on two processes (the last
# one padded) and 5 on one; each device computes the same 2-member batch either way.
result = run_ensemble(spec, chunk_size=2)
np.savez(out, devices=len(jax.devices()), energy=result.energy,
         **{f"summary_{name}": value for name, value in result.summaries.items()})
if num_processes > 1:
    jax.distributed.shutdown()
