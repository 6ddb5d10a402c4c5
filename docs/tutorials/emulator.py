# %% [markdown]
# # From ensemble to emulator to posterior
#
# The research loop: generate a simulation ensemble over the parameters you care about,
# train a surrogate on its summaries, use the surrogate for inference, and check it against
# fresh simulations it never saw. Sizes here are small so the page builds in seconds; the
# CLI (`nbody ensemble`, `nbody emulate`) runs the same code at full size.

# %%
import matplotlib.pyplot as plt
import numpy as np

import nbody_core as nb
from nbody_core.emulator.data import training_data_from_arrays
from nbody_core.emulator.inference import emulator_posterior, simulate_at
from nbody_core.emulator.model import TrainConfig, train_emulator
from nbody_core.ensembles import EnsembleSpec, run_ensemble

nb.enable_float64()

# %% [markdown]
# ## 1. An ensemble over softening
#
# 256 Plummer spheres of 16 bodies, softening drawn log-uniformly in [0.02, 0.3], integrated
# to t = 2. Each member records its outcome summaries.

# %%
spec = EnsembleSpec(system="plummer", num_bodies=16, num_members=256, num_steps=200, dt=0.01,
                    sweeps=("softening=0.02:0.3:log",), design="random", seed=0)
ensemble = run_ensemble(spec)
data = training_data_from_arrays(ensemble.arrays(), ensemble.metadata(), outputs=["lagrangian_radius_50", "final_virial_ratio"])
print(f"{data.inputs.shape[0]} members, inputs {data.input_names}, outputs {data.output_names}")

# %% [markdown]
# ## 2. Train the emulator
#
# A deep ensemble of small MLPs predicting a mean and a variance per summary (the scatter
# between members is physics, not noise to be averaged away).

# %%
emulator, report = train_emulator(data, TrainConfig(num_networks=3, width=32, max_steps=800, gp_baseline=False))
for name, metrics in report.metrics["mlp"].items():
    print(f"{name}: test RMSE {metrics['rmse']:.3f}, predicted sd {metrics['mean_sd']:.3f}, "
          f"share of test members within 2 sd {metrics['coverage_2sigma']:.2f}")

# %% [markdown]
# ## 3. Check it against fresh simulations
#
# At a softening inside the training box, run 8 new members with the simulator and compare
# their mean and scatter with the emulator's prediction.

# %%
softening = 0.08
fresh = simulate_at(emulator, {"softening": softening}, num_members=8, seed=123)
mean, sd = emulator.predict(np.array([[softening]]))
print("emulator: mean", np.asarray(mean)[0], "sd", np.asarray(sd)[0])
fresh = np.asarray(fresh)
print("simulator (8 fresh members): mean", fresh.mean(axis=0), "sd", fresh.std(axis=0, ddof=1))

# %% [markdown]
# ## 4. A posterior from one observation
#
# Given one run's observed half-mass radius, the grid posterior of the softening with the
# emulator as the forward model.

# %%
observed = float(np.asarray(mean)[0][0])
posterior = emulator_posterior(emulator, {"lagrangian_radius_50": observed})
print(f"posterior mean {posterior.mean[0]:.3f}, 95% interval {posterior.interval[0]}")
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.semilogx(posterior.grids[0], posterior.marginals[0])
ax.axvline(softening, color="k", lw=1)
ax.set_xlabel("softening")
ax.set_ylabel("posterior mass")
plt.tight_layout()
