"""One place for the defaults: the library's signatures, the CLI's argparse defaults and the
app's parameters equal :mod:`nbody_core.defaults`, and a run that names no integrator gets the
one that module names."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import nbody_core as nb
import nbody_core.defaults as defaults
from nbody_core.cli import build_parser
from nbody_core.infer import hmc, inference, nuts, sbc
from nbody_core.integrate.deprecated import simulate_adaptive
from nbody_core.integrate.solve import solve


def default_of(function, name):
    return inspect.signature(function).parameters[name].default


@pytest.mark.parametrize(
    "function, name, expected",
    [
        (simulate_adaptive, "integrator", defaults.ADAPTIVE_INTEGRATOR),
        (simulate_adaptive, "forces", defaults.FORCES),
        (simulate_adaptive, "potential", defaults.POTENTIAL),
        (solve, "forces", defaults.FORCES),
        (solve, "potential", defaults.POTENTIAL),
        (inference.initial_positions, "method", defaults.START_METHOD),
        (sbc.sbc, "starts", defaults.START_METHOD),
        (hmc.sample, "num_integration_steps", defaults.LEAPFROG_STEPS["diagonal"]),
        (hmc.sample, "step_size_jitter", defaults.STEP_SIZE_JITTER),
        (hmc.sample, "target_acceptance", defaults.TARGET_ACCEPTANCE),
        (hmc.warmup_chains_in_blocks, "target_acceptance", defaults.TARGET_ACCEPTANCE),
        (nuts.nuts_sample, "target_acceptance", defaults.TARGET_ACCEPTANCE),
    ],
    ids=lambda v: getattr(v, "__qualname__", None) or str(v),
)
def test_library_signatures_read_the_defaults(function, name, expected):
    assert default_of(function, name) == expected


def test_the_chosen_defaults():
    # What issue 22 decided; a change here is a change of default: CHANGELOG.md names it.
    assert defaults.ADAPTIVE_INTEGRATOR == "ias15" and defaults.FIXED_STEP_INTEGRATOR == "leapfrog"
    assert defaults.START_METHOD == "tempered"
    assert (defaults.SAMPLER, defaults.METRIC) == ("hmc", "laplace")  # benchmarks/results/samplers.md
    assert sbc.WHITENED_INTEGRATION_STEPS == defaults.leapfrog_steps("laplace") == 2
    assert set(defaults.METRICS) == set(defaults.LEAPFROG_STEPS)
    assert defaults.START_METHOD in inference.START_METHODS and defaults.SAMPLER in defaults.SAMPLERS
    with pytest.raises(ValueError, match=r"unknown metric 'dense'; choose one of \['laplace', 'diagonal'\]"):
        defaults.leapfrog_steps("dense")


def test_solve_without_an_integrator_runs_ias15_or_leapfrog():
    state = nb.kepler(1.0, 1.0, a=1.0, e=0.5)
    chosen = solve(state, t_end=0.5, num_saves=4)
    ias15 = solve(state, t_end=0.5, num_saves=4, integrator="ias15")
    np.testing.assert_array_equal(np.asarray(chosen.trajectory.position), np.asarray(ias15.trajectory.position))
    assert chosen.stats.iterations is not None and chosen.stats.num_accepted_steps == ias15.stats.num_accepted_steps
    # Given a step, the fixed-step default.
    fixed = solve(state, dt=0.01, num_steps=5)
    leapfrog = solve(state, dt=0.01, num_steps=5, integrator="leapfrog")
    np.testing.assert_array_equal(np.asarray(fixed.trajectory.position), np.asarray(leapfrog.trajectory.position))
    assert fixed.stats.num_steps == 5


def test_simulate_adaptive_runs_ias15_by_default():
    state = nb.kepler(1.0, 1.0, a=1.0, e=0.5)
    with pytest.warns(DeprecationWarning):
        trajectory, _ = simulate_adaptive(state, t_end=0.5, num_saves=4)
    ias15 = solve(state, t_end=0.5, num_saves=4, integrator="ias15")
    np.testing.assert_array_equal(np.asarray(trajectory.position), np.asarray(ias15.trajectory.position))


def _parse(*argv):
    return build_parser(only=argv[0]).parse_args(list(argv))


def test_cli_argparse_defaults_read_the_defaults():
    infer = _parse("infer", "--out", "x.nc")
    assert infer.sampler == defaults.SAMPLER and infer.metric == defaults.METRIC
    assert infer.starts == defaults.START_METHOD and infer.chains == defaults.NUM_CHAINS
    assert infer.target_accept == defaults.TARGET_ACCEPTANCE
    assert infer.leapfrog_steps is None  # resolved per metric: defaults.leapfrog_steps
    ensemble = _parse("ensemble", "--preset", "plummer", "--out", "x.npz")
    assert ensemble.integrator == defaults.FIXED_STEP_INTEGRATOR
    assert (ensemble.forces, ensemble.potential) == (defaults.FORCES, defaults.POTENTIAL)
    run = _parse("run", "--preset", "kepler")
    assert run.forces == defaults.FORCES and run.integrator is None  # the preset's, else default_integrator


def test_app_parameters_read_the_defaults():
    from nbody_explorer.limits import LIMITS
    from nbody_explorer.state.inference import InferenceState, SamplerRun
    from nbody_explorer.state.simulate import SimulationState

    state = InferenceState()
    assert state.metric == defaults.METRIC and list(state.param.metric.objects) == list(defaults.METRICS)
    assert state.leapfrog_steps == min(defaults.leapfrog_steps(defaults.METRIC), LIMITS.max_leapfrog_steps)
    assert state.num_chains == min(defaults.NUM_CHAINS, LIMITS.max_hmc_chains)
    assert default_of(SamplerRun, "metric") == defaults.METRIC
    simulation = SimulationState()
    assert simulation.integrator == defaults.FIXED_STEP_INTEGRATOR and simulation.forces == defaults.FORCES
