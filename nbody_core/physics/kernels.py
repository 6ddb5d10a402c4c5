"""Fast exact pairwise kernels: tiled over blocks of bodies, O(n) memory, same physics.

Every kernel here computes the same sums as the reference kernels in ``forces.py`` /
``potentials.py`` (equal to float64 round-off, tested in ``tests/nbody_core/test_kernels.py``), but walks
the ``n x n`` pair matrix one block of ``block_size`` target bodies at a time (``lax.map``),
so only ``[block_size, n]`` temporaries exist at once: memory grows O(n), and the
temporaries of one block stay in cache. Coordinates are split into x, y, z rows
(structure of arrays) so each pairwise quantity is one contiguous, vectorizable array.

* :func:`acceleration_tiled` -- hand-coded softened Newtonian accelerations.
* :func:`acceleration_tiled_custom_vjp` -- the same forward kernel with a hand-coded, exact,
  tiled derivative rule (a ``custom_jvp``, linear in the tangents: forward mode as it is,
  reverse mode transposed by JAX; for derivatives through whole simulations).
* :func:`acceleration_tangent_tiled` -- that rule: the exact tiled Jacobian-vector product.
* :func:`acceleration_autodiff_tiled` -- ``-grad`` of the tiled potential by ``jax.grad``
  (genuine reverse-mode autodiff; any :class:`PairPotential`).
* :func:`potential_energy_tiled` -- total potential energy without an ``n x n`` array.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import Array, lax
from jax.custom_derivatives import SymbolicZero

from .potentials import NEWTONIAN, PairPotential, get_potential
from .reductions import ordered_sum
from .state import PhysicsParams

__all__ = [
    "default_block_size",
    "force_block_size",
    "acceleration_tiled",
    "acceleration_tiled_custom_vjp",
    "acceleration_tangent_tiled",
    "acceleration_autodiff_tiled",
    "potential_energy_tiled",
]


def default_block_size(dtype) -> int:
    """Target bodies per block of the autodiff and energy kernels, measured on a 2-core
    AVX-512 CPU (benchmarks/bench_performance.py).

    16 rows of float64 (or 32 of float32) times n <= 4096 columns keep each temporary within
    the 512 KiB - 2 MiB L2; larger blocks spill, smaller ones pay loop overhead.
    """
    return 32 if jnp.dtype(dtype).itemsize <= 4 else 16


def force_block_size(dtype, n: int | None = None) -> int:
    """Target bodies per tile of the hand-coded forward force kernel, for ``n`` bodies.

    float64: 16 rows up to N = 64 (one tile up to 16), 4 rows above. Measured on a 2-core
    AVX-512 CPU (XLA:CPU, jax 0.10.2), min process CPU time of interleaved repeats:

    * one force evaluation side by side with REBOUND (benchmarks/bench_cpu_variants.py): at
      N = 1000 1.58 ms in 4-row tiles against 1.74 (2 rows), 2.05 (8) and 1.86 ms (16); at
      N = 4096 24.4 ms against 26.1, 43.9 and 44.6 ms; at N = 128 0.049 against 0.082 ms
      (16). XLA emits its own vectorized row sums for thin ``[4, n]`` tiles; wider ones at
      large N were handed to a library reduction that ran ~1.8x slower here.
    * N = 64, 200 leapfrog steps: 1.58 ms in 16-row tiles against 2.61 (4 rows) and 3.01 ms
      (one [64, 64] tile); vmapped over chunks of 16 / 256 members, 201 / 214 simulations
      per CPU second against 256 / 170 (4 rows) and 191 / 156 (one tile).

    float32: 32 rows, as before. (The autodiff and energy kernels keep
    :func:`default_block_size`: 4 rows measured mixed results for them.)
    """
    if jnp.dtype(dtype).itemsize <= 4:
        return 32
    return 16 if n is not None and n <= 64 else 4


def _blocks(position: Array, block_size: int):
    """Pad ``[n, 3]`` to whole blocks: ``([num_blocks, block_size, 3], padded_n)``."""
    n = position.shape[0]
    num_blocks = -(-n // block_size)
    padded = num_blocks * block_size
    blocks = jnp.pad(position, ((0, padded - n), (0, 0))).reshape(num_blocks, block_size, 3)
    return blocks, padded


def _newtonian_block(x, y, z, mass, target, softening2):
    """Accelerations / G on ``target [b, 3]`` from all bodies (columns ``x, y, z, mass [n]``).

    A pair with ``r**2 + eps**2 == 0`` (the unsoftened self-pair; coincident bodies) is
    masked *before* the square root to the finite ``s**2 = 1`` (jax-md's safe masking): its
    separation ``d`` is exactly 0, so it adds ``m * 0 = 0``, and every derivative of the
    masked branch is finite, so reverse *and* forward mode (``jvp``: tangents times primals)
    give 0 there, not NaN. (Masking to ``inf`` gave the same values and gradients but a
    ``jvp`` of ``0 * inf = NaN``: the tangent of ``s**2 * sqrt(s**2)`` at ``s**2 = inf``.)
    ``m / (s**2 * sqrt(s**2))`` (one square root, one division) is measured faster on
    XLA:CPU than ``rsqrt(s**2)**3`` in float64 (benchmarks/bench_cpu_variants.py), and is
    the same quantity to round-off.

    The sums over sources are :func:`~nbody_core.physics.reductions.ordered_sum`, not
    ``jnp.sum``: an XLA reduce sums in an order XLA picks per shape, so under ``vmap`` the
    accelerations (hence ensemble velocities) changed by an ulp with the batch size (measured
    at N = 100: batches of 16 vs 1, 4 or 8). The fixed pairwise tree is also faster here
    (float64, CPU time, vmapped batches of 16: 0.21 vs 0.25 ms at N = 64, 2.0 vs 2.7 ms at
    N = 256; unbatched N = 1000: 2.1 vs 2.4 ms).
    """
    dx = x[None, :] - target[:, 0:1]
    dy = y[None, :] - target[:, 1:2]
    dz = z[None, :] - target[:, 2:3]
    r2 = dx * dx + dy * dy + dz * dz + softening2
    r2 = jnp.where(r2 > 0, r2, 1.0)
    weight = mass[None, :] / (r2 * jnp.sqrt(r2))
    return jnp.stack(
        [ordered_sum(weight * dx, axis=1), ordered_sum(weight * dy, axis=1), ordered_sum(weight * dz, axis=1)],
        axis=-1,
    )


def acceleration_tiled(
    position: Array, mass: Array, params: PhysicsParams, *, block_size: int | None = None
) -> Array:
    """Softened Newtonian accelerations, tiled: ``a_i = G sum_j m_j (x_j - x_i) / s_ij**3``.

    Same sum as :func:`nbody_core.physics.forces.acceleration_analytic` (float64 round-off), with
    ``[block_size, n]`` temporaries instead of ``[n, n, 3]``. A pair at zero softened distance
    (the self-pair; coincident bodies with zero softening) contributes 0.

    Args:
        position: ``[n, 3]`` positions, length units.
        mass: ``[n]`` masses, mass units.
        params: :class:`PhysicsParams` (``G``, ``softening`` are read).
        block_size: target bodies per tile (static); ``None`` picks
            :func:`force_block_size` for the dtype and ``n``.

    Returns:
        ``[n, 3]`` accelerations, length / time**2 units.
    """
    n = position.shape[0]
    block_size = block_size or force_block_size(position.dtype, n)
    x, y, z = position[:, 0], position[:, 1], position[:, 2]
    softening2 = params.softening**2
    if n <= block_size:  # one tile: no loop (small-N runs are overhead-bound)
        return params.G * _newtonian_block(x, y, z, mass, position, softening2)
    blocks, padded = _blocks(position, block_size)
    out = lax.map(lambda target: _newtonian_block(x, y, z, mass, target, softening2), blocks)
    return params.G * out.reshape(padded, 3)[:n]


def _newtonian_block_jvp(x, y, z, mass, target, softening, position_tangent, target_tangent,
                         mass_tangent, softening_tangent):
    """Tangent of :func:`_newtonian_block` (``G`` factored out), linear in the tangents.

    With ``d = x_j - x_k``, ``u = s**-3`` and the tangents ``xdot, mdot, epsdot``:
    ``adot_k = sum_j m_j u (ddot - 3 s**-2 (d . ddot + eps epsdot) d) + mdot_j u d`` where
    ``ddot = xdot_j - xdot_k``. Every tangent enters linearly, multiplied by primal-only
    factors, so JAX can transpose it (reverse mode). A tangent that is ``None`` (a symbolic
    zero: nothing differentiates through it) drops its terms. ``s == 0`` pairs are masked
    to a finite value before the square root and to 0 after it (jax-md), so every derivative
    of this rule (``hessian`` differentiates it once more) is finite.
    """
    dx = x[None, :] - target[:, 0:1]
    dy = y[None, :] - target[:, 1:2]
    dz = z[None, :] - target[:, 2:3]
    r2 = dx * dx + dy * dy + dz * dz + softening * softening
    valid = r2 > 0
    inv_r = jnp.where(valid, lax.rsqrt(jnp.where(valid, r2, 1.0)), 0.0)
    u = inv_r * inv_r * inv_r
    terms = []
    if position_tangent is not None or softening_tangent is not None:
        dot = 0.0
        if position_tangent is not None:
            ddx = position_tangent[None, :, 0] - target_tangent[:, 0:1]
            ddy = position_tangent[None, :, 1] - target_tangent[:, 1:2]
            ddz = position_tangent[None, :, 2] - target_tangent[:, 2:3]
            dot = dx * ddx + dy * ddy + dz * ddz
        if softening_tangent is not None:
            dot = dot + softening * softening_tangent
        mu = mass[None, :] * u
        c = 3.0 * mu * inv_r * inv_r * dot
        terms.append((-c * dx, -c * dy, -c * dz))
        if position_tangent is not None:
            terms.append((mu * ddx, mu * ddy, mu * ddz))
    if mass_tangent is not None:
        w = mass_tangent[None, :] * u
        terms.append((w * dx, w * dy, w * dz))
    return jnp.stack([jnp.sum(sum(t[k] for t in terms), axis=1) for k in range(3)], axis=-1)


def _tangent_tiling(dtype) -> tuple[int, int]:
    """``(largest N run as one tile, rows per tile above it)`` of the tangent pass (the rule
    reverse mode transposes): the old hand-coded reverse pass's tiling, measured for it
    (float64, gradient through 200 leapfrog steps, process CPU time, min of 11): N = 16
    0.33 ms as one tile against 1.00 ms in 4-row tiles, N = 32 1.31 against 3.4 ms, N = 64
    4.7-5.3 ms in 4- or 8-row tiles against 10.6-10.7 ms in 16-row tiles or one tile.
    float32: one tile up to 64, then 32 rows.
    """
    return (64, 32) if jnp.dtype(dtype).itemsize <= 4 else (32, 4)


def acceleration_tangent_tiled(position, mass, softening, position_tangent, mass_tangent,
                               softening_tangent, block_size=None):
    """``[n, 3]`` tangent (``G`` factored out) of the softened Newtonian accelerations, tiled.

    The Jacobian-vector product for tangents ``position_tangent [n, 3]``, ``mass_tangent
    [n]`` and ``softening_tangent`` (scalar), each ``None`` when zero; linear in them (the
    derivative rule of :func:`acceleration_tiled_custom_vjp` and of the Pallas kernel).

    Each tile is a ``jax.checkpoint``: transposed (reverse mode), its primal factors are
    recomputed tile by tile instead of stored, so memory stays O(n), as in the forward pass.
    """
    n = position.shape[0]
    x, y, z = position[:, 0], position[:, 1], position[:, 2]

    @jax.checkpoint
    def block(target, target_tangent):
        return _newtonian_block_jvp(x, y, z, mass, target, softening, position_tangent,
                                    target_tangent, mass_tangent, softening_tangent)

    single, block_size = (block_size, block_size) if block_size else _tangent_tiling(position.dtype)
    if n <= single:
        return block(position, position_tangent)
    blocks, padded = _blocks(position, block_size)
    if position_tangent is None:
        out = lax.map(lambda target: block(target, None), blocks)
    else:
        tangent_blocks, _ = _blocks(position_tangent, block_size)
        out = lax.map(lambda args: block(*args), (blocks, tangent_blocks))
    return out.reshape(padded, 3)[:n]


@partial(jax.custom_jvp, nondiff_argnums=(4,))
def _tiled_custom_jvp(position, mass, G, softening, block_size):
    return acceleration_tiled(position, mass, PhysicsParams(G=G, softening=softening),
                              block_size=block_size)


def _tiled_jvp(block_size, primals, tangents):
    position, mass, G, softening = primals
    # symbolic_zeros=True: a tangent nothing differentiates through arrives as SymbolicZero.
    position_dot, mass_dot, G_dot, softening_dot = (
        None if isinstance(t, SymbolicZero) else t for t in tangents)
    # The primal through the custom rule itself, so a derivative of this rule (hessian) uses
    # the rule again instead of differentiating the forward loop.
    raw = _tiled_custom_jvp(position, mass, jnp.ones_like(G), softening, block_size)
    out = G * raw
    tangent = jnp.zeros_like(out)
    if not (position_dot is None and mass_dot is None and softening_dot is None):
        tangent = G * acceleration_tangent_tiled(position, mass, softening, position_dot, mass_dot,
                                    softening_dot, block_size)
    if G_dot is not None:
        tangent = tangent + G_dot * raw
    return out, tangent


_tiled_custom_jvp.defjvp(_tiled_jvp, symbolic_zeros=True)


def acceleration_tiled_custom_vjp(
    position: Array, mass: Array, params: PhysicsParams, *, block_size: int | None = None
) -> Array:
    """:func:`acceleration_tiled` with a hand-coded, tiled derivative rule (``jax.custom_jvp``).

    Forward values are those of :func:`acceleration_tiled`. Derivatives (for ``position``,
    ``mass``, ``G`` and ``softening``; ``screening_length`` and ``power_index`` do not enter
    Newtonian gravity) run one more tiled kernel, the exact Jacobian-vector product, instead
    of differentiating the forward loop. The rule is linear in the tangents, so it serves
    forward mode (``jvp``, ``jacfwd``, ``hessian``) as it is and reverse mode (``grad``,
    ``jacrev``) transposed by JAX; its tiles are rematerialized, so memory stays O(n). (The
    name predates the rule: it was a ``custom_vjp``, reverse mode only, before issue 22.)

    Returns:
        ``[n, 3]`` accelerations, length / time**2 units.
    """
    dtype = position.dtype
    return _tiled_custom_jvp(position, mass, jnp.asarray(params.G, dtype),
                             jnp.asarray(params.softening, dtype), block_size)


def _block_potential(potential: PairPotential, position, mass, params, target, target_index):
    """Sum over the block of the potential per unit mass ``Phi(x_i) = sum_{j != i} m_j phi(s_ij)``.

    ``target_index`` ``[b]`` holds each target's body index (``>= n`` for padding rows), so the
    self-pair is masked by index, like the reference, before the square root.
    """
    n = position.shape[0]
    dx = position[None, :, 0] - target[:, 0:1]
    dy = position[None, :, 1] - target[:, 1:2]
    dz = position[None, :, 2] - target[:, 2:3]
    r2 = dx * dx + dy * dy + dz * dz + params.softening**2
    # Padding rows (index >= n) are masked too, so they add exactly 0 and never NaN.
    valid = (target_index[:, None] != jnp.arange(n)[None, :]) & (target_index[:, None] < n)
    s = jnp.sqrt(jnp.where(valid, r2, 1.0))
    return jnp.where(valid, mass[None, :] * potential.pair_energy(s, params), 0.0)


def acceleration_autodiff_tiled(
    position: Array,
    mass: Array,
    params: PhysicsParams,
    potential: str | PairPotential = NEWTONIAN,
    *,
    block_size: int | None = None,
) -> Array:
    """Accelerations by reverse-mode autodiff of the tiled potential; any pair potential.

    For each block ``I`` of target bodies, ``jax.grad`` differentiates the potential per unit
    mass ``Phi_I = sum_{i in I} sum_{j != i} m_j phi(s_ij)`` with respect to the targets'
    positions and ``a_i = -dPhi_I/dx_i``, which equals ``-(1/m_i) dU/dx_i`` exactly because
    ``U = 1/2 sum_i m_i sum_{j != i} m_j phi(s_ij)`` and each pair depends on ``|x_i - x_j|``.
    The reverse pass of one block runs right after its forward pass, so residuals are
    ``[block_size, n]``, not ``[n, n]``.

    Args:
        position: ``[n, 3]`` positions, length units.
        mass: ``[n]`` masses, mass units.
        params: :class:`PhysicsParams`.
        potential: a :class:`PairPotential` or its registry name.
        block_size: target bodies per tile (static); ``None`` picks the dtype's default.

    Returns:
        ``[n, 3]`` accelerations, length / time**2 units.
    """
    potential = get_potential(potential)
    n = position.shape[0]
    block_size = block_size or default_block_size(position.dtype)
    num_blocks = -(-n // block_size)
    blocks, padded = _blocks(position, block_size)
    indices = jnp.arange(padded).reshape(num_blocks, block_size)

    def block_acceleration(args):
        target, target_index = args
        phi_fn = lambda t: jnp.sum(_block_potential(potential, position, mass, params, t, target_index))
        return -jax.grad(phi_fn)(target)

    if num_blocks == 1:
        out = block_acceleration((blocks[0], indices[0]))
    else:
        out = lax.map(block_acceleration, (blocks, indices))
    return out.reshape(padded, 3)[:n]


def potential_energy_tiled(
    position: Array,
    mass: Array,
    params: PhysicsParams,
    potential: str | PairPotential = NEWTONIAN,
    *,
    block_size: int | None = None,
) -> Array:
    """Total potential energy ``U = sum_{i<j} m_i m_j phi(s_ij)`` with O(n) memory.

    Small systems (``n <= block_size``) are one ``[n, n]`` tile; larger ones sum
    ``[block_size, n]`` tiles. Self-pairs are masked by index, as in the reference
    :func:`~nbody_core.physics.potentials.potential_energy_from_positions` (equal to round-off).
    Every sum is an :func:`~nbody_core.physics.reductions.ordered_sum`: the energy of a system
    is the same bytes alone or vmapped in a batch of any size.

    Returns:
        scalar energy, energy units.
    """
    potential = get_potential(potential)
    n = position.shape[0]
    block_size = block_size or default_block_size(position.dtype)
    if n <= block_size:
        phi = _block_potential(potential, position, mass, params, position, jnp.arange(n))
        return 0.5 * ordered_sum(mass[:, None] * phi)
    num_blocks = -(-n // block_size)
    blocks, padded = _blocks(position, block_size)
    indices = jnp.arange(padded).reshape(num_blocks, block_size)
    target_mass = jnp.pad(mass, (0, padded - n)).reshape(num_blocks, block_size)

    def block_energy(args):
        target, target_index, m = args
        phi = _block_potential(potential, position, mass, params, target, target_index)
        return ordered_sum(m[:, None] * phi)

    # Each unordered pair is counted once from each end.
    return 0.5 * ordered_sum(lax.map(block_energy, (blocks, indices, target_mass)))
