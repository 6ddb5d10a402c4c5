"""Sums whose rounding does not depend on the batch they are computed in.

Contract: :func:`ordered_sum` adds the entries of an axis in one fixed pairwise order, as
elementwise additions, so a member's diagnostics are the same bytes whether it is computed
alone, vmapped with 3 others or with 127, on one device or sharded over four.

Why: ``jnp.sum`` lowers to an XLA reduce whose summation order XLA picks per *shape*. On
the CPU, vmapping a per-member ``jnp.sum`` over a batch of fewer than 8 float64 members
vectorizes along the summed axis (partial sums in SIMD lanes, combined at the end); from 8
members on it vectorizes along the batch axis (one running sum per member). The two orders
round differently: an ensemble's energies and summaries changed by an ulp with the
per-device chunk size (measured: 1 device x 16 members vs 4 devices x 4 members, or chunks
of 8 vs 16). An elementwise addition has one IEEE result whatever the layout around it,
so a fixed tree of them does not depend on the batch.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
from jax import Array

__all__ = ["ordered_sum"]


def ordered_sum(x: Array, axis: int | Sequence[int] | None = None) -> Array:
    """Sum over ``axis`` in a fixed pairwise order (batch-invariant ``jnp.sum``).

    The entries of the summed axis (the axes flattened in row-major order when several are
    given; every axis for ``None``) are added as a binary tree: entry ``i`` of the first
    half with entry ``i`` of the second, the odd last entry carried to the next level,
    until one is left. ``log2(n)`` elementwise additions, no reduce: XLA cannot reorder
    them, so the result is bit-identical under any ``vmap`` batch size or sharding. The
    pairwise order also bounds the round-off at ``O(log n)`` ulps (Higham 1993), like
    XLA's own tree reductions.

    Args:
        x: array to sum.
        axis: an axis, a sequence of axes, or None (all).

    Returns:
        ``x`` summed over ``axis`` (the axis removed), same dtype.
    """
    x = jnp.asarray(x)
    if axis is None:
        axis = tuple(range(x.ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = tuple(a % x.ndim for a in axes) if x.ndim else ()
    if len(set(axes)) != len(axes):
        raise ValueError(f"repeated axis in {axis!r}")
    x = jnp.moveaxis(x, axes, tuple(range(len(axes))))
    rest = x.shape[len(axes):]
    x = x.reshape((-1, *rest))
    if x.shape[0] == 0:
        return jnp.zeros(rest, x.dtype)
    while x.shape[0] > 1:
        half = x.shape[0] // 2
        paired = x[:half] + x[half:2 * half]
        x = paired if x.shape[0] % 2 == 0 else jnp.concatenate([paired, x[2 * half:]])
    return x[0]
