"""How an adaptive run (dopri8, IAS15) is differentiated: the loop its steps run in.

Contract: an adaptive solver runs ``loop(cond_fn, body_fn, init)`` with the loop of
:func:`loop_of` for its ``adjoint`` option. ``"direct"`` (the default under a transformation):
:func:`bounded_while_loop`, a ``lax.scan`` over ``max_steps`` whose steps after the end are
skipped (``lax.cond``), in chunks of :data:`CHECKPOINT_STEPS` steps rematerialized by
``jax.checkpoint`` in reverse mode; every transformation works (grad, jacfwd, jacrev, jvp,
hessian, vmap, jit). ``"forward"``: ``lax.while_loop``, which JAX differentiates in forward
mode only (jvp, jacfwd; vmap and jit work) but which stops at the end, also under ``vmap``.

Why this and not a backsolve adjoint (a ``custom_vjp`` integrating the adjoint equations
backwards, diffrax's ``BacksolveAdjoint``): a ``custom_vjp`` has no forward mode, so
``jax.hessian`` (forward over reverse) and ``jacfwd`` would fail again, which issue 22 forbids;
and integrating a close encounter backwards does not retrace the forward steps, so its gradient
is not the derivative of what was computed. diffrax's ``RecursiveCheckpointAdjoint`` is a
``custom_vjp`` as well (reverse mode only); the loop here is diffrax's ``DirectAdjoint`` (nested
scans with masked steps: both modes). Measured (benchmarks/results/adjoint.md, figure-eight
over one period, max_steps 1024, load ~18 on 2 cores, so times are noisy): ``grad`` costs 1.9x
(dopri8, 136 steps) and 7-11x (IAS15, 261 steps: its predictor-corrector passes are a masked
scan too) the traced forward run with chunks of 16-64 steps; as one flat scan (no
rematerialization) XLA's temporary memory is 6.1 MiB (dopri8) and 28 MiB (IAS15) against
0.4 and 1.9 MiB with K = 64, and it grows with ``max_steps`` and N, so chunks it is.

Step-size control is not differentiated: the solvers take ``lax.stop_gradient`` of the error
estimate that picks the next step (and of the first step), as diffrax does. The derivative is
then that of the computed map with its steps held fixed: it differs from the derivative of the
exact flow by about the tolerance, and from finite differences of the solver (whose steps move
with the input) by as much.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import jax
import jax.numpy as jnp
from jax import lax

from .solution import RESULTS

__all__ = ["ADJOINTS", "CHECKPOINT_STEPS", "DEFAULT_TRACED_MAX_STEPS", "bounded_while_loop", "loop_of", "is_traced",
           "result_code"]

Carry = TypeVar("Carry")

#: The values of an adaptive solver's ``adjoint`` option (see the module docstring).
ADJOINTS = ("direct", "forward")
#: Steps per rematerialized chunk of the ``"direct"`` loop. Reverse mode keeps the loop's carry
#: once per chunk and one chunk's residuals at a time: memory ~ (max_steps / K) carries + K
#: steps' residuals, least near K ~ sqrt(max_steps * residuals per step / carry); a chunk is
#: computed twice. The carry holds the saved snapshots (``2 (num_saves + 1) n 3`` floats), so
#: at the default max_steps (4096) and 100 saves K = 64 = sqrt(4096) balances the two; K = 16
#: was as fast and smaller at N = 3 with one save (benchmarks/results/adjoint.md), where the
#: carry is tiny.
CHECKPOINT_STEPS = 64
#: ``max_steps`` of an adaptive run under a transformation when the caller gives none: the
#: ``"direct"`` loop is as long as ``max_steps`` (under ``vmap`` every step of it runs), so the
#: eager default (1,000,000) would not do; 4096 is diffrax's ``diffeqsolve`` default.
DEFAULT_TRACED_MAX_STEPS = 4096


def bounded_while_loop(
    cond_fn: Callable[[Carry], jax.Array],
    body_fn: Callable[[Carry], Carry],
    init: Carry,
    *,
    max_steps: int,
    checkpoint_steps: int | None = None,
) -> Carry:
    """``lax.while_loop(cond_fn, body_fn, init)`` as a scan of at most ``max_steps`` bodies.

    Each iteration runs ``body_fn`` only while ``cond_fn`` holds (``lax.cond``; under ``vmap``
    with a batched condition both branches run and a select keeps one), so the result equals
    the while loop's when that ends within ``max_steps`` iterations; ``cond_fn`` must itself
    stop by then (the solvers count their steps), since whole chunks run. Reverse-mode
    differentiable, unlike ``lax.while_loop``.

    Args:
        cond_fn, body_fn, init: as for ``lax.while_loop``.
        max_steps: static bound on the iterations.
        checkpoint_steps: iterations per chunk; each chunk is a ``jax.checkpoint`` (its
            residuals recomputed in reverse mode) and skipped as a whole once ``cond_fn`` fails.
            None: one flat scan, every residual kept.
    """

    def step(carry, _):
        return lax.cond(cond_fn(carry), body_fn, lambda c: c, carry), None

    if checkpoint_steps is None or checkpoint_steps >= max_steps:
        return lax.scan(step, init, None, length=max_steps)[0]

    @jax.checkpoint
    def chunk(carry):
        return lax.scan(step, carry, None, length=checkpoint_steps)[0]

    def outer(carry, _):
        return lax.cond(cond_fn(carry), chunk, lambda c: c, carry), None

    return lax.scan(outer, init, None, length=-(-max_steps // checkpoint_steps))[0]


def loop_of(adjoint: str, max_steps: int):
    """``loop(cond_fn, body_fn, init)`` for the ``adjoint`` option (see the module docstring),
    chunks of :data:`CHECKPOINT_STEPS` (read when the run is traced).

    Raises:
        ValueError: an unknown ``adjoint``.
    """
    if adjoint == "forward":
        return lax.while_loop
    if adjoint == "direct":
        return lambda cond_fn, body_fn, init: bounded_while_loop(
            cond_fn, body_fn, init, max_steps=max_steps, checkpoint_steps=CHECKPOINT_STEPS)
    raise ValueError(f"adjoint must be one of {ADJOINTS}, got {adjoint!r}")


def is_traced(*trees) -> bool:
    """Whether any leaf of ``trees`` is a JAX tracer (the run is inside grad, vmap, jit...)."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(trees))


def result_code(*, reached_end, steps_exhausted, finite) -> jax.Array:
    """The int32 :class:`RESULTS` code of a traced run, in the eager runs' order of precedence."""
    return jnp.select(
        [reached_end, steps_exhausted, ~finite],
        [int(RESULTS.successful), int(RESULTS.max_steps_reached), int(RESULTS.nonfinite)],
        int(RESULTS.step_size_underflow),
    ).astype(jnp.int32)
