"""Inference tab state: the settings of an HMC run on an N-body posterior and its results.

Plain ``param.Parameterized`` (no Panel). :meth:`InferenceState.start` builds the problem
and a :class:`SamplerRun`; a worker (the view's thread, or a test) calls ``warmup()`` and
then ``next_chunk()`` until done, and hands each :class:`Chunk` to :meth:`InferenceState.record`
on the session's thread. The state keeps the draws, per-proposal diagnostics and ArviZ
ESS / R-hat; the view draws from it.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import param

from nbody_explorer.limits import LIMITS, check_cost, inference_cpu_seconds
import nbody_core.defaults as defaults
from nbody_core.lab import gradient_checks
from nbody_core.infer import hmc, inference, posterior
from nbody_core.infer.metric import theta_info, whitening_for

__all__ = ["InferenceState", "SamplerRun", "Chunk", "FD_STEPS", "COST_DIMS", "PIECE_SECONDS", "simulation_steps"]

#: Target CPU seconds of one bounded piece of work (a warm-up block): a stop or a closed tab
#: is seen within this, and other sessions get their turn as often.
PIECE_SECONDS = 0.25
FD_STEPS = tuple(float(h) for h in np.logspace(-10, -1, 19))  # finite-difference steps h
COST_DIMS = (2, 8, 32, 128)  # parameter counts d for the cost-per-gradient sweep


def simulation_steps(problem: str, num_obs: int) -> int:
    """Integration steps of one log-density evaluation of ``problem`` with ``num_obs``
    observations (as ``nbody_core.infer.inference.make_problem`` sets them: a whole number of
    steps between observations, ending on ``t_end``)."""
    spec = inference.PROBLEMS[problem]
    return max(1, math.ceil(spec.t_end / spec.dt / num_obs - 1e-9)) * num_obs


class Chunk(NamedTuple):
    """A block of transitions of every chain, as numpy arrays.

    Attributes:
        phase: ``"warmup"`` or ``"sampling"``.
        start: iteration index of the first transition (warm-up counts from 0).
        position: ``[chains, k, d]`` chain positions after each transition.
        info: :class:`nbody_core.infer.hmc.HMCInfo` with leading axes ``[chains, k]``.
    """

    phase: str
    start: int
    position: np.ndarray
    info: hmc.HMCInfo


class SamplerRun:
    """One HMC run of a problem, cut into chunks (reproducible from ``seed``)."""

    def __init__(
        self, problem: inference.InferenceProblem, *, seed: int, num_chains: int, num_warmup: int,
        num_samples: int, leapfrog_steps: int, step_size: float | None, chunk_size: int,
        metric: str = defaults.METRIC,
    ):
        hmc.validate_sampler_options(
            num_samples=num_samples, num_warmup=num_warmup, num_integration_steps=leapfrog_steps,
            num_chains=num_chains, step_size=step_size,
        )
        if step_size is None and num_warmup < 1:
            raise ValueError("automatic step size needs at least 1 warm-up iteration")
        self.problem = problem
        self.num_warmup, self.num_samples, self.chunk_size = num_warmup, num_samples, chunk_size
        self.leapfrog_steps, self.step_size = leapfrog_steps, step_size
        key_init, key_chains = jax.random.split(jax.random.key(seed))
        self.chain_keys = jax.random.split(key_chains, num_chains)
        # Time-window tempered multi-start optimisation: chains start in the right mode
        # (prior-drawn starts left 6 of 16 simulated datasets stuck over t in (0, 2], issue 12).
        self.initial_position = inference.initial_positions(problem, key_init, num_chains,
                                                            method=defaults.START_METHOD)
        # The chains move in coordinates u whitened by the Laplace covariance (a dense metric) or
        # in theta itself; every chunk is handed over in theta, recorded paths included.
        self.metric = metric
        self.whitening = whitening_for(problem, metric, self.initial_position)
        self.logdensity_fn = (problem.logdensity_fn if self.whitening is None
                              else self.whitening.logdensity_fn(problem.logdensity_fn))
        self.start_position = (self.initial_position if self.whitening is None
                               else self.whitening.to_u(self.initial_position))
        # Transitions per compiled call, warm-up blocks and sampling chunks alike: the live
        # update's chunk_size, cut to about PIECE_SECONDS of CPU (cost model of nbody_explorer.limits)
        # so that Stop or a closed tab acts, and other sessions get a turn, within that.
        per_transition = inference_cpu_seconds(
            num_chains=num_chains, num_transitions=1, leapfrog_steps=leapfrog_steps,
            num_bodies=problem.initial_state.mass.shape[0],
            simulation_steps=simulation_steps(problem.name, len(problem.observed_times)),
        )
        self.chunk_size = self.warmup_block = int(max(1, min(chunk_size, PIECE_SECONDS // per_transition)))
        self.states = None
        self.tuned_step_size = None
        self.inverse_mass_matrix = None
        self.num_drawn = 0
        self._chunk_index = 0

    @property
    def done(self) -> bool:
        return self.num_drawn >= self.num_samples

    def warmup(self, before_block: Callable[[int], None] | None = None) -> Chunk:
        """Run the warm-up and return its transitions.

        It runs as compiled blocks of ``warmup_block`` transitions (the same as one scan, bit
        for bit): ``before_block(transitions_done)`` is called before each, and raising there
        stops the warm-up within one block.
        """
        auto = self.step_size is None
        warm = hmc.warmup_chains_in_blocks(
            self.chain_keys, self.start_position, logdensity_fn=self.logdensity_fn,
            num_warmup=self.num_warmup, block_size=self.warmup_block, num_integration_steps=self.leapfrog_steps,
            step_size=0.01 if auto else self.step_size, adapt_step_size=auto, adapt_mass_matrix=auto,
            step_size_jitter=defaults.STEP_SIZE_JITTER, before_block=before_block,
        )
        self.states = warm.state
        self.tuned_step_size = np.asarray(warm.step_size)
        self.inverse_mass_matrix = np.asarray(warm.inverse_mass_matrix)
        info = jax.device_get(theta_info(self.whitening, warm.info))
        return Chunk("warmup", 0, _positions(info), info)

    def next_chunk(self) -> Chunk:
        """Draw the next ``chunk_size`` transitions of every chain (after :meth:`warmup`)."""
        if self.states is None:
            raise RuntimeError("call warmup() first")
        self.states, draws, info = hmc.sample_chains_chunk(
            self.chain_keys, self._chunk_index, self.states, jnp.asarray(self.tuned_step_size),
            jnp.asarray(self.inverse_mass_matrix), logdensity_fn=self.logdensity_fn,
            num_steps=self.chunk_size, num_integration_steps=self.leapfrog_steps,
            step_size_jitter=defaults.STEP_SIZE_JITTER,
        )
        start = self.num_warmup + self.num_drawn
        self._chunk_index += 1
        self.num_drawn += self.chunk_size
        position = draws.position if self.whitening is None else self.whitening.to_theta(draws.position)
        return Chunk("sampling", start, np.asarray(position), jax.device_get(theta_info(self.whitening, info)))


def _positions(info) -> np.ndarray:
    """Chain positions after each transition: the path's end if accepted, else its start."""
    path = np.asarray(info.path_position)
    accepted = np.asarray(info.is_accepted)[..., None]
    return np.where(accepted, path[..., -1, :], path[..., 0, :])


