# %% [markdown]
# # Simulate and conserved quantities
#
# A state is a small pytree: `position [n, 3]`, `velocity [n, 3]`, `mass [n]`, in G = 1
# N-body units. One call integrates a whole trajectory inside one compiled `lax.scan`.
# This page is executed when the documentation is built: every number below was computed
# by the code above it.

# %%
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import nbody_core as nb

nb.enable_float64()  # once, before computing: JAX's 64-bit mode is opt-in

state = nb.figure_eight()
print(state.position.shape, state.velocity.shape, state.mass.shape)

# %% [markdown]
# ## One period of the figure-eight
#
# The Chenciner–Montgomery figure-eight returns to its start after one period
# (`nb.FIGURE_EIGHT_PERIOD`). With the fourth-order Yoshida integrator and `dt = 1e-3` the
# energy is conserved to about 1e-12 and the orbit closes.

# %%
period = nb.FIGURE_EIGHT_PERIOD
trajectory = nb.simulate(state, dt=1e-3, t_end=period, save_every=10, integrator="yoshida4")
energy_error = nb.relative_energy_error(trajectory.energy, trajectory.energy[0])
closure = float(jnp.max(jnp.abs(trajectory.position[-1] - state.position)))
print(f"{trajectory.position.shape[0]} snapshots; max |dE/E0| = {float(jnp.max(jnp.abs(energy_error))):.1e}; "
      f"distance from the start after one period = {closure:.1e}")
assert float(jnp.max(jnp.abs(energy_error))) < 1e-9 and closure < 1e-3

fig, (orbit, drift) = plt.subplots(1, 2, figsize=(10, 4))
for body in range(3):
    orbit.plot(trajectory.position[:, body, 0], trajectory.position[:, body, 1], lw=1)
orbit.set_aspect("equal")
orbit.set_title("figure-eight, one period")
drift.semilogy(np.asarray(trajectory.time), np.abs(np.asarray(energy_error)) + 1e-17)
drift.set_xlabel("time")
drift.set_ylabel("|dE / E0|")
drift.set_title("energy error")
plt.tight_layout()

# %% [markdown]
# ## Convergence order
#
# Halving the time step divides the energy error of an order-p integrator by about 2^p:
# leapfrog is second order, Yoshida's triple jump fourth order, Euler first (and not
# symplectic: its error grows instead of oscillating). The slope of log(error) against log(dt)
# measures the order. Euler's error over one period is tens of per cent at these steps, far
# from its asymptotic regime, so its slope is still below its order of 1: a first-order,
# non-symplectic method needs far smaller steps before the asymptotic law shows.

# %%
def max_energy_error(integrator: str, dt: float) -> float:
    trajectory = nb.simulate(state, dt=dt, t_end=period, save_every=1, integrator=integrator)
    error = nb.relative_energy_error(trajectory.energy, trajectory.energy[0])
    return float(jnp.max(jnp.abs(error)))


time_steps = np.array([0.02, 0.01, 0.005])
orders = {}
for integrator in ["euler", "leapfrog", "yoshida4"]:
    errors = np.array([max_energy_error(integrator, dt) for dt in time_steps])
    orders[integrator] = np.polyfit(np.log(time_steps), np.log(errors), 1)[0]
    print(f"{integrator:9s} errors {errors} -> measured order {orders[integrator]:.2f}")
assert abs(orders["leapfrog"] - 2) < 0.3 and abs(orders["yoshida4"] - 4) < 0.5

# %% [markdown]
# ## Adaptive steps: IAS15 on the Pythagorean problem
#
# Close encounters need small steps only briefly. `nb.solve` runs every integrator; IAS15
# (Rein & Spiegel 2015) picks its own steps and keeps the energy to round-off through the
# Pythagorean problem's close approaches.

# %%
solution = nb.solve(nb.pythagorean(), t_end=10.0, integrator="ias15", num_saves=100)
print(solution.result, "accepted steps:", int(solution.stats.num_accepted_steps))
print("max |dE/E0| over every step:", float(solution.trajectory.max_relative_energy_error))

# %% [markdown]
# ## Conserved quantities
#
# Energy, linear and angular momentum of any state:

# %%
quantities = nb.conserved_quantities(state, nb.PhysicsParams())
print(quantities)
