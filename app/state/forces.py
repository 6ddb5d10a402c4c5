"""Session state of the Forces tab: autodiff against hand-coded forces, and their timing.

Any change of the configuration (preset, N, seed, potential and its parameters) recomputes
the force comparison in float64 and float32 through :mod:`nbody_core.lab.forcelab`. Bad input
(an N over the cap, a negative softening, a screening length of 0, ...) leaves the previous
configuration and results in place, reverts the offending parameters and reports the reason
in ``error`` (bumping ``error_count``, which the view turns into a notification). Given a
``submit`` function (the served view passes its session runner's), the comparison is computed
there, never on the caller's thread, and a result for a configuration changed meanwhile is
dropped. The timing sweep runs on demand through :meth:`ForcesState.run_timing` (blocking;
the view calls it on the worker pool). No Panel import.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from functools import partial
from typing import Callable

import jax
import numpy as np
import param

from nbody_explorer.limits import LIMITS, check_cost, check_limit
from nbody_core import PRESETS, POTENTIALS, get_preset
from nbody_core.lab.forcelab import (
    DEFAULT_NUMPY_LOOP_MAX_N,
    DTYPES,
    ForceComparison,
    TimingResult,
    compare_forces_all_dtypes,
    precision_difference,
    time_force_methods,
    timing_methods,
)
from nbody_core.physics.state import PhysicsParams

__all__ = [
    "ForcesState",
    "timing_method_names",
    "CONFIGURATION",
    "DEFAULT_TIMING_NS",
    "FORCES_MAX_BODIES",
    "parse_body_counts",
    "speedup_summary",
    "log10_histogram",
    "timing_cpu_seconds",
    "TIMING_SECONDS_PER_PAIR",
]

#: Parameters that define the configuration; changing any recomputes the comparison.
CONFIGURATION = ("preset", "num_bodies", "seed", "potential", "softening", "screening_length", "power_index")

DEFAULT_TIMING_NS = "16, 64, 256, 1024"

# Force-lab sizes: every comparison builds [N, N, 3] temporaries in two dtypes and two
# methods; 2000 bodies is ~100 MB per temporary, within one session's fair share.
FORCES_MAX_BODIES = min(LIMITS.max_bodies, 2000)


def parse_body_counts(text: str, *, max_bodies: int = FORCES_MAX_BODIES) -> tuple[int, ...]:
    """Parse ``"16, 64, 256"`` into sorted unique body counts, each in ``[2, max_bodies]``.

    Raises:
        ValueError: naming the bad entry.
    """
    counts = set()
    for item in str(text).replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            n = int(item)
        except ValueError:
            raise ValueError(f"timing N values must be whole numbers separated by commas, got {item!r}") from None
        if not 2 <= n <= max_bodies:
            raise ValueError(f"timing N value {n} is outside [2, {max_bodies}]")
        counts.add(n)
    if not counts:
        raise ValueError("give at least one N for the timing sweep, e.g. '16, 64, 256'")
    return tuple(sorted(counts))


class ForcesState(param.Parameterized):
    """Force comparison and timing for one dashboard session."""

    preset = param.Selector(default="plummer", objects=list(PRESETS), doc="Initial conditions (core preset).")
    num_bodies = param.Integer(
        min(128, FORCES_MAX_BODIES), doc=f"Number of bodies N for scalable presets (2 to {FORCES_MAX_BODIES})."
    )
    seed = param.Integer(0, doc="PRNG seed of random presets (>= 0).")
    potential = param.Selector(default="newtonian", objects=list(POTENTIALS), doc="Pair potential.")
    softening = param.Number(0.01, doc="Plummer softening length eps >= 0, length units.")
    screening_length = param.Number(0.5, doc="Yukawa screening length lambda > 0, length units.")
    power_index = param.Number(1.5, doc="Exponent p > 0 of the power-law potential -G/s**p.")
    dtype = param.Selector(default="float64", objects=list(DTYPES), doc="Precision of the arrows and scatter.")
    show_arrows = param.Boolean(True, doc="Draw force arrows on the scene.")

    timing_ns = param.String(DEFAULT_TIMING_NS, doc="Body counts N of the timing sweep, comma separated.")
    timing_methods = param.ListSelector(
        default=list(timing_methods()), objects=list(timing_methods()), doc="Methods to time."
    )
    timing_repeats = param.Integer(3, bounds=(1, 20), doc="Steady-state calls per (method, N).")
    numpy_loop_max_n = param.Integer(
        DEFAULT_NUMPY_LOOP_MAX_N, bounds=(2, 1024),
        doc="Largest N the NumPy double loop really runs at; above it its time is extrapolated as N**2.",
    )

    # Results (set by the state, read by the view).
    comparisons = param.Dict(default={}, doc="dtype -> ForceComparison of the current configuration.")
    float32_difference = param.Array(default=None, doc="[n] relative difference of float32 from float64 autodiff forces.")
    error = param.String("", doc="Why the last change was refused ('' when it was accepted).")
    error_count = param.Integer(0, doc="Bumped on every refused change.")
    timing = param.Parameter(default=None, doc="TimingResult of the last sweep.")
    timing_running = param.Boolean(False, doc="A timing sweep is running.")
    timing_done = param.Integer(0, doc="Measurements done in the running sweep.")
    timing_total = param.Integer(0, doc="Measurements in the running sweep.")
    timing_message = param.String("", doc="Progress or outcome of the timing sweep.")
    computing = param.Boolean(False, doc="The comparison of the current configuration is being computed.")

    def __init__(self, *, submit: Callable | None = None, **params):
        """Args:
            submit: ``submit(work, done, failed)`` runs ``work()`` elsewhere and then
                ``done(result)`` or ``failed(error)``; None computes at once (notebooks, tests).
            **params: initial parameter values.
        """
        super().__init__(**params)
        self._submit = submit
        # Faster kernels registered after this module was imported are timed too.
        self.param.timing_methods.objects = list(timing_methods())
        if "timing_methods" not in params:
            self.timing_methods = list(timing_methods())
        self._reverting = False
        self._timing_lock = threading.Lock()
        self._good: dict = {}
        self._apply_preset_defaults(keep=set(params))
        self._recompute(initial=True)
        self.param.watch(self._on_configuration, list(CONFIGURATION))

    # ------------------------------------------------------------------ configuration
    @property
    def configuration(self) -> dict:
        return {name: getattr(self, name) for name in CONFIGURATION}

    @property
    def physics_params(self) -> PhysicsParams:
        return PhysicsParams(
            G=float(get_preset(self.preset).params.G),
            softening=float(self.softening),
            screening_length=float(self.screening_length),
            power_index=float(self.power_index),
        )

    @property
    def hand_coded_status(self) -> str | None:
        """``None`` when the hand-coded kernel applies, else "Newtonian only / not applicable ..."."""
        comparison = self.comparisons.get("float64")
        return None if comparison is None else comparison.hand_coded_status

    @property
    def current(self) -> ForceComparison:
        """The comparison in the precision chosen for the scene and scatter."""
        return self.comparisons[self.dtype]

    def _apply_preset_defaults(self, keep=frozenset()) -> None:
        if "softening" not in keep:
            with param.parameterized.discard_events(self):
                self.softening = float(get_preset(self.preset).params.softening)

    def _validate(self) -> None:
        preset = get_preset(self.preset)
        if preset.scalable:
            if self.num_bodies is None or self.num_bodies < 2:
                raise ValueError(f"number of bodies must be at least 2, got {self.num_bodies!r}")
            check_limit("max_bodies", self.num_bodies)
            if self.num_bodies > FORCES_MAX_BODIES:
                raise ValueError(
                    f"number of bodies {self.num_bodies} exceeds the force lab's cap of {FORCES_MAX_BODIES}"
                )
        if self.seed is None or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        checks = (
            ("softening", self.softening, lambda v: v >= 0, ">= 0"),
            ("screening length", self.screening_length, lambda v: v > 0, "> 0"),
            ("power index", self.power_index, lambda v: v > 0, "> 0"),
        )
        for name, value, ok, rule in checks:
            if value is None or not math.isfinite(value) or not ok(value):
                raise ValueError(f"{name} must be a finite number {rule}, got {value!r}")

    @property
    def scalable(self) -> bool:
        """Whether the preset takes a number of bodies and a seed."""
        return get_preset(self.preset).scalable

    def _recompute(self, *, initial: bool = False) -> None:
        try:
            self._validate()
        except ValueError as error:
            self._refuse(error, initial=initial)
            return
        configuration = self.configuration
        work = partial(_compare, self.preset, self.num_bodies, self.seed, self.physics_params, self.potential)
        if self._submit is None:
            try:
                comparisons = work()
            except ValueError as error:
                self._refuse(error, initial=initial)
                return
            self._accept(configuration, comparisons)
            return
        self.computing = True
        self._submit(work, partial(self._accept, configuration), partial(self._computation_failed, configuration))

    def _accept(self, configuration: dict, comparisons: dict) -> None:
        if configuration != self.configuration:
            return  # changed meanwhile: the newer configuration's result is on its way
        self._good = configuration
        self.param.update(
            comparisons=comparisons,
            float32_difference=precision_difference(comparisons["float32"], comparisons["float64"]),
            error="",
            computing=False,
        )

    def _computation_failed(self, configuration: dict, error: BaseException) -> None:
        if configuration != self.configuration:
            return
        self.computing = False
        self._refuse(error, initial=False)

    def _refuse(self, error: BaseException, *, initial: bool) -> None:
        if initial and self._submit is None:
            raise error
        if self._good:
            self._revert()
        self.param.update(error=str(error), error_count=self.error_count + 1)

    def _revert(self) -> None:
        self._reverting = True
        try:
            self.param.update(**self._good)
        finally:
            self._reverting = False

    def _on_configuration(self, *events) -> None:
        if self._reverting:
            return
        if any(event.name == "preset" for event in events):
            self._apply_preset_defaults()
        self._recompute()

    # ------------------------------------------------------------------ timing
    def check_timing_cost(self) -> tuple[int, ...]:
        """The sweep's body counts, once it is checked: refused in words (a bad N list, no
        method, or an estimate over the per-click CPU budget: the larger of this server's
        budget and the default sweep's estimate, so the default always runs).

        Raises:
            ValueError: in words, with the estimate and what to change.
        """
        ns = parse_body_counts(self.timing_ns)
        if not self.timing_methods:
            raise ValueError("choose at least one method to time")
        estimate = timing_cpu_seconds(ns, self.timing_methods, self.timing_repeats, self.numpy_loop_max_n)
        default = timing_cpu_seconds(parse_body_counts(DEFAULT_TIMING_NS), list(timing_methods()),
                                     self.param.timing_repeats.default, DEFAULT_NUMPY_LOOP_MAX_N)
        budget = max(LIMITS.max_click_cpu_seconds, math.ceil(default))
        check_cost(estimate, what="This timing sweep", reduce="the Timing N values, the Repeats, the methods or "
                   "NumPy loop up to N", limits=dataclasses.replace(LIMITS, max_click_cpu_seconds=budget))
        return ns

    def run_timing(self, progress_callback: Callable[[int, int, str], None] | None = None) -> TimingResult | None:
        """Run the timing sweep of ``timing_ns`` x ``timing_methods`` (blocking).

        Progress goes to ``timing_done`` / ``timing_total`` / ``timing_message`` and to
        ``progress_callback(done, total, message)``. A refused request (bad N list, no
        method, a sweep already running) sets ``error`` and returns ``None``.
        """
        try:
            ns = self.check_timing_cost()
        except ValueError as error:
            self.param.update(error=str(error), error_count=self.error_count + 1)
            return None
        if not self._timing_lock.acquire(blocking=False):
            self.param.update(error="a timing sweep is already running", error_count=self.error_count + 1)
            return None
        try:
            total = len(ns) * len(self.timing_methods)
            self.param.update(timing_running=True, timing_done=0, timing_total=total, timing_message="starting ...")

            def progress(done, total, message):
                self.param.update(timing_done=done, timing_message=f"{done}/{total}: {message}")
                if progress_callback is not None:
                    progress_callback(done, total, message)

            try:
                result = time_force_methods(
                    ns, list(self.timing_methods), self.timing_repeats, progress,
                    numpy_loop_max_n=self.numpy_loop_max_n,
                )
            except ValueError as error:
                self.param.update(error=str(error), error_count=self.error_count + 1, timing_message="")
                return None
            self.param.update(timing=result, timing_message=speedup_summary(result))
            return result
        finally:
            self.timing_running = False
            self._timing_lock.release()


#: CPU seconds per pair interaction of one force evaluation by each timing method
#: (benchmarks/results/forces.md, N = 1000, float64, load ~12 on this machine: numpy_loop
#: 1.2e-5, numpy_vectorized 3.8e-7, autodiff 1.2e-7, analytic 3.0e-7, tiled 5.7e-9,
#: autodiff_tiled 9.6e-9); a method not listed counts as the slowest JAX one.
TIMING_SECONDS_PER_PAIR = {"numpy_loop": 1.2e-5, "numpy_vectorized": 3.8e-7, "jax_autodiff": 1.2e-7,
                           "jax_analytic": 3.0e-7, "jax_tiled": 5.7e-9, "jax_tiled_custom_vjp": 5.7e-9,
                           "jax_autodiff_tiled": 9.6e-9}


def timing_cpu_seconds(ns, methods, repeats: int, numpy_loop_max_n: int) -> float:
    """Estimated CPU seconds of the steady-state calls of a timing sweep (compilations, one
    bounded piece each, are not counted): ``repeats`` calls per (method, N), one more for a
    JAX method's first call; the NumPy loop only up to ``numpy_loop_max_n`` (extrapolated above)."""
    total = 0.0
    for method in methods:
        per_pair = TIMING_SECONDS_PER_PAIR.get(method, TIMING_SECONDS_PER_PAIR["jax_analytic"])
        calls = repeats + (0 if method.startswith("numpy") else 1)
        for n in ns:
            if method != "numpy_loop" or n <= numpy_loop_max_n:
                total += calls * n * n * per_pair
    return total


