"""HMC through the simulator: the N-body posterior against BlackJAX NUTS, exact gradients
against finite differences, trace shapes and seeds (the kernel alone: test_hmc.py)."""

import importlib.util
import json
from pathlib import Path

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nbody_core.lab import gradient_checks
from nbody_core.infer import hmc, inference, posterior

# One small N-body problem shared by every test (one compile per static configuration, the
# same as in the CLI and app tests): the perturbed figure-eight observed at 4 times over
# t in (0, 2], 100 leapfrog steps of the simulator.
SMALL = dict(num_obs=4, noise=0.02)


@pytest.fixture(scope="module")
def problem():
    return inference.make_problem("triple", **SMALL)


@pytest.fixture(scope="module")
def hmc_run(problem):
    x0 = inference.initial_positions(problem, jax.random.key(1), 4, method="prior")
    result = hmc.sample(
        jax.random.key(2), problem.logdensity_fn, x0, num_samples=400, num_warmup=200,
        num_integration_steps=10, step_size=0.01,
    )
    return result, inference.to_inference_data(result, problem)


def _mcse_of(draws):
    """ArviZ's MCSE of the mean of ``draws [chain, draw]``."""
    az = posterior.arviz()
    return float(az.mcse(np.asarray(draws), method="mean"))


def test_trace_shapes_and_recorded_gradients(problem):
    d, chains, draws, steps = problem.num_parameters, 2, 4, 5
    x0 = inference.initial_positions(problem, jax.random.key(1), chains, method="prior")
    result = hmc.sample(
        jax.random.key(4), problem.logdensity_fn, x0, num_samples=draws, num_warmup=0,
        num_integration_steps=steps, step_size=0.002,
    )
    info = result.info
    assert result.position.shape == (chains, draws, d)
    assert result.logdensity.shape == (chains, draws)
    for field in ("path_position", "path_momentum", "path_gradient"):
        assert getattr(info, field).shape == (chains, draws, steps + 1, d)
    for field in ("path_logdensity", "path_energy"):
        assert getattr(info, field).shape == (chains, draws, steps + 1)
    for field in ("acceptance_rate", "is_accepted", "is_divergent", "energy", "hamiltonian_error"):
        assert getattr(info, field).shape == (chains, draws)
    # The recorded gradient is the log-posterior gradient at every recorded position.
    exact = jax.jit(jax.vmap(jax.grad(problem.logdensity_fn)))(info.path_position[0, 1])
    np.testing.assert_allclose(info.path_gradient[0, 1], exact, rtol=1e-10)
    # Each path starts at the previous draw and the chain moves to the path's end iff accepted.
    np.testing.assert_allclose(info.path_position[0, 1, 0], result.position[0, 0])
    for c in range(chains):
        for t in range(draws):
            end = info.path_position[c, t, -1] if info.is_accepted[c, t] else info.path_position[c, t, 0]
            np.testing.assert_allclose(result.position[c, t], end)
    # Hamiltonian error = path energy at the end minus at the start.
    np.testing.assert_allclose(
        info.hamiltonian_error, info.path_energy[..., -1] - info.path_energy[..., 0], rtol=1e-9, atol=1e-12
    )


def test_reproducible_from_seed(problem):
    x0 = inference.initial_positions(problem, jax.random.key(1), 2, method="prior")
    run = lambda seed: hmc.sample(  # noqa: E731
        jax.random.key(seed), problem.logdensity_fn, x0, num_samples=4, num_warmup=0,
        num_integration_steps=5, step_size=0.002,
    )
    a, b, c = run(0), run(0), run(1)
    np.testing.assert_array_equal(a.position, b.position)
    np.testing.assert_array_equal(a.info.path_gradient, b.info.path_gradient)
    assert not np.array_equal(a.position, c.position)
    # Data are reproducible from the problem's key too.
    again = inference.make_problem("triple", **SMALL)
    np.testing.assert_array_equal(again.observations, problem.observations)
    other = inference.make_problem("triple", **SMALL, key=jax.random.key(1))
    assert not np.array_equal(other.observations, problem.observations)