class InferenceState(param.Parameterized):
    """Settings and results of HMC inference on an N-body posterior."""

    problem = param.Selector(
        default="triple", objects=list(inference.PROBLEMS), doc="Few-body system whose masses are inferred."
    )
    parameters = param.Selector(
        default="masses", objects=list(inference.PARAMETER_SETS),
        doc="Parameters to infer: log masses, plus log G and/or an initial x velocity.",
    )
    noise = param.Number(
        0.02, bounds=(1e-5, 1.0), inclusive_bounds=(True, True), doc="Observation noise (length units)."
    )
    num_obs = param.Integer(10, bounds=(1, 200), doc="Number of observation times in (0, t_end].")
    metric = param.Selector(
        default=defaults.METRIC, objects=list(defaults.METRICS),
        doc="laplace: the chains move in coordinates whitened by the Laplace (Gauss-Newton) covariance at "
        "the best start (a dense metric; paths are drawn in the parameters); diagonal: a diagonal metric "
        "adapted in warm-up. Choosing one sets the leapfrog steps to its default.",
    )
    auto_step_size = param.Boolean(True, doc="Tune the step size by dual averaging during warm-up.")
    step_size = param.Number(0.002, bounds=(1e-6, 1.0), doc="Leapfrog step size when not tuned automatically.")
    # Upper bounds are this server's per-session caps (nbody_explorer.limits, NBODY_MAX_* variables).
    leapfrog_steps = param.Integer(
        min(defaults.leapfrog_steps(defaults.METRIC), LIMITS.max_leapfrog_steps), bounds=(1, min(100, LIMITS.max_leapfrog_steps)),
        doc="Leapfrog steps per proposal (L).",
    )
    num_chains = param.Integer(
        min(defaults.NUM_CHAINS, LIMITS.max_hmc_chains), bounds=(1, min(8, LIMITS.max_hmc_chains)), doc="Chains run in parallel (vmap)."
    )
    num_warmup = param.Integer(
        min(150, LIMITS.max_hmc_samples), bounds=(0, min(2000, LIMITS.max_hmc_samples)),
        doc="Warm-up transitions per chain.",
    )
    num_samples = param.Integer(
        min(300, LIMITS.max_hmc_samples), bounds=(1, min(5000, LIMITS.max_hmc_samples)),
        doc="Draws per chain after warm-up.",
    )
    chunk_size = param.Integer(5, bounds=(1, 100), doc="Transitions per live update.")
    seed = param.Integer(0, bounds=(0, 2**31 - 1), doc="PRNG seed of the data noise and the chains.")
    plane_x = param.Selector(default="log_m0", objects=["log_m0"], doc="Parameter on the path plot's x axis.")
    plane_y = param.Selector(default="log_m1", objects=["log_m1"], doc="Parameter on the path plot's y axis.")

    status = param.String("Ready: choose a system and press Start.", doc="One-line status.")
    running = param.Boolean(False, doc="A run is in progress.")
    chains_warning = param.String(
        None, allow_None=True,
        doc="Set when the chains disagree (R-hat > 1.05 or chains in different modes); None otherwise.",
    )

    def __init__(self, **params):
        super().__init__(**params)
        self.problem_obj: inference.InferenceProblem | None = None
        self.run: SamplerRun | None = None
        self.clear()
        self._update_plane_choices()

    # ------------------------------------------------------------------ results
    def clear(self) -> None:
        """Forget the results of the previous run."""
        self.draws = np.zeros((0, 0, 0))  # [chains, iterations, d], warm-up included
        self.acceptance = np.zeros((0, 0))
        self.hamiltonian_error = np.zeros((0, 0))
        self.divergent = np.zeros((0, 0), bool)
        self.energy = np.zeros((0, 0))
        self.logdensity = np.zeros((0, 0))
        self.chains_warning = None
        self.last_info = None  # HMCInfo of the latest chunk, [chains, k, ...]
        self.num_warmup_done = 0
        self.diagnostics: dict = {}

    @param.depends("metric", watch=True)
    def _metric_leapfrog_steps(self) -> None:
        self.leapfrog_steps = min(defaults.leapfrog_steps(self.metric), self.param.leapfrog_steps.bounds[1])

    @param.depends("problem", "parameters", watch=True)
    def _update_plane_choices(self) -> None:
        names = self.parameter_names()
        self.param.plane_x.objects = names
        self.param.plane_y.objects = names
        self.plane_x = names[0]
        self.plane_y = names[1] if len(names) > 1 else names[0]

    def parameter_names(self) -> list[str]:
        spec = inference.PROBLEMS[self.problem]
        infer_G, infer_velocity = inference.PARAMETER_SETS[self.parameters]
        n = len(np.asarray(spec.build()[0].mass))
        return (
            [f"log_m{i}" for i in range(n)] + (["log_G"] if infer_G else [])
            + ([f"vx{spec.velocity_body}"] if infer_velocity else [])
        )

    def build_problem(self) -> inference.InferenceProblem:
        """The posterior for the current settings (data from the simulator and ``seed``)."""
        return inference.make_problem(
            self.problem, params=self.parameters, noise=self.noise, num_obs=self.num_obs,
            key=jax.random.fold_in(jax.random.key(self.seed), 0),
        )

    def cost_seconds(self) -> float:
        """Estimated CPU seconds of a run with the current settings
        (:func:`nbody_explorer.limits.inference_cpu_seconds`)."""
        spec = inference.PROBLEMS[self.problem]
        return inference_cpu_seconds(
            num_chains=self.num_chains, num_transitions=self.num_warmup + self.num_samples,
            leapfrog_steps=self.leapfrog_steps, num_bodies=len(np.asarray(spec.build()[0].mass)),
            simulation_steps=simulation_steps(self.problem, self.num_obs),
        )

    def start(self) -> SamplerRun:
        """Validate the settings, build the problem and a fresh :class:`SamplerRun`.

        Raises:
            ValueError: naming the bad setting (the previous results are kept).
        """
        check_cost(self.cost_seconds(), what="This HMC run",
                   reduce="the chains, warm-up, samples or leapfrog steps")
        problem = self.build_problem()
        run = SamplerRun(
            problem, seed=self.seed, num_chains=self.num_chains, num_warmup=self.num_warmup,
            num_samples=self.num_samples, leapfrog_steps=self.leapfrog_steps,
            step_size=None if self.auto_step_size else self.step_size, chunk_size=self.chunk_size,
            metric=self.metric,
        )
        self.problem_obj, self.run = problem, run
        self.clear()
        self.running = True
        self.status = f"Warming up {self.num_chains} chains ({self.num_warmup} iterations, compiling first) ..."
        return run

    def record(self, chunk: Chunk) -> None:
        """Append a chunk's transitions and refresh the diagnostics (session thread)."""
        info = chunk.info
        parts = (
            (chunk.position, "draws"), (np.asarray(info.acceptance_rate), "acceptance"),
            (np.asarray(info.hamiltonian_error), "hamiltonian_error"),
            (np.asarray(info.is_divergent), "divergent"), (np.asarray(info.energy), "energy"),
            (np.where(np.asarray(info.is_accepted), np.asarray(info.path_logdensity)[..., -1],
                      np.asarray(info.path_logdensity)[..., 0]), "logdensity"),
        )
        for value, name in parts:
            old = getattr(self, name)
            setattr(self, name, value if old.size == 0 else np.concatenate([old, value], axis=1))
        if chunk.phase == "warmup":
            self.num_warmup_done = chunk.position.shape[1]
        if chunk.position.shape[1]:
            self.last_info = info
        self.diagnostics = self.compute_diagnostics()
        run = self.run
        if chunk.phase == "warmup":
            where = " (whitened coordinates)" if run.whitening is not None else ""
            self.status = (f"Warm-up done; step size{where} {np.round(run.tuned_step_size, 5).tolist()}. "
                           "Sampling ...")
        else:
            self.status = f"Sampling: {self.num_post_warmup} / {run.num_samples} draws per chain."

    @property
    def num_post_warmup(self) -> int:
        return max(0, self.draws.shape[1] - self.num_warmup_done) if self.draws.size else 0

    def posterior_draws(self) -> np.ndarray:
        """``[chains, draws, d]`` post-warm-up draws."""
        return self.draws[:, self.num_warmup_done :]

    def compute_diagnostics(self) -> dict:
        """Acceptance rate, divergences, and per-parameter mean, sd, bulk ESS and split R-hat
        (ArviZ) of the post-warm-up draws (NaN until there are enough draws)."""
        draws = self.posterior_draws()
        post = slice(self.num_warmup_done, None)
        result = {
            "acceptance_rate": float(np.mean(self.acceptance[:, post])) if draws.shape[1] else math.nan,
            "divergences": int(np.sum(self.divergent[:, post])) if draws.shape[1] else 0,
            "warmup_divergences": int(np.sum(self.divergent[:, : self.num_warmup_done])),
            "num_draws": int(draws.shape[1]),
            "parameters": {},
        }
        az = posterior.arviz()
        names = self.problem_obj.parameter_names if self.problem_obj else []
        for i, name in enumerate(names):
            x = draws[..., i] if draws.size else np.zeros((0, 0))
            row = {"truth": float(self.problem_obj.truth[i]), "mean": math.nan, "sd": math.nan,
                   "ess_bulk": math.nan, "r_hat": math.nan}
            if x.shape[1] >= 1:
                row["mean"], row["sd"] = float(x.mean()), float(x.std())
            if x.shape[1] >= 4:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    row["ess_bulk"] = float(az.ess(x, method="bulk"))
                    if x.shape[0] >= 2:
                        row["r_hat"] = float(az.rhat(x))
            result["parameters"][name] = row
        if draws.shape[1] >= 4 and draws.shape[0] >= 2:
            result["mode_check"] = posterior.mode_check(draws, self.logdensity[:, post], names)
        return result

    def finish(self, message: str | None = None) -> None:
        """Mark the run stopped (finished, stopped by the user, or failed)."""
        self.running = False
        if message is not None:
            self.status = message
        elif self.run is not None and self.run.done:
            d = self.diagnostics
            self.status = (
                f"Done: {d.get('num_draws', 0)} draws per chain, acceptance "
                f"{d.get('acceptance_rate', math.nan):.2f}, {d.get('divergences', 0)} divergences."
            )
            check = d.get("mode_check") or {}
            if check.get("chains_disagree"):
                self.chains_warning = check["warning"]
                self.status += f" Warning: {check['warning']}."

    # ------------------------------------------------------------------ finite differences
    def gradient_error_sweep(self) -> dict:
        """Autodiff vs central finite differences over :data:`FD_STEPS` at the current point
        (the latest draw of chain 0, else the truth) of the current problem."""
        problem = self.problem_obj or self.build_problem()
        if self.draws.size and self.problem_obj is problem:
            x = self.draws[0, -1]
        else:
            x = problem.truth
        return gradient_checks.gradient_error_sweep(problem.logdensity_fn, jnp.asarray(x), FD_STEPS)

    def gradient_costs(self, dims=COST_DIMS, **options) -> list[gradient_checks.GradientCost]:
        """Seconds per forward, autodiff and finite-difference gradient at each ``d``."""
        options.setdefault("num_bodies", 128)
        options.setdefault("num_steps", 10)
        options.setdefault("repeats", 3)
        return gradient_checks.measure_gradient_costs(dims, **options)
