"""The defaults of the library, the ``nbody`` command and the dashboard, in one place.

Contract: every default a user gets without choosing (the integrator of a run, the chain starts,
the sampler and its metric) is a constant here; the library's signatures, the CLI's argparse
defaults and the app's parameters read it, and ``tests/test_defaults.py`` holds them equal.
Standard library only: any layer may import it, and ``nbody --help`` stays instant.
"""

from __future__ import annotations

__all__ = [
    "FIXED_STEP_INTEGRATOR", "ADAPTIVE_INTEGRATOR", "default_integrator", "FORCES", "POTENTIAL",
    "START_METHOD", "SAMPLER", "SAMPLERS", "METRIC", "METRICS", "LEAPFROG_STEPS", "leapfrog_steps",
    "STEP_SIZE_JITTER", "TARGET_ACCEPTANCE", "NUM_CHAINS",
]

# --------------------------------------------------------------------------- integration
#: Integrator of a run that gives a time step (or a step count) and names no integrator.
FIXED_STEP_INTEGRATOR = "leapfrog"
#: Integrator of a run that gives neither a step nor an integrator, and of
#: ``simulate_adaptive``: IAS15 (Rein & Spiegel 2015). On the Pythagorean problem to t = 70 at
#: the default tolerances Dopri8 ends 7.9e-2 from REBOUND's IAS15 (3.4x IAS15's own spread over
#: its epsilon) and the project's IAS15 3.1e-3 from it, with |dE/E| 5.6e-14 (issue 22).
ADAPTIVE_INTEGRATOR = "ias15"
#: Force method: the fastest exact kernel for the device, dtype, N and potential.
FORCES = "auto"
#: Pair potential.
POTENTIAL = "newtonian"


def default_integrator(*, fixed_step: bool) -> str:
    """The integrator a caller gets without naming one: :data:`FIXED_STEP_INTEGRATOR` when it
    gave a step (``dt`` or ``num_steps``), else :data:`ADAPTIVE_INTEGRATOR`."""
    return FIXED_STEP_INTEGRATOR if fixed_step else ADAPTIVE_INTEGRATOR


# --------------------------------------------------------------------------- inference
#: Chain starts: time-window tempered multi-start optimisation
#: (:func:`nbody_core.infer.starts.tempered_starts`). Prior-drawn starts left 6 of 16 simulated
#: datasets of the triple masses over t in (0, 2] in a wrong mode (issue 12); tempered ones pass SBC.
START_METHOD = "tempered"
#: Samplers: the project's HMC, which records every leapfrog step (the Inference tab draws
#: them), and BlackJAX NUTS.
SAMPLERS = ("hmc", "nuts")
#: The default sampler, by measurement (benchmarks/results/samplers.md): with the Laplace metric
#: HMC gets more effective samples per gradient than NUTS on the triple masses, and the Inference
#: tab can draw its every leapfrog step.
SAMPLER = "hmc"
#: Metrics: ``"diagonal"`` (adapted during warm-up) or ``"laplace"``: sample in coordinates
#: whitened by the Laplace (Gauss-Newton) covariance at the best chain start, i.e. a dense
#: metric (:mod:`nbody_core.infer.metric`); the diagonal metric is still adapted on top of it.
METRICS = ("laplace", "diagonal")
#: The default metric, by measurement (benchmarks/results/samplers.md): on the triple masses
#: (4 chains, same starts, equal post-warm-up gradients) HMC in Laplace-whitened coordinates with
#: 2 leapfrog steps gets 2.35x the bulk ESS per gradient of NUTS with a diagonal metric (tail
#: ESS 4x) and 7x its ESS per second; HMC with the diagonal metric gets 0.67x, NUTS with the
#: Laplace metric 1.23x.
METRIC = "laplace"
#: Leapfrog steps per HMC transition, per metric. Diagonal: 10, the tuned value of issue 5.
#: Laplace: in the whitened coordinates the posterior is close to N(0, I), on which the exact
#: flow has period 2 pi and a trajectory of length T gives a next draw correlated cos(T) with the
#: last. Dual averaging (target 0.8) sets the step to 0.6 .. 1.1 there, so 2 steps make
#: T ~ 1.2 .. 2.1 ~ pi / 2, a quarter period: next draws nearly independent in the position and
#: in its square (SBC: 10 steps, about a full period, gave bulk ESS 114 of 800 draws, 2 steps
#: 575; nbody_core.infer.sbc.WHITENED_INTEGRATION_STEPS). 4 steps (~ pi) give a higher bulk ESS
#: (antithetic draws) but a lower tail ESS: the square of a draw repeats after half a period.
LEAPFROG_STEPS = {"diagonal": 10, "laplace": 2}
#: Each transition's step is ``step_size * U(1 - j, 1 + j)``: a jittered path length, so no
#: fixed trajectory length resonates with the posterior (Neal 2011, "MCMC using Hamiltonian
#: dynamics", on randomising the step size).
STEP_SIZE_JITTER = 0.2
#: Dual-averaging target acceptance (Hoffman & Gelman 2014).
TARGET_ACCEPTANCE = 0.8
#: Chains run in parallel (R-hat needs several; 4 as Stan's default).
NUM_CHAINS = 4


def leapfrog_steps(metric: str) -> int:
    """Leapfrog steps per HMC transition for ``metric`` (:data:`LEAPFROG_STEPS`).

    Raises:
        ValueError: for a metric not in :data:`METRICS`.
    """
    if metric not in LEAPFROG_STEPS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {list(METRICS)}")
    return LEAPFROG_STEPS[metric]
