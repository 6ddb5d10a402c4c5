"""Session state of the Ensembles tab: sweep a parameter over many members, vmapped.

The user picks a system, N, members, steps, the swept parameter and its range, and the
integrators; :meth:`EnsemblesState.run` validates everything first (caps from
:mod:`nbody_explorer.limits`, then :class:`nbody_core.ensembles.EnsembleSpec`), runs the ensemble in
chunks shared by worker threads (progress callback) and then times a Python loop over the
jitted single-member functions on the same members (all of them up to ``loop_members``, else
an evenly spread sample, extrapolated and said so), so the tab states the measured speedup
of this very run and how it was measured. A refused input leaves the previous result in place and reports the reason in
``error`` (bumping ``error_count``). The work splits into :meth:`prepare` (validate),
:meth:`compute` (no parameter changes: safe in a worker thread) and :meth:`accept` (set the
result; call it under the document lock). No Panel import.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import numpy as np
import param

from nbody_explorer.limits import LIMITS, check_cost, check_limit, ensemble_cpu_seconds, safe_filename
from nbody_core import INTEGRATORS, get_preset
from nbody_core.ensembles import (
    SUMMARIES,
    SYSTEM_PARAMETERS,
    EnsembleResult,
    EnsembleSpec,
    Sweep,
    default_chunk_size,
    fit_power_law,
    format_sweep,
    member_table,
    run_ensemble,
    time_python_loop,
)

__all__ = ["EnsemblesState", "SWEEP_DEFAULTS", "NO_SWEEP", "CHUNK_SIZE", "parameters_for", "outcome_label",
           "integrator_color", "INTEGRATOR_NAMES"]


def integrator_color(name: str) -> str:
    """The integrator's plot colour, from its registry record (Okabe-Ito, colour-blind safe)."""
    return INTEGRATORS[name].color if name in INTEGRATORS else "#333333"


#: Every integrator name in the registry (fixed-step first, as registered).
INTEGRATOR_NAMES = tuple(INTEGRATORS)


def _fixed_step_names() -> list[str]:
    """The integrators an ensemble can run (its members vmap the fixed-step loop)."""
    return list(INTEGRATORS.where(lambda integrator: not integrator.adaptive))

NO_SWEEP = "none (seeds only)"
#: Most members per compiled call in the tab (fewer for large N, see
#: ``nbody_core.ensembles.default_chunk_size``): 256 members give 8 progress steps, and
#: changing M above it never recompiles.
CHUNK_SIZE = 32
#: Default range and scale of each swept parameter: (low, high, log scale).
SWEEP_DEFAULTS: dict[str, tuple[float, float, bool]] = {
    "softening": (0.001, 0.1, True),
    "dt": (0.0005, 0.008, True),
    "virial_ratio": (0.3, 0.7, False),
    "eccentricity": (0.1, 0.8, False),
    "mass_ratio": (0.1, 1.0, True),
}
_KEPLER_DT = (0.002, 0.03, True)  # a range where leapfrog and yoshida4 show their orders

_OUTCOME_LABELS = {
    "final_energy_error": "final |ΔE/E0|",
    "max_energy_error": "max |ΔE/E0|",
    "initial_virial_ratio": "initial virial ratio T/|U|",
    "final_virial_ratio": "final virial ratio T/|U|",
    "escaper_fraction": "escaper fraction",
    "lagrangian_radius_10": "10 % Lagrangian radius",
    "lagrangian_radius_50": "half-mass radius",
    "lagrangian_radius_90": "90 % Lagrangian radius",
    "min_pair_distance": "minimum pair distance",
    "momentum_drift": "|ΔP|",
    "angular_momentum_drift": "|ΔL|",
    "finite": "finite (1) / blew up (0)",
}
_SWEEPABLE_SYSTEMS = [name for name in SYSTEM_PARAMETERS if name != "pythagorean"]


def parameters_for(system: str) -> list[str]:
    """The numeric parameters the tab can sweep for ``system`` (plus 'no sweep')."""
    return ["softening", "dt", *SYSTEM_PARAMETERS[system], NO_SWEEP]


def outcome_label(name: str) -> str:
    """Axis label of a summary."""
    return _OUTCOME_LABELS.get(name, name)


