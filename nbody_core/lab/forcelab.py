"""Force lab: autodiff forces against the hand-coded kernel, in float64 and float32, and timed.

:func:`compare_forces` computes the force on every body twice, ``-grad U`` by ``jax.grad`` of
the potential energy (any pair potential) and the hand-coded kernel (Newtonian gravity only;
for any other potential the comparison says "Newtonian only / not applicable" and carries no
hand-coded forces, never wrong ones), with per-body relative differences.
:func:`time_force_methods` times the NumPy double loop, the vectorized NumPy kernel and the
JAX kernels against N, compile time apart from run time.
"""

from __future__ import annotations

import secrets
import statistics
import time
from functools import partial
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nbody_core.physics import forces as _forces
from nbody_core.systems.constants import MAX_BODIES
from .numpy_reference import accelerations_loop, accelerations_vectorized
from nbody_core.physics.pallas_kernels import pallas_interpret_default
from nbody_core.physics.potentials import NEWTONIAN, PairPotential, get_potential
from nbody_core.physics.state import DTYPES as _state_dtypes, ParticleState, PhysicsParams, cast_state

__all__ = [
    "DTYPES",
    "FLOOR_FRACTION",
    "ForceComparison",
    "compare_forces",
    "compare_forces_all_dtypes",
    "relative_difference",
    "precision_difference",
    "hand_coded_status",
    "TimingRecord",
    "TimingResult",
    "timing_methods",
    "time_force_methods",
    "DEFAULT_NUMPY_LOOP_MAX_N",
]

DTYPES = _state_dtypes  # the one name -> dtype map (nbody_core.physics.state.DTYPES)

# Floor of the denominator of a relative difference, as a fraction of the RMS force of the
# configuration. A body whose net force nearly cancels (the middle body of a symmetric
# configuration, the centre of a sphere) has |F_i| ~ 0 while its pair terms do not, so
# |dF_i| / |F_i| would measure the cancellation, not the method. Such bodies are measured
# against 1e-3 of the RMS force instead (bodies with |F_i| above that are untouched).
FLOOR_FRACTION = 1e-3

ProgressCallback = Callable[[int, int, str], None]