def test_autodiff_gradient_matches_finite_differences(problem):
    x = jnp.asarray(problem.truth) + 0.03
    steps = np.logspace(-9, -1, 9)
    sweep = gradient_checks.gradient_error_sweep(problem.logdensity_fn, x, steps)
    errors = sweep["relative_error"]
    best = int(np.argmin(errors))
    # Brief: agreement to 1e-6 relative at the best h (float64: truncation ~ h^2, round-off
    # ~ 1e-16 |f| / h meet near h ~ 1e-5, where both are ~1e-9).
    assert errors[best] < 1e-6
    # The V: both ends of the sweep are far worse than the bottom.
    assert 0 < best < len(steps) - 1
    assert errors[0] > 100 * errors[best] and errors[-1] > 100 * errors[best]


def test_hmc_agrees_with_blackjax_nuts(problem, hmc_run):
    result, idata = hmc_run
    logdensity_fn = problem.logdensity_fn
    warm = blackjax.window_adaptation(blackjax.nuts, logdensity_fn)
    x0 = inference.initial_positions(problem, jax.random.key(11), 2, method="prior")

    def nuts_chain(key, position):
        key_warm, key_sample = jax.random.split(key)
        (state, parameters), _ = warm.run(key_warm, position, num_steps=200)
        step = blackjax.nuts(logdensity_fn, **parameters).step

        def one(state, key):
            state, info = step(key, state)
            return state, (state.position, info.is_divergent)

        _, (draws, divergent) = jax.lax.scan(one, state, jax.random.split(key_sample, 400))
        return draws, divergent

    nuts_draws, nuts_divergent = zip(*(nuts_chain(k, x) for k, x in zip(jax.random.split(jax.random.key(12), 2), x0)))
    nuts_draws = np.stack(nuts_draws)  # [2, 400, d]
    assert int(np.sum(nuts_divergent)) == 0
    hmc_draws = np.asarray(result.position)
    assert int(np.asarray(result.info.is_divergent).sum()) == 0
    diagnostics = inference.summary_diagnostics(idata)
    for i, name in enumerate(problem.parameter_names):
        h, n = hmc_draws[..., i], nuts_draws[..., i]
        combined = np.hypot(_mcse_of(h), _mcse_of(n))
        # Two independent estimates of the same posterior mean differ by a N(0, combined^2)
        # error: 4 combined MCSE.
        assert abs(h.mean() - n.mean()) < 4 * combined, (name, h.mean(), n.mean(), combined)
        # The truth lies inside the 99 % central credible interval of both samplers.
        for draws in (h, n):
            lo, hi = np.quantile(draws, [0.005, 0.995])
            assert lo < problem.truth[i] < hi, (name, lo, problem.truth[i], hi)
        # And the chains mixed (ArviZ split R-hat, bulk ESS).
        assert diagnostics["parameters"][name]["r_hat"] < 1.05
        assert diagnostics["parameters"][name]["ess_bulk"] > 100
        print(  # the agreement, for the record (pytest -s)
            f"{name}: truth {problem.truth[i]:.5f}  HMC {h.mean():.5f} +- {_mcse_of(h):.5f} (sd {h.std():.5f})"
            f"  NUTS {n.mean():.5f} +- {_mcse_of(n):.5f} (sd {n.std():.5f})  |diff|/combined MCSE "
            f"{abs(h.mean() - n.mean()) / combined:.2f}"
        )


