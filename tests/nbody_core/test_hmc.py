"""The HMC kernel itself (nbody_core/hmc.py), on a target with a known posterior: a
correlated 2-D Gaussian. Means and variances within a few MCSE, dual averaging reaching its
target acceptance, the leapfrog's second-order energy error. The sampler on the N-body
posterior is tested in test_inference.py."""

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np

from nbody_core.infer import hmc

# Correlated 2-D Gaussian with a known posterior.
GAUSS_MEAN = jnp.array([1.0, -2.0])
GAUSS_COV = jnp.array([[1.0, 0.8 * 1.0 * 0.5], [0.8 * 1.0 * 0.5, 0.25]])
GAUSS_PRECISION = jnp.linalg.inv(GAUSS_COV)


def gaussian_logdensity(x):
    r = x - GAUSS_MEAN
    return -0.5 * r @ GAUSS_PRECISION @ r


def _mcse_of(draws):
    """ArviZ's MCSE of the mean of ``draws [chain, draw]``."""
    return float(az.mcse(np.asarray(draws), method="mean"))


def test_gaussian_means_and_variances_within_mcse():
    result = hmc.sample(
        jax.random.key(0), gaussian_logdensity, jnp.zeros((4, 2)), num_samples=1000,
        num_warmup=300, num_integration_steps=8, step_size=0.1,
    )
    draws = np.asarray(result.position)  # [4, 1000, 2]
    for i in range(2):
        x = draws[..., i]
        # 4 MCSE: the Monte Carlo error of a correct sampler is ~Normal(0, MCSE^2), so a
        # 4-sigma check fails by chance with probability 6e-5 (~3e-4 over the 4 checks); a
        # biased sampler (a wrong acceptance rule or momentum variance) misses by far more.
        assert abs(x.mean() - float(GAUSS_MEAN[i])) < 4 * _mcse_of(x)
        centred = (x - float(GAUSS_MEAN[i])) ** 2  # E = variance; its MCSE from the same draws
        assert abs(centred.mean() - float(GAUSS_COV[i, i])) < 4 * _mcse_of(centred)
    # The correlation is recovered as well (sample estimate; 1000 x 4 draws give +-0.02).
    corr = np.corrcoef(draws[..., 0].ravel(), draws[..., 1].ravel())[0, 1]
    assert abs(corr - 0.8) < 0.05


def test_dual_averaging_reaches_target_acceptance():
    result = hmc.sample(
        jax.random.key(3), gaussian_logdensity, jnp.zeros((2, 2)), num_samples=400,
        num_warmup=400, num_integration_steps=5, step_size=2.0, adapt_mass_matrix=False,
        target_acceptance=0.7, step_size_jitter=0.0,
    )
    acceptance = float(result.info.acceptance_rate.mean())
    # Dual averaging drives the mean acceptance probability to the target; its averaged
    # iterate lands somewhat above it (the average of log step sizes is the smaller step),
    # as in Stan: allow 0.7 .. 0.9.
    assert 0.65 < acceptance < 0.9
    # Started at 2.0 (mostly rejected), the step shrank.
    assert np.all(np.asarray(result.step_size) < 1.5)


def test_leapfrog_hamiltonian_error_is_second_order():
    """Energy error over a fixed path length falls as step_size**2 (leapfrog is order 2)."""
    state = hmc.init(jnp.array([0.3, -1.7]), gaussian_logdensity)
    errors = []
    for eps, steps in ((0.1, 10), (0.05, 20)):
        kernel = hmc.build_kernel(gaussian_logdensity, num_integration_steps=steps)
        _, info = kernel(jax.random.key(5), state, eps, jnp.ones(2))
        errors.append(abs(float(info.hamiltonian_error)))
    # Global energy error of a second-order symplectic method ~ C eps^2: ratio 4 on halving;
    # leapfrog on a quadratic Hamiltonian has no odd-order terms, so 4 within 10 %.
    assert 3.6 < errors[0] / errors[1] < 4.4


def test_warmup_in_blocks_is_bit_identical_whatever_the_block_size():
    # The blocks carry the chain and adaptation state and slice the same keys and schedule,
    # so cutting the warm-up anywhere changes nothing, not even by one ulp.
    def logdensity(x):
        return -0.5 * jnp.sum((x / jnp.array([1.0, 3.0])) ** 2)

    keys = jax.random.split(jax.random.key(4), 3)
    x0 = jnp.array([[1.0, 2.0], [0.5, -1.0], [-2.0, 0.3]])
    options = dict(logdensity_fn=logdensity, num_warmup=50, num_integration_steps=5, step_size=0.1,
                   step_size_jitter=0.2)
    whole = hmc.warmup_chains_in_blocks(keys, x0, block_size=50, **options)
    seen = []
    cut = hmc.warmup_chains_in_blocks(keys, x0, block_size=7, before_block=seen.append, **options)
    assert seen == list(range(0, 50, 7))
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(cut)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert cut.info.acceptance_rate.shape == (3, 50)
    # Same schedule and keys as the one-scan warm-up: the same adaptation to round-off (XLA
    # compiles the fused scan differently; measured step sizes 4e-15 apart, relative, after
    # 50 float64 iterations on this Gaussian; 1e-12 leaves room for other CPUs' vector code).
    fused = hmc.warmup_chains(keys, x0, **options)
    np.testing.assert_allclose(fused.step_size, cut.step_size, rtol=1e-12)


def test_warmup_blocks_stop_when_the_caller_raises():
    calls = []

    def before_block(done):
        calls.append(done)
        if done >= 10:
            raise KeyboardInterrupt

    try:
        hmc.warmup_chains_in_blocks(
            jax.random.split(jax.random.key(0), 2), jnp.zeros((2, 2)), logdensity_fn=lambda x: -0.5 * jnp.sum(x**2),
            num_warmup=40, block_size=5, num_integration_steps=3, step_size=0.1, before_block=before_block,
        )
    except KeyboardInterrupt:
        pass
    assert calls == [0, 5, 10]
