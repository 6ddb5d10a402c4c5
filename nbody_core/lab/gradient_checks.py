"""Gradient checks: autodiff against central finite differences, and what each costs.

``jax.grad`` through the jitted simulator is exact; these functions show it on a log density
(:mod:`nbody_core.infer.inference`): the V-shaped error of finite differences against the step, and
the cost of a forward run, its autodiff gradient and its ``2 d``-run finite-difference gradient.
"""

from __future__ import annotations

import time
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nbody_core.infer.inference import scaling_problem

__all__ = [
    "GradientCost",
    "autodiff_gradient",
    "finite_difference_gradient",
    "forward_value",
    "gradient_error_sweep",
    "measure_gradient_costs",
    "time_call",
    "time_calls",
]


@jax.jit
def finite_difference_gradient(fn, x, h):
    """Central finite differences ``(f(x + h e_i) - f(x - h e_i)) / 2h`` for every ``i``.

    Costs ``2 d`` evaluations of ``fn``, made one after another (``lax.map``), as a
    finite-difference HMC would pay them.

    Args:
        fn: ``[d] -> scalar``, a ``jax.tree_util.Partial`` (e.g. ``problem.logdensity_fn``).
        x: ``[d]`` point.
        h: step (traced).

    Returns:
        ``[d]`` gradient estimate.
    """
    d = x.shape[0]
    steps = h * jnp.concatenate([jnp.eye(d, dtype=x.dtype), -jnp.eye(d, dtype=x.dtype)])
    values = jax.lax.map(lambda step: fn(x + step), steps)
    return (values[:d] - values[d:]) / (2 * h)


@jax.jit
def autodiff_gradient(fn, x):
    """``jax.grad(fn)(x)``, jitted with ``fn`` (a ``Partial``) as an argument."""
    return jax.grad(fn)(x)


@jax.jit
def forward_value(fn, x):
    """``fn(x)``, jitted with ``fn`` (a ``Partial``) as an argument: the forward cost."""
    return fn(x)


def gradient_error_sweep(fn, x, steps: Sequence[float]) -> dict[str, np.ndarray]:
    """Relative error ``|g_fd(h) - g_ad| / |g_ad|`` (2-norms) for each finite-difference step.

    Truncation error falls as ``h**2`` and round-off grows as ``eps |f| / h``, which gives
    the V-shaped curve with its minimum near ``h ~ (eps |f| / |f'''|)**(1/3)``.

    Args:
        fn: ``[d] -> scalar`` (a ``jax.tree_util.Partial``).
        x: ``[d]`` point.
        steps: finite-difference steps ``h``.

    Returns:
        ``{"h": [m], "relative_error": [m], "autodiff": [d], "finite_difference": [m, d]}``.
    """
    fn = jax.tree_util.Partial(fn) if not isinstance(fn, jax.tree_util.Partial) else fn
    x = jnp.asarray(x)
    steps = np.asarray(steps, dtype=float)
    if steps.ndim != 1 or steps.size == 0 or not np.all(steps > 0):
        raise ValueError("steps must be a non-empty list of positive finite-difference steps h")
    exact = np.asarray(autodiff_gradient(fn, x))
    estimates = np.stack([np.asarray(finite_difference_gradient(fn, x, h)) for h in steps])
    errors = np.linalg.norm(estimates - exact, axis=1) / np.linalg.norm(exact)
    return {"h": steps, "relative_error": errors, "autodiff": exact, "finite_difference": estimates}


class GradientCost(NamedTuple):
    """Measured seconds per call (compile excluded; compile reported apart).

    ``forward_s``, ``autodiff_s``, ``finite_difference_s`` are the best of the repeats (the least
    noisy estimate, for benchmarks); ``*_times_s`` hold every steady call, for a median and its
    spread (what the dashboard shows a student).
    """

    num_parameters: int
    forward_s: float
    autodiff_s: float
    finite_difference_s: float
    forward_compile_s: float
    autodiff_compile_s: float
    finite_difference_compile_s: float
    forward_times_s: tuple[float, ...] = ()
    autodiff_times_s: tuple[float, ...] = ()
    finite_difference_times_s: tuple[float, ...] = ()


def time_calls(fn, *args, repeats: int) -> tuple[tuple[float, ...], float]:
    """Seconds of each of ``repeats`` steady calls, and the compile time (first call minus the
    fastest steady one)."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return tuple(times), max(0.0, compile_s - min(times))


def time_call(fn, *args, repeats: int) -> tuple[float, float]:
    """Best of ``repeats`` steady calls and the compile time (first call minus best), in s."""
    times, compile_s = time_calls(fn, *args, repeats=repeats)
    return min(times), compile_s  # best of several: the least noisy estimate on a shared machine


def measure_gradient_costs(
    dims: Sequence[int] = (2, 8, 32, 128), *, repeats: int = 5, h: float = 1e-5,
    **scaling_options,
) -> list[GradientCost]:
    """Time one log density, its autodiff gradient and its finite-difference gradient at each
    ``d`` on :func:`scaling_problem` (the same simulation for every ``d``).

    Returns:
        one :class:`GradientCost` per ``d``: the best and every steady call of each; the first
        call (compile + one run) is reported apart as ``*_compile_s`` (first call minus the best run).
    """
    results = []
    for d in dims:
        problem = scaling_problem(int(d), **scaling_options)
        x = jnp.asarray(problem.truth)
        fn = problem.logdensity_fn
        forward, forward_c = time_calls(forward_value, fn, x, repeats=repeats)
        ad, ad_c = time_calls(autodiff_gradient, fn, x, repeats=repeats)
        # At least 3 calls, so that a median exists beside the best (issue 28 item 7).
        fd, fd_c = time_calls(finite_difference_gradient, fn, x, h, repeats=max(3, repeats // 2))
        results.append(GradientCost(int(d), min(forward), min(ad), min(fd), forward_c, ad_c, fd_c, forward, ad, fd))
    return results