def test_inference_data_export(problem, hmc_run, tmp_path):
    result, idata = hmc_run
    # Physical masses beside the log masses.
    assert set(idata.posterior.data_vars) == set(problem.parameter_names) | {"m0", "m1", "m2"}
    np.testing.assert_allclose(idata.posterior["m0"].values, np.exp(idata.posterior["log_m0"].values))
    assert idata.posterior.sizes == {"chain": 4, "draw": 400}
    # Issue 12 point 11: the groups az.loo / az.compare / predictive checks need, and warm-up.
    for group in ("log_likelihood", "posterior_predictive", "prior", "warmup_posterior", "warmup_sample_stats"):
        assert group in idata.groups(), group
    assert idata.log_likelihood["positions"].shape == (4, 400) + problem.observations.shape
    assert idata.warmup_posterior.sizes["draw"] == 200
    # Observation times are the coordinate of the observed data, not integers.
    np.testing.assert_allclose(idata.observed_data["time"].values, problem.observed_times)
    # The recorded step size is the jittered one each transition used (jitter 0.2 by default).
    steps = idata.sample_stats["step_size"].values
    assert np.ptp(steps[0]) > 0 and np.all(np.abs(steps / result.step_size[:, None] - 1) <= 0.2 + 1e-12)
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore")
        loo = posterior.arviz().loo(idata)
    assert np.isfinite(loo.elpd_loo)
    for stat in ("lp", "acceptance_rate", "diverging", "energy", "energy_error", "step_size", "n_steps"):
        assert stat in idata.sample_stats
    diagnostics = inference.summary_diagnostics(idata)
    assert len(diagnostics["bfmi"]) == 4 and all(b > 0.3 for b in diagnostics["bfmi"])
    assert 0.5 < diagnostics["acceptance_rate"] <= 1.0
    path = tmp_path / "samples.nc"
    idata.to_netcdf(str(path))
    back = posterior.arviz().from_netcdf(str(path))
    np.testing.assert_allclose(back.posterior["log_m0"].values, idata.posterior["log_m0"].values)


@pytest.mark.parametrize(
    ("name", "params"), [("triple", "masses+G+velocity"), ("hierarchical", "masses"), ("star_planets", "masses+velocity")]
)
def test_problems_build_with_finite_gradients(name, params):
    problem = inference.make_problem(name, params=params, num_obs=3, t_end=0.3)
    x = jnp.asarray(problem.truth)
    value, grad = jax.value_and_grad(problem.logdensity_fn)(x)
    assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))
    assert problem.observations.shape == (3, 3, 2)
    assert len(problem.parameter_names) == problem.num_parameters == len(problem.truth)
    assert problem.parameter_names[:3] == ("log_m0", "log_m1", "log_m2")
    # Residuals at the truth are pure noise: chi^2 per datum ~ 1 (3 x 3 x 2 = 18 data,
    # so chi^2 / 18 lies in [0.2, 2.5] with probability > 0.99).
    chi2 = float(np.sum(((problem.predict_fn(x) - problem.observations) / problem.noise) ** 2))
    assert 0.2 < chi2 / 18 < 2.5


def test_bad_input_raises_clear_errors(problem):
    with pytest.raises(ValueError, match="unknown problem"):
        inference.make_problem("quadruple")
    with pytest.raises(ValueError, match="unknown parameter set"):
        inference.make_problem("triple", params="spins")
    with pytest.raises(ValueError, match="noise"):
        inference.make_problem("triple", noise=-1.0)
    with pytest.raises(ValueError, match="num_obs"):
        inference.make_problem("triple", num_obs=0)
    with pytest.raises(ValueError, match="t_end"):
        inference.make_problem("triple", t_end=float("nan"))
    x0 = jnp.zeros((2, problem.num_parameters))
    with pytest.raises(ValueError, match="step_size"):
        hmc.sample(jax.random.key(0), problem.logdensity_fn, x0, num_samples=2, step_size=-0.1)
    with pytest.raises(ValueError, match="num_samples"):
        hmc.sample(jax.random.key(0), problem.logdensity_fn, x0, num_samples=0)
    with pytest.raises(ValueError, match=r"\[chains, d\]"):
        hmc.sample(jax.random.key(0), problem.logdensity_fn, jnp.zeros(3), num_samples=2)
    with pytest.raises(ValueError, match="num_parameters"):
        inference.scaling_problem(0)


