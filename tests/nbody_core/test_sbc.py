"""Simulation-based calibration (Talts et al. 2018) of HMC on the triple-system masses.

Sizes (measured on 2 shared cores under load ~10: 70 .. 150 s for the calibrated run, much of
it compiling, and ~70 s for the miscalibrated one at K = 32): K = 24 prior-drawn datasets, L = 19
thinned draws (20 rank values, 4 chi-square bins of 5, so 6 datasets expected per bin), 4
chains x 200 draws after 300 warm-up transitions of 2 leapfrog steps. Chains start by
time-window tempered multi-start optimisation and run with the Laplace covariance as a dense
metric (the sbc defaults, nbody_core.infer.starts, sbc.WHITENED_INTEGRATION_STEPS).

No stuck dataset, with a margin: every dataset's chains reach the truth's mode (its log density
0.2 .. 5.7 nats below the best draw), and dataset 8, the one once flagged, has one mode (its
32 tempered optima all converge to one point). With the former 10 leapfrog steps (about one
period of the whitened posterior) the chains mixed slowly (bulk ESS 114 of 800 on dataset 8)
and the largest split R-hat over the 24 datasets was 1.040 .. 1.051 on three chain seeds, so
dataset 8 crossed the 1.05 flag on one seed (this machine's rounding) and not on another
machine's. With 2 steps: 1.014 at most over the same 3 x 24 runs, hence the 1.03 bar below.

Why this test CAN fail: the second test runs the same SBC with data simulated with 3x the
noise the likelihood assumes (posterior ~3x too narrow) and the chi-square p-values of all
three parameters drop to 8e-6 .. 1e-3 over K = 32 datasets (seed 0), below the 0.01 bar, and
half the ranks are extreme. It needs 32 datasets: with the sampler's own overconfidence gone
(a diagonal metric on the masses' thin posterior ridge under-dispersed the draws, and helped
the former K = 24 run reach 1e-4 .. 2.5e-3), 24 datasets give log_m1 p = 0.012. Over the full
t in (0, 2] of the inference guide's problem (docs/library.md), prior-drawn starts left 6 of 16 datasets stuck, 4 in wrong
modes (log density gaps up to 2.6e4 nats); with tempered starts every dataset's chains reach
the truth's mode (benchmarks/results/sbc.md). This check observes t in (0, 1] to stay small.
"""

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nbody_core.infer import hmc, inference, sbc

pytestmark = pytest.mark.slow

OPTIONS = dict(num_datasets=24, num_thinned=19, num_bins=4, num_chains=4, num_samples=200, num_warmup=300)


@pytest.fixture(scope="module")
def problem():
    return inference.make_problem("triple", params="masses", num_obs=4, noise=0.02, t_end=1.0)


def test_sbc_ranks_uniform_and_no_stuck_datasets(problem):
    result = sbc.sbc(problem, **OPTIONS)
    assert result["ranks"].shape == (24, 3)
    assert result["ranks"].min() >= 0 and result["ranks"].max() <= 19
    assert result["num_stuck"] == 0, (result["stuck"], result["lp_gap"], result["max_r_hat"])
    # The chains mix with room to spare, not just under the 1.05 flag (module docstring: 1.014
    # measured over 3 chain seeds; the 10-step trajectories reached 1.040 .. 1.051 on each seed).
    assert result["max_r_hat"].max() < 1.03, result["max_r_hat"]
    for name, p in result["p_values"].items():
        assert p > 0.01, (name, result["p_values"])  # the 0.01 bar of issue 12


def test_sbc_detects_a_wrong_likelihood_noise(problem):
    # Data made with 3x the assumed noise: the posterior is overconfident, ranks pile at 0 and L.
    # K = 32 for the power to show it per parameter at p < 0.01 (module docstring).
    result = sbc.sbc(problem, **{**OPTIONS, "num_datasets": 32}, data_noise=3 * problem.noise)
    assert all(p < 0.01 for p in result["p_values"].values()), result["p_values"]
    extreme = np.mean((result["ranks"] == 0) | (result["ranks"] == 19))
    assert extreme > 0.3  # 2/20 = 0.1 expected if calibrated (measured 0.5)


def test_whitened_integration_steps_mix_a_standard_normal():
    # In whitened coordinates the posterior is ~N(0, I); sbc's trajectory of
    # WHITENED_INTEGRATION_STEPS adapted steps (~0.8 each) is ~pi / 2, a quarter period, so both
    # the position and its square mix. 16 chains as 4 runs of 4 x 200 draws; measured smallest
    # bulk ESS of the 4 runs: 2 steps 481 (x) and 529 (x^2); 3 steps (T ~ pi, antithetic) ~2000
    # for x but 153 for x^2; 10 steps (T ~ 2 pi, the former sbc default) 168 for x. The 300 bar
    # sits between.
    key_start, key_chains = jax.random.split(jax.random.key(0))
    logdensity_fn = jax.tree_util.Partial(lambda u: -0.5 * jnp.sum(u**2))
    result = hmc.sample(key_chains, logdensity_fn, jax.random.normal(key_start, (16, 3)), num_samples=200,
                        num_warmup=300, num_integration_steps=sbc.WHITENED_INTEGRATION_STEPS, step_size=0.01)
    runs = np.asarray(result.position).reshape(4, 4, 200, 3)
    for run in runs:
        for values in (run, run**2):
            ess = min(float(az.ess(values[..., i], method="bulk")) for i in range(3))
            assert ess > 300, ess


def test_rank_uniformity_pvalue():
    assert sbc.rank_uniformity_pvalue(np.arange(20), 20, 4) == pytest.approx(1.0)
    assert sbc.rank_uniformity_pvalue(np.zeros(20, int), 20, 4) < 1e-6
    with pytest.raises(ValueError):
        sbc.rank_uniformity_pvalue(np.arange(20), 20, 3)
