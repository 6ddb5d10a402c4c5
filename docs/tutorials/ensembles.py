# %% [markdown]
# # Ensembles with vmap and sharding
#
# Single-system code, batched outside: one member builds its initial state, integrates and
# summarises itself; `jax.vmap` runs many members at once, and `run_ensemble` does it in
# fixed-size chunks (one compile, bounded memory) sharded over every device. Here the two
# host "devices" are fake CPU devices, set before JAX starts, to show that the data do not
# depend on how many devices made them.

# %%
import os

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"  # before JAX is imported

import time

import jax
import matplotlib.pyplot as plt
import numpy as np

import nbody_core as nb
from nbody_core.ensembles import EnsembleSpec, run_ensemble

nb.enable_float64()
print("devices:", jax.devices())

# %% [markdown]
# ## vmap against a Python loop
#
# The same 64 Plummer spheres of 16 bodies, 200 leapfrog steps each: a Python loop over the
# jitted single simulation, then one jitted `vmap` over all of them. Compilation is excluded
# (each is called once first); both are timed in the same run, so the ratio is fair on a
# shared machine even when the absolute times are not.

# %%
keys = jax.random.split(jax.random.key(0), 64)


def final_virial_ratio(key):
    state = nb.plummer(key, 16)
    final = nb.advance(state, 200, dt=0.01, params=nb.PhysicsParams(softening=0.05))
    return nb.virial_ratio(final, nb.PhysicsParams(softening=0.05))


one = jax.jit(final_virial_ratio)
many = jax.jit(jax.vmap(final_virial_ratio))
one(keys[0]).block_until_ready(), many(keys).block_until_ready()  # compile both


def best_of(fn, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


loop_s = best_of(lambda: [one(key).block_until_ready() for key in keys])
vmap_s = best_of(lambda: many(keys).block_until_ready())
print(f"loop {loop_s * 1e3:.1f} ms, vmap {vmap_s * 1e3:.1f} ms: vmap is {loop_s / vmap_s:.1f}x the loop")
looped = np.array([one(key) for key in keys])
assert np.allclose(looped, np.asarray(many(keys)), rtol=1e-12, atol=0)  # same numbers, batched or not

# %% [markdown]
# ## A sweep with `run_ensemble`
#
# 64 members over a log-spaced softening sweep; each member records its energy error and
# outcome summaries (virial ratio, escapers, Lagrangian radii...).

# %%
spec = EnsembleSpec(system="plummer", num_bodies=16, num_members=64, num_steps=200, dt=0.01,
                    sweeps=("softening=0.01:0.3:log",), seed=0)
result = run_ensemble(spec, chunk_size=16)
print(sorted(result.summaries))

fig, ax = plt.subplots(figsize=(5, 3.5))
ax.loglog(result.table.parameters["softening"], result.summaries["max_energy_error"], "o", ms=3)
ax.set_xlabel("softening")
ax.set_ylabel("max |dE/E0|")
ax.set_title("energy error against softening (dt = 0.01)")
plt.tight_layout()

# %% [markdown]
# ## Same seed, same bytes, on any number of devices
#
# Per-member sums have a fixed order, so one device and two devices give bit-identical data.

# %%
on_one = run_ensemble(spec, chunk_size=16, devices=1)
on_two = run_ensemble(spec, chunk_size=16, devices=2)
identical = all(np.array_equal(on_one.summaries[name], on_two.summaries[name]) for name in on_one.summaries)
print("bit-identical on 1 and 2 devices:", identical, "| devices used:", on_two.execution.get("num_devices"))
assert identical