def test_gradient_costs_are_measured():
    costs = gradient_checks.measure_gradient_costs((1, 3), repeats=1, num_bodies=4, num_steps=2, num_obs=1)
    assert [c.num_parameters for c in costs] == [1, 3]
    for cost in costs:
        for value in cost[1:7]:  # the seconds; the per-call times follow
            assert np.isfinite(value) and value >= 0
        assert cost.forward_s > 0 and cost.autodiff_s > 0 and cost.finite_difference_s > 0
        # Every steady call is kept (a median and its spread for the dashboard); the best is their minimum.
        assert len(cost.forward_times_s) == len(cost.autodiff_times_s) == 1
        assert len(cost.finite_difference_times_s) == 3  # at least 3 calls, so a median exists
        assert cost.finite_difference_s == min(cost.finite_difference_times_s)


BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_inference.py"


def test_quick_benchmark_writes_json_and_table(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_inference", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--quick", "--results-dir", str(tmp_path), "--output", "quick"]) == 0
    payload = json.loads((tmp_path / "quick.json").read_text())
    rows = payload["scaling"]["rows"]
    assert [r["d"] for r in rows] == [1, 4]
    for r in rows:
        assert r["forward_ms"] > 0 and r["autodiff_ms"] > 0 and r["finite_difference_ms"] > 0
    assert payload["triple"]["best_relative_error"] < 1e-6
    table = (tmp_path / "quick.md").read_text()
    assert "| d |" in table and "Triple" in table


def test_chains_start_overdispersed_from_the_prior(problem):
    # Issue 12 point 9: the former default started every chain within 0.1 prior sd of the
    # prior mean, which defeats R-hat on a multimodal likelihood. Now: each chain's start is
    # the best of 16 independent prior draws.
    x0 = np.asarray(inference.initial_positions(problem, jax.random.key(5), 64, method="prior"))
    z = (x0 - problem.prior_mean) / problem.prior_std
    # Best-of-16 narrows the prior toward the likelihood (measured sd 0.38 prior sd here), yet
    # stays well above the former 0.1, and every chain starts elsewhere.
    assert z.std() > 0.25
    assert len(np.unique(np.round(x0, 6), axis=0)) == 64
    assert np.all(np.isfinite(np.asarray(jax.vmap(problem.logdensity_fn)(jnp.asarray(x0)))))
    # One try per chain is a plain prior draw: 64 x 3 standard normals have a sample sd within
    # 0.7..1.3 (chi-square with 191 degrees of freedom, p > 0.999 either side).
    z = (np.asarray(inference.initial_positions(problem, jax.random.key(5), 64, max_tries=1, method="prior"))
         - problem.prior_mean) / problem.prior_std
    assert 0.7 < z.std() < 1.3


def test_mode_check_flags_chains_in_different_modes():
    rng = np.random.default_rng(0)
    names = ("a", "b")
    agree = rng.normal(size=(4, 200, 2))
    lp = -0.5 * np.sum(agree**2, axis=-1)
    result = inference.mode_check(agree, lp, names)
    assert not result["chains_disagree"] and result["warning"] is None
    # Two chains stuck elsewhere, with the same spread: R-hat and the lp gap both flag it.
    stuck = agree.copy()
    stuck[2:] += 10.0
    lp_stuck = lp.copy()
    lp_stuck[2:] -= 1e4  # a far worse mode, as in issue 12 (-1.45e6 against +371)
    result = inference.mode_check(stuck, lp_stuck, names)
    assert result["chains_disagree"] and "chains disagree" in result["warning"]
    # Stuck chains that agree in position (R-hat fine) but not in log density are still flagged.
    result = inference.mode_check(agree, lp_stuck, names)
    assert result["max_r_hat"] < 1.05 and result["chains_disagree"]


def test_summary_diagnostics_reports_agreement(hmc_run):
    _, idata = hmc_run
    diagnostics = inference.summary_diagnostics(idata)
    assert diagnostics["chains_disagree"] is False and diagnostics["warning"] is None
    assert diagnostics["mode_check"]["max_r_hat"] < 1.05