class EnsemblesState(param.Parameterized):
    """One session's ensemble: inputs, the last accepted result and the speedup measured."""

    system = param.Selector(default="plummer", objects=_SWEEPABLE_SYSTEMS, doc="Preset of every member.")
    num_bodies = param.Integer(32, doc=f"Bodies per member (2 to {LIMITS.max_ensemble_bodies}).")
    num_members = param.Integer(256, doc=f"Members M (1 to {LIMITS.max_ensemble_members}).")
    num_steps = param.Integer(200, doc="Steps at the base dt; every member runs to t_end = steps x dt.")
    dt = param.Number(1e-3, doc="Base time step, time units (> 0).")
    softening = param.Number(0.01, doc="Base Plummer softening, length units (>= 0).")
    parameter = param.Selector(
        default="softening", objects=["softening", "dt", "virial_ratio", "eccentricity", "mass_ratio", NO_SWEEP],
        doc="Swept parameter (the choices follow the system).",
    )
    low = param.Number(0.001, doc="Lower end of the swept range.")
    high = param.Number(0.1, doc="Upper end of the swept range.")
    log_scale = param.Boolean(True, doc="Space the swept values logarithmically.")
    integrators = param.ListSelector(default=["leapfrog"], objects=_fixed_step_names(),
                                     doc="Integrators (members are split evenly between them).")
    design = param.Selector(default="grid", objects=["grid", "random"], doc="Grid or seeded random design.")
    seed = param.Integer(0, doc="Root seed (>= 0).")
    shared_initial_conditions = param.Boolean(False, doc="Every member starts from member 0's initial state.")
    outcome = param.Selector(default="max_energy_error", objects=list(SUMMARIES), doc="Outcome plotted against the parameter.")
    loop_members = param.Integer(
        256, bounds=(1, 4096),
        doc="Members the Python-loop baseline runs: every member up to this many (the same members as the "
            "ensemble), else an evenly spread sample of this many, extrapolated (the tab says which).")

    # Results (set by accept, read by the view).
    result = param.Parameter(default=None, doc="EnsembleResult of the last accepted run.")
    speedup = param.Dict(default={}, doc="Timings of the last run: vmap against the Python loop.")
    running = param.Boolean(False, doc="A run is in progress.")
    progress_done = param.Integer(0)
    progress_total = param.Integer(0)
    error = param.String("", doc="Why the last run was refused ('' when accepted).")
    error_count = param.Integer(0, doc="Bumped on every refusal.")
    run_count = param.Integer(0, doc="Bumped on every accepted result.")

    @property
    def scalable(self) -> bool:
        """Whether the chosen system takes a number of bodies."""
        return get_preset(self.system).scalable

    def __init__(self, **params):
        super().__init__(**params)
        self.param.integrators.objects = _fixed_step_names()  # the registry, read per session
        self.param.parameter.objects = parameters_for(self.system)
        preset = get_preset(self.system)
        if "dt" not in params:
            self.dt = float(preset.dt)
        if "softening" not in params:
            self.softening = float(preset.params.softening)
        if not {"low", "high", "log_scale"} & set(params):
            self._on_parameter()
        self.param.watch(self._on_system, ["system"])
        self.param.watch(self._on_parameter, ["parameter"])

    # ------------------------------------------------------------------ defaults
    def _on_system(self, *_events) -> None:
        preset = get_preset(self.system)
        choices = parameters_for(self.system)
        self.param.parameter.objects = choices
        with param.parameterized.batch_call_watchers(self):
            self.dt = float(preset.dt)
            self.softening = float(preset.params.softening)
            if preset.scalable:
                self.num_bodies = min(self.num_bodies, LIMITS.max_ensemble_bodies)
        if self.parameter not in choices:
            self.parameter = "softening"
        self._on_parameter()

    def _on_parameter(self, *_events) -> None:
        if self.parameter == NO_SWEEP:
            return
        low, high, log = _KEPLER_DT if (self.system == "kepler" and self.parameter == "dt") else SWEEP_DEFAULTS[self.parameter]
        self.param.update(low=low, high=high, log_scale=log)

    # ------------------------------------------------------------------ running
    def build_spec(self) -> EnsembleSpec:
        """The :class:`EnsembleSpec` of the current inputs.

        Raises:
            ValueError: naming the first bad input (caps of this server included).
        """
        check_limit("max_ensemble_members", self.num_members)
        check_limit("max_simulation_steps", self.num_steps)
        preset = get_preset(self.system)
        num_bodies = None
        if preset.scalable:
            num_bodies = check_limit("max_ensemble_bodies", self.num_bodies)
        if not self.integrators:
            raise ValueError("choose at least one integrator")
        for name, value in (("dt", self.dt), ("softening", self.softening), ("low", self.low), ("high", self.high)):
            if value is None or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        sweeps: list[Sweep] = []
        if self.parameter != NO_SWEEP:
            sweeps.append(Sweep(self.parameter, low=self.low, high=self.high, scale="log" if self.log_scale else "linear"))
        if len(self.integrators) > 1:
            sweeps.append(Sweep("integrator", values=tuple(self.integrators)))
        spec = EnsembleSpec(
            system=self.system,
            num_bodies=num_bodies,
            num_members=self.num_members,
            num_steps=self.num_steps,
            dt=self.dt,
            softening=self.softening,
            integrator=self.integrators[0],
            sweeps=tuple(sweeps),
            design=self.design,
            seed=self.seed,
            shared_initial_conditions=self.shared_initial_conditions and bool(sweeps),
        )
        table = member_table(spec)
        longest = int(np.max(table.num_steps))
        check_limit("max_simulation_steps", longest)
        check_cost(self.cost_seconds(spec), what="This ensemble", reduce="the members or steps, or the bodies (the cost grows with their square)")
        return spec

    def cost_seconds(self, spec: EnsembleSpec) -> float:
        """Estimated CPU seconds of running ``spec`` and its Python-loop baseline
        (:func:`nbody_explorer.limits.ensemble_cpu_seconds`)."""
        table = member_table(spec)
        evaluations = max(INTEGRATORS[name].force_evaluations_per_step for name in spec.integrators)
        return ensemble_cpu_seconds(
            num_bodies=spec.num_bodies, member_steps=table.num_steps, force_evaluations=evaluations,
            loop_members=min(self.loop_members, spec.num_members),
        )

    def prepare(self) -> EnsembleSpec | None:
        """Validate the inputs: the spec, or None after reporting the refusal."""
        try:
            return self.build_spec()
        except ValueError as error:
            self.refuse(str(error))
            return None

    def refuse(self, reason: str) -> None:
        """Report a refused run; the previous result stays."""
        self.error = reason
        self.error_count += 1

    @staticmethod
    def compute(
        spec: EnsembleSpec,
        *,
        loop_members: int = 256,
        progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> tuple[EnsembleResult, dict[str, Any]]:
        """Run the ensemble, then time the Python loop (blocking; changes no parameter).

        ``should_stop`` is polled between bounded pieces (each well under a second of CPU:
        ``run_ensemble`` cuts every chunk into pieces of ``PIECE_PAIR_STEPS`` pair-steps) and
        between the loop baseline's members; True raises ``EnsembleCancelled``.

        Returns:
            ``(result, speedup)`` where ``speedup`` has the runner's and the loop's timings
            (seconds) and ``ratio`` = loop time (over the same members; extrapolated from a
            sample when ``loop_extrapolated``) / the runner's wall time (compile excluded).
        """
        chunk_size = min(CHUNK_SIZE, default_chunk_size(spec, jax.devices()[0].platform))
        result = run_ensemble(spec, chunk_size=chunk_size, progress=progress, should_stop=should_stop)
        loop = time_python_loop(spec, num_members=min(loop_members, spec.num_members), should_stop=should_stop)
        vmap_s = result.timing["run_s"]
        speedup = {
            "members": spec.num_members,
            "vmap_run_s": vmap_s,
            "vmap_compile_s": result.timing["compile_s"],
            "loop_members_timed": loop["members_timed"],
            "loop_seconds_per_member": loop["seconds_per_member"],
            "loop_compile_s": loop["compile_s"],
            "loop_extrapolated_s": loop["extrapolated_loop_s"],
            "loop_extrapolated": loop["extrapolated"],
            "workers": result.timing["workers"],
            "ratio": loop["extrapolated_loop_s"] / vmap_s if vmap_s > 0 else float("nan"),
            "chunks": result.timing["num_chunks"],
            "chunk_size": result.timing["chunk_size"],
            "devices": result.timing["num_devices"],
        }
        return result, speedup

    def accept(self, result: EnsembleResult, speedup: dict[str, Any]) -> None:
        """Make ``result`` the shown one (call under the document lock when served)."""
        with param.parameterized.batch_call_watchers(self):
            self.error = ""
            self.result = result
            self.speedup = speedup
            self.run_count += 1

    def run(self, progress: Callable[[int, int], None] | None = None) -> bool:
        """Validate, compute and accept in one blocking call (tests, notebooks).

        Returns:
            True when a new result was accepted, False when the input was refused.
        """
        spec = self.prepare()
        if spec is None:
            return False
        result, speedup = self.compute(spec, loop_members=self.loop_members, progress=progress)
        self.accept(result, speedup)
        return True

    # ------------------------------------------------------------------ reading results
    @property
    def loop_label(self) -> str:
        """The loop's bar in the timing chart: over every member, or over a stated sample."""
        s = self.speedup
        if not s or not s.get("loop_extrapolated"):
            return "Python loop (same members)"
        return "Python loop (sample, extrapolated)"

    @property
    def speedup_message(self) -> str:
        """How the speedup of the last run was measured, in one paragraph."""
        s = self.speedup
        if not s:
            return ""
        threads = s.get("workers", 1)
        if s.get("loop_extrapolated"):
            loop = (f"{1e3 * s['loop_seconds_per_member']:.1f} ms per member measured on an evenly spread sample "
                    f"of {s['loop_members_timed']} of the {s['members']} members, {s['loop_extrapolated_s']:.2f} s "
                    f"extrapolated to all of them")
        else:
            loop = (f"{s['loop_extrapolated_s']:.2f} s for the same {s['members']} members, one after another "
                    f"({1e3 * s['loop_seconds_per_member']:.1f} ms each)")
        ratio = s["ratio"]
        verdict = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
        return (
            f"vmap runner: {s['members']} members in {s['vmap_run_s']:.2f} s wall "
            f"({s['chunks']} chunks of {s['chunk_size']} on {threads} thread{'s' if threads != 1 else ''}, "
            f"compile {s['vmap_compile_s']:.1f} s apart). Python loop over the jitted single simulation: {loop}. "
            f"The runner is {verdict} than the loop (wall times of this run, back to back, compile excluded; "
            "the machine's other work slows both)."
        )

    def swept_values(self) -> np.ndarray | None:
        """``[M]`` values of the swept parameter of the shown result (the dt actually taken
        for a dt sweep), or None for a seeds-only run."""
        result = self.result
        if result is None:
            return None
        names = [s.name for s in result.spec.sweeps if s.name != "integrator"]
        if not names:
            return None
        if names[0] == "dt":
            return result.table.dt_used
        return result.table.parameters[names[0]]

    def swept_name(self) -> str | None:
        result = self.result
        names = [] if result is None else [s.name for s in result.spec.sweeps if s.name != "integrator"]
        return names[0] if names else None

    def swept_log_scale(self) -> bool:
        result = self.result
        sweep = None if result is None else next((s for s in result.spec.sweeps if s.name != "integrator"), None)
        return bool(sweep is not None and sweep.scale == "log")

    def slopes(self, outcome: str | None = None) -> dict[str, float]:
        """Log-log slope of ``outcome`` against the swept parameter, per integrator."""
        x = self.swept_values()
        if x is None:
            return {}
        y = self.result.summaries[outcome or self.outcome]
        integrators = self.result.table.integrator
        return {name: fit_power_law(x[integrators == name], y[integrators == name])[0]
                for name in dict.fromkeys(integrators.tolist())}

    def download_name(self) -> str:
        result = self.result
        if result is None:
            return "ensemble.npz"
        spec = result.spec
        swept = self.swept_name() or "seeds"
        return safe_filename(f"ensemble_{spec.system}_{swept}_{spec.num_members}", suffix=".npz")

    def download_bytes(self) -> bytes:
        """The npz of the shown result (what ``nbody ensemble`` would write)."""
        if self.result is None:
            raise ValueError("run an ensemble first")
        spec = self.result.spec
        command = ["nbody", "ensemble", "--preset", spec.system, "--members", str(spec.num_members),
                   "--steps", str(spec.num_steps), "--dt", repr(spec.dt), "--softening", repr(spec.softening),
                   "--integrator", spec.integrator, "--design", spec.design, "--seed", str(spec.seed)]
        if get_preset(spec.system).scalable:
            command += ["--n", str(spec.num_bodies)]
        for sweep in spec.sweeps:
            command += ["--sweep", format_sweep(sweep)]
        if spec.shared_initial_conditions:
            command.append("--shared-initial-conditions")
        chunk_size = self.result.timing.get("chunk_size", CHUNK_SIZE)
        command += ["--chunk-size", str(chunk_size), "--out", self.download_name()]
        return self.result.npz_bytes(command=command)

