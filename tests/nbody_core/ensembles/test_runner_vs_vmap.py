"""The runner computes what ``jax.jit(jax.vmap(simulate))`` computes over the same members.

``run_ensemble`` adds chunks, threads, devices and summaries around the single-system loop;
none of that may change a number. The reference is the plain recipe a user would write:
the members' initial states stacked, ``nb.simulate`` vmapped and jitted, saved at the same
steps. A correctness test, not a timing one (the timings are in bench_ensembles.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nbody_core as nb
from nbody_core.ensembles import EnsembleSpec, member_initial_state, run_ensemble
from nbody_core.physics.diagnostics import virial_ratio

# Same step function, same kernel, same clock: the runner and the raw vmap take the same
# steps. Energies are sums over bodies taken in a fixed order in both (ordered_sum), but the
# two compiled programs may fuse the arithmetic differently: allow a few float64 ulps.
RTOL = 1e-12


@pytest.mark.parametrize("workers,chunk_size", [(1, None), (2, 2)])
def test_runner_equals_raw_vmap_of_simulate(workers, chunk_size):
    spec = EnsembleSpec(system="plummer", num_bodies=8, num_members=5, num_steps=40, num_saves=4, seed=3,
                        sweeps=("softening=0.01:0.1:log",), save_trajectories=True)
    result = run_ensemble(spec, workers=workers, chunk_size=chunk_size)
    states = [member_initial_state(spec, i) for i in range(spec.num_members)]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)
    softening = jnp.asarray(spec.table.parameters["softening"])

    def one(state, eps):
        return nb.simulate(state, dt=spec.dt, num_steps=spec.num_steps, save_every=spec.num_steps // spec.num_saves,
                           params=nb.PhysicsParams(G=1.0, softening=eps), integrator=spec.integrator)

    raw = jax.jit(jax.vmap(one))(stacked, softening)
    np.testing.assert_array_equal(result.time, np.asarray(raw.time))
    np.testing.assert_allclose(result.position, np.asarray(raw.position), rtol=RTOL, atol=1e-14)
    np.testing.assert_allclose(result.velocity, np.asarray(raw.velocity), rtol=RTOL, atol=1e-14)
    np.testing.assert_allclose(result.energy, np.asarray(raw.energy), rtol=RTOL, atol=0)
    error = np.abs(np.asarray(raw.energy) - np.asarray(raw.energy)[:, :1]) / np.abs(np.asarray(raw.energy)[:, :1])
    np.testing.assert_allclose(result.summaries["max_energy_error"], error.max(axis=1), rtol=1e-9, atol=1e-16)
    np.testing.assert_allclose(result.summaries["final_energy_error"], error[:, -1], rtol=1e-9, atol=1e-16)
    for member in range(spec.num_members):
        final = jax.tree.map(lambda leaf: leaf[member], stacked)._replace(
            position=raw.position[member, -1], velocity=raw.velocity[member, -1])
        params = nb.PhysicsParams(G=1.0, softening=softening[member])
        np.testing.assert_allclose(result.summaries["final_virial_ratio"][member],
                                   float(virial_ratio(final, params)), rtol=RTOL)
