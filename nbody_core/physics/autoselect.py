"""``forces="auto"``: the fastest exact kernel for a platform, dtype, N and gradient use.

:func:`select_forces` is a pure function of ``(platform, dtype, n, needs_grad, newtonian)``
over :data:`CROSSOVERS`, a small table of measured crossovers kept here with the command that
produced each figure. Every kernel it can pick computes the same sums as the reference kernel
(to round-off), so the choice changes speed, never results.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["AUTO", "CROSSOVERS", "Crossover", "resolve_forces", "select_forces"]

AUTO = "auto"


class Crossover(NamedTuple):
    """One row of the selection table: ``method`` is fastest for ``n <= n_max``.

    Attributes:
        platform: ``"cpu"``, ``"gpu"`` or ``"other"`` (TPU and the rest: no measurements,
            the GPU rows' shape is assumed with XLA-only kernels).
        newtonian: the row applies to Newtonian gravity (hand-coded kernels) or to any other
            pair potential (autodiff kernels only).
        needs_grad: ``False``: forward only; ``True``: gradients will be taken through it.
            Callers that cannot tell ask with ``None``, answered like ``True`` (a kernel with a
            cheap reverse pass whose forward is as fast).
        n_max: largest N of the row (``None``: no limit); rows are tried in order.
        method: the force method picked.
        evidence: the measurement behind the row.
    """

    platform: str
    newtonian: bool
    needs_grad: bool
    n_max: int | None
    method: str
    evidence: str


# How each figure was produced:
#   CPU (2-core AVX-512 EPYC, jax 0.10.2): `python benchmarks/bench_performance.py` (table in
#     benchmarks/results/performance.md) and the gradient sweep in that script's `gradient`
#     group run at N = 3, 16, 64 (2026-11-30, load ~13: ratios in one run). The tiled rows
#     were re-measured after the kernel moved to 4-row float64 tiles above N = 64 (issue 13,
#     2026-11-30, load ~12-19; min process CPU time of interleaved repeats, side by side with
#     REBOUND; benchmarks/bench_cpu_variants.py for the force rows).
#   GPU (one H200, jax 0.11.2): issue 13's table (`bench_performance.py --device gpu`); rows
#     marked "expected" are not measured yet: `python benchmarks/bench_gpu.py` measures them.
CROSSOVERS: tuple[Crossover, ...] = (
    Crossover("cpu", True, False, None, "tiled",
              "f64 forces, 4-row tiles above N=64: N=1000 1.58 ms vs REBOUND 2.13 (CPU "
              "time), analytic 25 ms; N=4096 24.4 vs REBOUND 35.4 ms, analytic 374 ms; "
              "N=3 figure-eight 4.97 vs 3.7 M steps/s analytic"),
    Crossover("cpu", True, True, None, "tiled_custom_vjp",
              "grad through 200 leapfrog steps: N=3 0.17 ms vs 0.24 analytic / 0.32 tiled; "
              "N=16 0.49 vs 11.2 / 5.3 ms; N=64 15.4 vs 153 / 168 ms; with 4-row reverse "
              "tiles N=64 grad/forward 3.3-3.4x (CPU time: 5.3 / 1.57 ms; 5.8-6.2x "
              "before); same forward as tiled"),
    Crossover("cpu", False, False, None, "autodiff_tiled",
              "N=1000 f64 5.58 ms vs autodiff 18.7 ms; N=4096 65 vs 609 ms"),
    Crossover("cpu", False, True, None, "autodiff_tiled",
              "grad N=64: 14.8x forward vs autodiff; O(n) memory"),
    Crossover("gpu", True, False, 16384, "analytic",
              "H200 f32 G pairs/s analytic vs tiled: 72 vs 13 at N=4096, 176 vs 48 at "
              "N=16384; leapfrog N=1000 69,500 vs 4,280 steps/s"),
    Crossover("gpu", True, False, None, "pallas",
              "expected: n^2 memory rules out analytic at N=65536 (tiled 146 G pairs/s); "
              "pallas unmeasured"),
    Crossover("gpu", True, True, 16384, "analytic",
              "H200 grad through 200 steps N=256 f64: analytic 8.1 ms vs tiled_custom_vjp 89"),
    Crossover("gpu", True, True, None, "pallas",
              "expected: Pallas forward, tiled XLA derivative rule, O(n) memory; unmeasured"),
    Crossover("gpu", False, False, 16384, "autodiff", "assumed like the Newtonian GPU rows"),
    Crossover("gpu", False, True, 16384, "autodiff", "assumed like the Newtonian GPU rows"),
    Crossover("gpu", False, False, None, "autodiff_tiled", "O(n) memory above the crossover"),
    Crossover("gpu", False, True, None, "autodiff_tiled", "O(n) memory above the crossover"),
    Crossover("other", True, False, 16384, "analytic", "unmeasured: GPU shape, XLA kernels"),
    Crossover("other", True, True, 16384, "analytic", "unmeasured: GPU shape, XLA kernels"),
    Crossover("other", True, False, None, "tiled", "unmeasured: O(n) memory"),
    Crossover("other", True, True, None, "tiled_custom_vjp", "unmeasured: O(n) memory"),
    Crossover("other", False, False, 16384, "autodiff", "unmeasured"),
    Crossover("other", False, True, 16384, "autodiff", "unmeasured"),
    Crossover("other", False, False, None, "autodiff_tiled", "unmeasured: O(n) memory"),
    Crossover("other", False, True, None, "autodiff_tiled", "unmeasured: O(n) memory"),
)


def _platform_family(platform: str) -> str:
    if platform in ("gpu", "cuda", "rocm"):
        return "gpu"
    return "cpu" if platform == "cpu" else "other"


def select_forces(
    platform: str, dtype, n: int, *, needs_grad: bool | None = None, newtonian: bool = True
) -> str:
    """The fastest exact force method for one configuration (a pure table lookup).

    Args:
        platform: JAX platform name (``"cpu"``, ``"gpu"``, ``"cuda"``, ``"rocm"``, ``"tpu"``).
        dtype: floating dtype of the positions (float32 or float64). No row depends on it
            yet: the measured crossovers are the same for both.
        n: number of bodies.
        needs_grad: whether reverse-mode gradients will be taken through the kernel;
            ``None`` (unknown) is answered like ``True``.
        newtonian: ``False`` for any other pair potential (only the autodiff kernels apply).

    Returns:
        a method name of :data:`nbody_core.physics.forces.FORCE_METHODS`.

    Raises:
        ValueError: for ``n < 1`` or a non-floating dtype.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not jnp.issubdtype(jnp.dtype(dtype), jnp.floating):
        raise ValueError(f"dtype must be floating, got {jnp.dtype(dtype)}")
    family = _platform_family(platform)
    grad = needs_grad is not False
    for row in CROSSOVERS:
        if (row.platform, row.newtonian, row.needs_grad) != (family, newtonian, grad):
            continue
        if row.n_max is None or n <= row.n_max:
            return row.method
    raise AssertionError(f"no selection row for {(family, newtonian, grad)}")  # table is total


def resolve_forces(
    forces: str, *, n: int, dtype, newtonian: bool = True, needs_grad: bool | None = None,
    platform: str | None = None,
) -> str:
    """``forces`` itself, or for ``"auto"`` the method :func:`select_forces` picks.

    ``platform`` defaults to JAX's default backend (where an un-placed computation runs).
    """
    if forces != AUTO:
        return forces
    return select_forces(platform or jax.default_backend(), dtype, n, needs_grad=needs_grad,
                         newtonian=newtonian)