def _compare(preset_name: str, num_bodies: int, seed: int, params: PhysicsParams, potential: str) -> dict:
    """The force comparison in every dtype for one configuration (JAX work: off the event loop)."""
    preset = get_preset(preset_name)
    state = preset.build(jax.random.key(seed), num_bodies if preset.scalable else None)
    return compare_forces_all_dtypes(state, params=params, potential=potential)


def timing_method_names() -> list[str]:
    """Every force method the timing sweep can time, in a fixed order (for colours)."""
    return list(timing_methods())


def speedup_summary(result: TimingResult) -> str:
    """One sentence: each method's speedup over the NumPy loop at the largest N timed."""
    n = max(result.num_bodies)
    parts, extrapolated_from = [], None
    for method in result.methods:
        record = result.record(method, n)
        if method == "numpy_loop" or record.speedup_vs_numpy_loop is None:
            continue
        parts.append(f"{method} {record.speedup_vs_numpy_loop:,.0f}x")
        if record.speedup_extrapolated:
            extrapolated_from = result.record("numpy_loop", n).extrapolated_from
    if not parts:
        return f"Timed {len(result.methods)} method(s); include numpy_loop to see speedups."
    note = (
        f" (the loop's time at N = {n} is extrapolated as N^2 from N = {extrapolated_from})"
        if extrapolated_from is not None else ""
    )
    return f"At N = {n}, faster than the NumPy loop{note}: " + ", ".join(parts) + "."


def log10_histogram(values: np.ndarray | None, *, edges: np.ndarray) -> tuple[np.ndarray, int]:
    """Counts of ``log10(values)`` in ``edges``; exact zeros go to the lowest bin.

    Returns:
        ``(counts [len(edges) - 1], zeros)``: zeros is how many values were exactly 0.
    """
    if values is None or len(values) == 0:
        return np.zeros(len(edges) - 1, dtype=int), 0
    values = np.asarray(values, dtype=np.float64)
    zeros = int(np.sum(values == 0))
    logs = np.log10(np.maximum(values, 10.0 ** edges[0]))
    counts, _ = np.histogram(np.clip(logs, edges[0], edges[-1]), bins=edges)
    return counts, zeros