def relative_difference(force, reference, *, floor_fraction: float = FLOOR_FRACTION):
    """Per-body norm-wise relative difference ``|F_i - R_i| / max(|R_i|, floor)``.

    Args:
        force: ``[n, 3]`` forces (any units).
        reference: ``[n, 3]`` reference forces, same units.
        floor_fraction: the floor is ``floor_fraction * rms_i |R_i|`` (see
            :data:`FLOOR_FRACTION` for why a floor is needed).

    Returns:
        ``(difference, floor)``: ``[n]`` float64 NumPy array (dimensionless) and the floor
        (force units).
    """
    force = np.asarray(force, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if force.shape != reference.shape or force.ndim != 2 or force.shape[1] != 3:
        raise ValueError(
            f"force and reference must both have shape [n, 3], got {force.shape} and {reference.shape}"
        )
    norm = np.linalg.norm(reference, axis=1)
    floor = floor_fraction * float(np.sqrt(np.mean(norm**2)))
    # The tiny absolute floor only guards an all-zero reference (no forces at all).
    floor = max(floor, np.finfo(np.float64).tiny)
    return np.linalg.norm(force - reference, axis=1) / np.maximum(norm, floor), floor


def hand_coded_status(potential: str | PairPotential, method: str = "analytic") -> str | None:
    """``None`` when hand-coded ``method`` applies to ``potential``, else the reason it does not.

    The answer comes from :func:`nbody_core.physics.forces.acceleration_function`, the one place that
    decides which kernels apply, so the lab can never disagree with the simulator.
    """
    try:
        _forces.acceleration_function(method, potential)
    except ValueError:
        if method not in _forces.FORCE_METHODS:
            raise
        name = get_potential(potential).name
        return (
            f"Newtonian only / not applicable: the hand-coded {method!r} kernel computes "
            f"Newtonian gravity, not the {name!r} potential"
        )
    return None


def _offered(name: str) -> bool:
    """Every registered method, less Pallas where it would run in its (slow) interpreter."""
    return name != "pallas" or not pallas_interpret_default()


def _hand_coded_methods() -> list[str]:
    """Registered kernels that are hand-coded for Newtonian gravity (the ones that refuse
    another potential); autodiff methods, tiled or not, apply to any potential."""
    methods = []
    for method in filter(_offered, _forces.FORCE_METHODS):
        try:
            _forces.acceleration_function(method, "yukawa")
        except ValueError:
            methods.append(method)
    return sorted(methods)


class ForceComparison(NamedTuple):
    """Forces on every body by autodiff and by the hand-coded kernel, in one dtype.

    Attributes:
        potential: name of the pair potential.
        dtype: ``"float64"`` or ``"float32"``: the precision both methods computed in.
        hand_coded_method: name of the hand-coded kernel (``"analytic"`` by default).
        position: ``[n, 3]`` positions, length units (float64 copy of the input).
        mass: ``[n]`` masses, mass units.
        autodiff: ``[n, 3]`` forces ``-dU/dx`` by ``jax.grad`` (NumPy, in ``dtype``),
            mass * length / time**2 units.
        hand_coded: ``[n, 3]`` forces of the hand-coded kernel, or ``None`` when it does not
            apply to ``potential`` (see ``hand_coded_status``).
        hand_coded_status: ``None`` when the hand-coded kernel applies, else the reason
            ("Newtonian only / not applicable ...").
        relative_difference: ``[n]`` per-body ``|F_ad - F_hc| / max(|F_hc|, floor)``, or
            ``None`` when the hand-coded kernel does not apply.
        floor: the denominator floor (force units), ``nan`` when not applicable.
    """

    potential: str
    dtype: str
    hand_coded_method: str
    position: np.ndarray
    mass: np.ndarray
    autodiff: np.ndarray
    hand_coded: np.ndarray | None
    hand_coded_status: str | None
    relative_difference: np.ndarray | None
    floor: float

    @property
    def applicable(self) -> bool:
        return self.hand_coded is not None


@partial(jax.jit, static_argnames=("potential",))
def _autodiff_forces(position, mass, params, potential):
    return _forces.forces_autodiff(position, mass, params, potential)


@partial(jax.jit, static_argnames=("method",))
def _hand_coded_forces(position, mass, params, method):
    acceleration_fn = _forces.acceleration_function(method, NEWTONIAN)
    return mass[:, None] * acceleration_fn(position, mass, params)


def _check_dtype(dtype) -> str:
    name = dtype if isinstance(dtype, str) else jnp.dtype(dtype).name
    DTYPES.get(name)
    return name


def compare_forces(
    state: ParticleState,
    *,
    params: PhysicsParams,
    potential: str | PairPotential = NEWTONIAN,
    dtype: str = "float64",
    hand_coded_method: str = "analytic",
) -> ForceComparison:
    """Forces on every body by autodiff and by the hand-coded kernel, side by side.

    Both methods see the same inputs, cast to ``dtype`` (state and params), so their
    difference is the arithmetic of the two methods in that precision: near 1e-16 in float64,
    near 1e-7 in float32.

    Args:
        state: the configuration (only positions and masses are used).
        params: physical constants (G, softening, screening length, power index).
        potential: a :class:`PairPotential` or its registry name.
        dtype: ``"float64"`` or ``"float32"``.
        hand_coded_method: a hand-coded Newtonian kernel registered in
            :data:`nbody_core.physics.forces.FORCE_METHODS` (``"analytic"``, ``"tiled"``, ...).

    Raises:
        ValueError: for an unknown dtype, potential or method, or when the forces are not
            finite (e.g. coincident bodies without softening, or a screening length of 0).
    """
    dtype = _check_dtype(dtype)
    potential = get_potential(potential)
    hand_coded_methods = _hand_coded_methods()
    if hand_coded_method not in hand_coded_methods:
        raise ValueError(
            f"unknown hand-coded method {hand_coded_method!r}; choose one of {hand_coded_methods}"
        )
    cast = cast_state(state, DTYPES[dtype])
    cast_params = PhysicsParams(*params).astype(DTYPES[dtype])
    autodiff = np.asarray(_autodiff_forces(cast.position, cast.mass, cast_params, potential))
    if not np.isfinite(autodiff).all():
        raise ValueError(
            f"autodiff forces are not finite for the {potential.name!r} potential with {params}; "
            "check for coincident bodies without softening or a non-positive screening length"
        )
    status = hand_coded_status(potential, hand_coded_method)
    hand_coded = difference = None
    floor = float("nan")
    if status is None:
        hand_coded = np.asarray(
            _hand_coded_forces(cast.position, cast.mass, cast_params, hand_coded_method)
        )
        difference, floor = relative_difference(autodiff, hand_coded)
    return ForceComparison(
        potential=potential.name,
        dtype=dtype,
        hand_coded_method=hand_coded_method,
        position=np.asarray(state.position, dtype=np.float64),
        mass=np.asarray(state.mass, dtype=np.float64),
        autodiff=autodiff,
        hand_coded=hand_coded,
        hand_coded_status=status,
        relative_difference=difference,
        floor=floor,
    )


def compare_forces_all_dtypes(
    state: ParticleState,
    *,
    params: PhysicsParams,
    potential: str | PairPotential = NEWTONIAN,
    hand_coded_method: str = "analytic",
) -> dict[str, ForceComparison]:
    """:func:`compare_forces` in float64 and float32: ``{"float64": ..., "float32": ...}``."""
    return {
        dtype: compare_forces(
            state, params=params, potential=potential, dtype=dtype, hand_coded_method=hand_coded_method
        )
        for dtype in DTYPES
    }


def precision_difference(low: ForceComparison, high: ForceComparison) -> np.ndarray:
    """Per-body relative difference of ``low``'s autodiff forces from ``high``'s (``[n]``).

    Applies to every potential: with ``low`` in float32 and ``high`` in float64 it measures
    what single precision costs, whether or not a hand-coded kernel exists.
    """
    if low.potential != high.potential or low.position.shape != high.position.shape:
        raise ValueError("precision_difference needs two comparisons of the same configuration")
    return relative_difference(low.autodiff, high.autodiff)[0]


# ----------------------------------------------------------------------------------------
# Timing


DEFAULT_NUMPY_LOOP_MAX_N = 256  # ~0.1 s per call here; above it the loop is extrapolated


class TimingRecord(NamedTuple):
    """One (method, N) timing.

    Attributes:
        method: timing method name (see :func:`timing_methods`).
        num_bodies: N.
        run_ms: steady-state time per acceleration evaluation (median of the repeats), ms.
        first_call_ms: JAX: the first call, tracing and compilation included (ms); ``None``
            for NumPy methods.
        compile_ms: JAX: ``first_call_ms - run_ms`` (clamped at 0 when timing noise makes it
            negative), the one-off cost; ``None`` for NumPy.
        extrapolated: ``True`` when ``run_ms`` was not measured but extrapolated as
            ``O(N**2)`` from the timing at ``extrapolated_from`` bodies (NumPy loop only).
        extrapolated_from: the measured N the extrapolation starts from, else ``None``.
        speedup_vs_numpy_loop: NumPy-loop ``run_ms`` at this N divided by this ``run_ms``;
            ``None`` if the loop was not timed.
        speedup_extrapolated: ``True`` when that speedup rests on an extrapolated loop time.
        run_min_ms, run_max_ms: the fastest and slowest of the repeats (the spread around the
            median ``run_ms``; scaled like it when extrapolated); ``None`` if not recorded.
    """

    method: str
    num_bodies: int
    run_ms: float
    first_call_ms: float | None
    compile_ms: float | None
    extrapolated: bool
    extrapolated_from: int | None
    speedup_vs_numpy_loop: float | None
    speedup_extrapolated: bool = False
    run_min_ms: float | None = None
    run_max_ms: float | None = None


class TimingResult(NamedTuple):
    """All timings of one sweep, plus how it was run."""

    records: tuple[TimingRecord, ...]
    methods: tuple[str, ...]
    num_bodies: tuple[int, ...]
    repeats: int
    numpy_loop_max_n: int
    device: str

    def record(self, method: str, num_bodies: int) -> TimingRecord:
        for r in self.records:
            if r.method == method and r.num_bodies == num_bodies:
                return r
        raise KeyError((method, num_bodies))

    def as_dict(self) -> dict:
        """JSON-ready dict (records as a list of dicts)."""
        out = self._asdict()
        out["records"] = [r._asdict() for r in self.records]
        out["methods"] = list(self.methods)
        out["num_bodies"] = list(self.num_bodies)
        return out


_BASE_TIMING_METHODS = {
    "numpy_loop": "NumPy double loop over pairs (pure Python, O(N^2) interpreted)",
    "numpy_vectorized": "NumPy [N, N, 3] broadcast",
    "jax_autodiff": "JAX jit(-grad U / m) by autodiff",
    "jax_analytic": "JAX jit hand-coded Newtonian kernel",
}


def timing_methods() -> dict[str, str]:
    """Timing method names and descriptions: the four base methods plus ``jax_<name>`` for
    every faster kernel registered in :data:`nbody_core.physics.forces.FORCE_METHODS`."""
    methods = dict(_BASE_TIMING_METHODS)
    for name, method in _forces.FORCE_METHODS.items():
        if name not in ("autodiff", "analytic") and _offered(name):
            methods[f"jax_{name}"] = f"JAX {method.description}"
    return methods


def _timing_configuration(n: int, seed: int):
    rng = np.random.default_rng([seed, n])
    position = rng.normal(size=(n, 3))
    mass = np.full(n, 1.0 / n)
    return position, mass


def _time_calls(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _spread_ms(times: list[float]) -> tuple[float, float, float]:
    """(median, min, max) of ``times`` (seconds), in ms."""
    return 1e3 * statistics.median(times), 1e3 * min(times), 1e3 * max(times)


def _time_numpy(kernel, position, mass, params: PhysicsParams, repeats: int) -> tuple[float, float, float]:
    """(median, min, max) ms of ``repeats`` calls."""
    G, softening = float(params.G), float(params.softening)
    return _spread_ms(_time_calls(lambda: kernel(position, mass, G=G, softening=softening), repeats))


def _time_jax(method: str, position, mass, params: PhysicsParams, repeats: int) -> tuple[float, tuple[float, float, float]]:
    """(first call ms, (median, min, max) ms of ``repeats`` further calls)."""
    acceleration_fn = _forces.acceleration_function(method, NEWTONIAN)
    # A fresh jit wrapper per measurement, so the first call really traces and compiles. The
    # dashboard turns on JAX's persistent compilation cache, which would turn a repeated
    # "compile" into a disk read; a per-measurement constant in the program (a no-op select
    # on G, folded away by XLA) gives it a cache key of its own.
    nonce = float(secrets.randbits(52))

    def fn_uncached(p, m, prm):
        return acceleration_fn(p, m, prm._replace(G=jnp.where(prm.G == nonce, prm.G, prm.G)))

    fn = jax.jit(fn_uncached)
    p, m = jnp.asarray(position), jnp.asarray(mass)
    prm = PhysicsParams(*params).astype(jnp.float64)
    start = time.perf_counter()
    fn(p, m, prm).block_until_ready()
    first_call = time.perf_counter() - start
    return 1e3 * first_call, _spread_ms(_time_calls(lambda: fn(p, m, prm).block_until_ready(), repeats))


def time_force_methods(
    ns: Sequence[int],
    methods: Sequence[str] | None = None,
    repeats: int = 3,
    progress_callback: ProgressCallback | None = None,
    *,
    numpy_loop_max_n: int = DEFAULT_NUMPY_LOOP_MAX_N,
    params: PhysicsParams = PhysicsParams(softening=0.01),
    seed: int = 0,
) -> TimingResult:
    """Time accelerations of Newtonian gravity against N for each method, float64.

    Every method computes the same softened Newtonian accelerations of the same random
    configuration (positions ~ N(0, 1), masses 1/N, fixed by ``seed`` and N). JAX methods are
    compiled by a fresh ``jax.jit`` per (method, N), never served from JAX's persistent
    compilation cache: the first call (trace + compile + run) is timed apart from the steady state (median of ``repeats`` further calls, each ending in
    ``block_until_ready``); ``compile_ms = first_call_ms - run_ms``. The NumPy double loop
    is interpreted Python, O(N**2): it is measured only up to ``numpy_loop_max_n`` bodies and
    extrapolated as ``t(N) = t(N0) (N / N0)**2`` above, from the largest measured N0 (an
    extra measurement at ``numpy_loop_max_n`` if no requested N is below the cap); those
    records say ``extrapolated=True``.

    Args:
        ns: body counts, each in ``[2, MAX_BODIES]``.
        methods: names from :func:`timing_methods` (all of them by default).
        repeats: steady-state calls per (method, N), >= 1.
        progress_callback: called as ``progress_callback(done, total, message)`` after each
            (method, N) measurement.
        numpy_loop_max_n: largest N the double loop is really run at.
        params: G and softening (N-body units).
        seed: seed of the random configurations.

    Returns:
        a :class:`TimingResult`; ``records`` holds one :class:`TimingRecord` per (method, N),
        ordered by method then N.

    Raises:
        ValueError: for an empty or invalid ``ns``, unknown methods or ``repeats < 1``.
    """
    ns = tuple(sorted(set(_check_num_bodies(n) for n in ns)))
    if not ns:
        raise ValueError("ns must list at least one body count")
    available = timing_methods()
    methods = tuple(available) if methods is None else tuple(dict.fromkeys(methods))
    if not methods:
        raise ValueError("methods must list at least one timing method")
    unknown = [m for m in methods if m not in available]
    if unknown:
        raise ValueError(f"unknown timing method(s) {unknown}; choose from {sorted(available)}")
    if int(repeats) != repeats or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    repeats = int(repeats)
    if int(numpy_loop_max_n) != numpy_loop_max_n or numpy_loop_max_n < 2:
        raise ValueError(f"numpy_loop_max_n must be an integer >= 2, got {numpy_loop_max_n!r}")

    total = len(ns) * len(methods)
    done = 0
    # (method, N) -> ((median, min, max) ms, first call ms, extrapolated from N)
    raw: dict[tuple[str, int], tuple[tuple[float, float, float], float | None, int | None]] = {}
    for method in methods:
        if method == "numpy_loop":
            measured = [n for n in ns if n <= numpy_loop_max_n]
            anchor = max(measured) if measured else int(numpy_loop_max_n)
            anchor_ms = None
            for n in ns:
                if n <= numpy_loop_max_n:
                    position, mass = _timing_configuration(n, seed)
                    raw[method, n] = (_time_numpy(accelerations_loop, position, mass, params, repeats), None, None)
                    if n == anchor:
                        anchor_ms = raw[method, n][0]
                else:
                    if anchor_ms is None:
                        position, mass = _timing_configuration(anchor, seed)
                        anchor_ms = _time_numpy(accelerations_loop, position, mass, params, repeats)
                    raw[method, n] = (tuple(t * (n / anchor) ** 2 for t in anchor_ms), None, anchor)
                done += 1
                if progress_callback is not None:
                    progress_callback(done, total, f"{method} N={n}")
            continue
        for n in ns:
            position, mass = _timing_configuration(n, seed)
            if method == "numpy_vectorized":
                raw[method, n] = (_time_numpy(accelerations_vectorized, position, mass, params, repeats), None, None)
            else:
                first_ms, run = _time_jax(method.removeprefix("jax_"), position, mass, params, repeats)
                raw[method, n] = (run, first_ms, None)
            done += 1
            if progress_callback is not None:
                progress_callback(done, total, f"{method} N={n}")

    records = []
    for method in methods:
        for n in ns:
            (run_ms, run_min_ms, run_max_ms), first_ms, extrapolated_from = raw[method, n]
            loop = raw.get(("numpy_loop", n))
            records.append(
                TimingRecord(
                    method=method,
                    num_bodies=n,
                    run_ms=run_ms,
                    first_call_ms=first_ms,
                    compile_ms=None if first_ms is None else max(first_ms - run_ms, 0.0),
                    extrapolated=extrapolated_from is not None,
                    extrapolated_from=extrapolated_from,
                    speedup_vs_numpy_loop=None if loop is None else loop[0][0] / run_ms,
                    speedup_extrapolated=loop is not None and loop[2] is not None,
                    run_min_ms=run_min_ms,
                    run_max_ms=run_max_ms,
                )
            )
    return TimingResult(
        records=tuple(records),
        methods=methods,
        num_bodies=ns,
        repeats=repeats,
        numpy_loop_max_n=int(numpy_loop_max_n),
        device=str(jax.devices()[0]),
    )


def _check_num_bodies(n) -> int:
    try:
        is_integer = not isinstance(n, bool) and int(n) == n
    except (TypeError, ValueError):
        is_integer = False
    if not is_integer:
        raise ValueError(f"body counts must be integers, got {n!r}")
    n = int(n)
    if not 2 <= n <= MAX_BODIES:
        raise ValueError(f"body count {n} is outside [2, {MAX_BODIES}]")
    return n
