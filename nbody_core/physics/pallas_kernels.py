"""Pallas direct-sum kernels: softened Newtonian accelerations and potential energy.

The GPU Gems 3 ch. 31 design written in ``jax.experimental.pallas`` (Triton lowering on
NVIDIA GPUs): the grid runs over blocks of ``block_target`` target bodies (and, for small
``n``, over ``num_splits`` slices of the source bodies, summed afterwards); each program keeps
its targets in registers and walks the source bodies ``block_source`` at a time through
on-chip memory, accumulating a ``[block_target, block_source]`` tile that is reduced once at
the end. Coordinates travel as separate ``x, y, z, m`` rows (structure of arrays).

``n`` is padded to whole tiles with zero-mass bodies, which add exactly 0. A pair with
``r**2 + eps**2 == 0`` (coincident bodies, no softening) gets ``1/s = rsqrt(inf) = 0``, so it
adds 0, never NaN. The self-pair is masked by index where it would count (the potential);
in the accelerations every self-pair term carries ``d = 0``.

The accelerations are a JAX primitive of their own (lowered to the ``pallas_call``) with an
exact derivative rule whose tangent is the tiled XLA pass of ``kernels.py``, linear in the
tangents: forward mode uses it as it is and reverse mode transposed by JAX, so ``grad``,
``jacfwd``, ``jacrev``, ``jvp`` and ``hessian`` (either order, also through a simulation) work
and cost about one extra force sweep per step. (A ``custom_jvp`` did the same until forward
over reverse through a ``lax.scan``: partial evaluation inlines a ``custom_jvp``'s primal, and
the ``pallas_call``'s own jvp cannot trace ``program_id``. The hand-written Pallas reverse
kernel before it served reverse mode only: a ``pallas_call`` has no transpose rule, so no
Pallas kernel can be the tangent of both modes.) The potential energy keeps its reverse pass
(``jax.custom_vjp``) from the forward sweep's sums: reverse mode only; it is no force method.

Off GPU the kernels run in Pallas's interpreter (``interpret=True``, chosen automatically):
slow, but exact, which is how CI checks them on the CPU (tests/nbody_core/test_pallas_kernels.py).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array, lax
from jax.experimental import pallas as pl
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from .kernels import acceleration_tangent_tiled
from .state import PhysicsParams

__all__ = [
    "PallasConfig",
    "default_pallas_config",
    "acceleration_pallas",
    "potential_energy_pallas",
    "pallas_interpret_default",
]


class PallasConfig(NamedTuple):
    """Static tiling of a Pallas kernel (hashable: changing it recompiles).

    Attributes:
        block_target: target bodies per program (power of 2).
        block_source: source bodies loaded per loop step (power of 2).
        num_splits: source slices per target block, summed afterwards (``None``: enough
            programs to fill a GPU, see :func:`_num_splits`).
        num_warps: Triton warps per program (``None``: Triton's default, 4).
        interpret: run in Pallas's interpreter (``None``: whenever the default backend is not
            a GPU).
    """

    block_target: int = 64
    block_source: int = 64
    num_splits: int | None = None
    num_warps: int | None = None
    interpret: bool | None = None


def pallas_interpret_default() -> bool:
    """True when the default JAX backend is not a GPU (the kernels then run interpreted)."""
    return jax.default_backend() not in ("gpu", "cuda", "rocm")


def default_pallas_config(dtype) -> PallasConfig:
    """Default tiles: 64 x 32 float32, 32 x 32 float64.

    Each program holds three ``[block_target, block_source]`` accumulator tiles in registers
    (GPU Gems' per-thread accumulators, spread over the warps): 2048 float32 values over 128
    threads is 16 per thread per tile, leaving room for the temporaries without spilling;
    float64 values take two registers each, hence half the tile. Not yet tuned on a GPU:
    benchmarks/bench_gpu.py sweeps tiles and reports the fastest.
    """
    if jnp.dtype(dtype).itemsize <= 4:
        return PallasConfig(block_target=64, block_source=32)
    return PallasConfig(block_target=32, block_source=32)


# Programs to aim for: a few per streaming multiprocessor of a large GPU (H200: 132 SMs).
_TARGET_PROGRAMS = 512


def _check_power_of_two(name: str, value: int) -> None:
    if value < 1 or value & (value - 1):
        raise ValueError(f"{name} must be a power of 2 (Triton tiles), got {value}")


def _layout(n: int, config: PallasConfig):
    """``(padded_n, num_target_blocks, num_source_blocks, num_splits)`` for ``n`` bodies."""
    _check_power_of_two("block_target", config.block_target)
    _check_power_of_two("block_source", config.block_source)
    tile = max(config.block_target, config.block_source)
    padded = -(-n // tile) * tile
    num_target_blocks = padded // config.block_target
    num_source_blocks = padded // config.block_source
    if config.num_splits is None:
        want = -(-_TARGET_PROGRAMS // num_target_blocks)
        splits = 1
        while splits * 2 <= min(want, num_source_blocks):
            splits *= 2
    else:
        splits = config.num_splits
    if splits < 1 or num_source_blocks % splits:
        # Splits must divide the source blocks evenly (every program runs the same loop).
        splits = 1
    return padded, num_target_blocks, num_source_blocks, splits


def _soa(position: Array, mass: Array, padded: int):
    """``x, y, z, m`` rows padded to ``padded`` with zero-mass bodies at the origin."""
    pad = padded - position.shape[0]
    position = jnp.pad(position, ((0, pad), (0, 0)))
    mass = jnp.pad(mass, (0, pad))
    return position[:, 0], position[:, 1], position[:, 2], mass


def _inverse(r2):
    """``1/s``, and 0 where ``s == 0`` (coincident, unsoftened): ``rsqrt(inf) = 0`` (IEEE)."""
    return lax.rsqrt(jnp.where(r2 > 0, r2, jnp.inf))


def _pair_inverse(target_index, source_index, r2):
    """``1/s`` for valid pairs, 0 for the self-pair and for ``s == 0`` (masked before rsqrt)."""
    valid = (target_index[:, None] != source_index[None, :]) & (r2 > 0)
    return jnp.where(valid, lax.rsqrt(jnp.where(valid, r2, 1.0)), 0.0)


# ----------------------------------------------------------------------------- forward kernel


def _forward_kernel(eps_ref, xt_ref, yt_ref, zt_ref, x_ref, y_ref, z_ref, m_ref, *out_refs,
                    block_target, block_source, blocks_per_split, with_energy):
    """One program: targets ``[block_target]`` against one slice of the source blocks.

    Writes ``sum_j m_j d_ij / s_ij**3`` (``d = x_j - x_i``; three rows) and, with
    ``with_energy``, ``phi_i = -sum_j m_j / s_ij`` and ``w_i = sum_j m_j / s_ij**3``.
    """
    target_block, split = pl.program_id(0), pl.program_id(1)
    xt, yt, zt = xt_ref[...], yt_ref[...], zt_ref[...]
    eps2 = eps_ref[0] * eps_ref[0]
    target_index = target_block * block_target + jnp.arange(block_target)
    first = split * blocks_per_split
    shape = (block_target, block_source)
    zero = jnp.zeros(shape, xt.dtype)

    def body(step, acc):
        start = pl.multiple_of((first + step) * block_source, block_source)
        window = pl.ds(start, block_source)
        xs, ys, zs, ms = x_ref[window], y_ref[window], z_ref[window], m_ref[window]
        dx = xs[None, :] - xt[:, None]
        dy = ys[None, :] - yt[:, None]
        dz = zs[None, :] - zt[:, None]
        r2 = dx * dx + dy * dy + dz * dz + eps2
        if with_energy:  # the self-pair must not add -m_i / eps to phi_i
            inv_r = _pair_inverse(target_index, start + jnp.arange(block_source), r2)
        else:  # the self-pair has d = 0: it adds 0 to the accelerations unmasked
            inv_r = _inverse(r2)
        m_inv_r = ms[None, :] * inv_r
        weight = m_inv_r * inv_r * inv_r
        # Only the sums asked for are carried (registers are the scarce resource).
        out = (acc[0] + weight * dx, acc[1] + weight * dy, acc[2] + weight * dz)
        if with_energy:
            out += (acc[3] - m_inv_r, acc[4] + weight)
        return out

    acc = lax.fori_loop(0, blocks_per_split, body, (zero,) * len(out_refs))
    for ref, tile in zip(out_refs, acc):
        ref[...] = jnp.sum(tile, axis=1)


def _forward_sums(position: Array, mass: Array, softening: Array, config: PallasConfig,
                  with_energy: bool):
    """Run the forward kernel: ``[3 or 5, n]`` rows (accelerations / G, then phi and w)."""
    n = position.shape[0]
    padded, num_target_blocks, num_source_blocks, splits = _layout(n, config)
    x, y, z, m = _soa(position, mass, padded)
    bt, bs = config.block_target, config.block_source
    kernel = partial(_forward_kernel, block_target=bt, block_source=bs,
                     blocks_per_split=num_source_blocks // splits, with_energy=with_energy)
    target = pl.BlockSpec((bt,), lambda i, s: (i,))
    source = pl.BlockSpec((padded,), lambda i, s: (0,))
    scalar = pl.BlockSpec((1,), lambda i, s: (0,))
    count = 5 if with_energy else 3
    out = pl.pallas_call(
        kernel,
        grid=(num_target_blocks, splits),
        in_specs=[scalar, target, target, target, source, source, source, source],
        out_specs=[pl.BlockSpec((None, bt), lambda i, s: (s, i))] * count,
        out_shape=[jax.ShapeDtypeStruct((splits, padded), position.dtype)] * count,
        interpret=_interpret(config),
        compiler_params=_compiler_params(config),
        name="nbody_forward",
    )(jnp.reshape(softening, (1,)).astype(position.dtype), x, y, z, x, y, z, m)
    return jnp.stack([jnp.sum(o, axis=0)[:n] for o in out])


def _interpret(config: PallasConfig) -> bool:
    return pallas_interpret_default() if config.interpret is None else config.interpret


def _compiler_params(config: PallasConfig):
    if _interpret(config):
        return None
    from jax.experimental.pallas import triton as pltriton

    # Triton parameters select the Triton lowering (not Mosaic GPU) on NVIDIA GPUs.
    return pltriton.CompilerParams(num_warps=config.num_warps)


# -------------------------------------------------------------------------- accelerations


def _acceleration_sums(position, mass, softening, *, config):
    """``[n, 3]`` sums ``sum_j m_j d_ij / s_ij**3`` (the accelerations with G = 1)."""
    return _forward_sums(position, mass, softening, config, False).T


# The accelerations (G = 1) as a primitive of their own, whose derivative rule is below. A
# ``custom_jvp`` around the ``pallas_call`` served first derivatives, but JAX's partial evaluation
# inlines a ``custom_jvp``'s primal function once one of its inputs is unknown (jacrev through a
# ``lax.scan``), so forward over reverse (``jax.hessian``) through a simulation then reached the
# ``pallas_call``'s own jvp, which cannot trace ``program_id``. A primitive is never inlined: every
# order of every mode meets this rule.
_acceleration_p = Primitive("nbody_pallas_acceleration")
_acceleration_p.def_impl(jax.jit(_acceleration_sums, static_argnames=("config",)))
_acceleration_p.def_abstract_eval(lambda position, mass, softening, *, config: jax.core.ShapedArray(
    position.shape, position.dtype))
mlir.register_lowering(_acceleration_p, mlir.lower_fun(_acceleration_sums, multiple_results=False))


def _acceleration_jvp(primals, tangents, *, config):
    position, mass, softening = primals
    position_dot, mass_dot, softening_dot = (None if type(t) is ad.Zero else t for t in tangents)
    out = _acceleration_p.bind(position, mass, softening, config=config)
    if position_dot is None and mass_dot is None and softening_dot is None:
        return out, ad.Zero.from_primal_value(out)
    # The tiled XLA tangent pass (kernels.py): linear in the tangents, so JAX transposes it for
    # reverse mode; a pallas_call has no transpose rule, so a Pallas tangent kernel could serve
    # forward mode only.
    return out, acceleration_tangent_tiled(position, mass, softening, position_dot, mass_dot, softening_dot)


def _acceleration_batch(args, dims, *, config):
    return jax.vmap(partial(_acceleration_sums, config=config), in_axes=tuple(dims))(*args), 0


ad.primitive_jvps[_acceleration_p] = _acceleration_jvp
batching.primitive_batchers[_acceleration_p] = _acceleration_batch


def _acceleration(position, mass, G, softening, config):
    return G * _acceleration_p.bind(position, mass, softening, config=config)


def _resolve(dtype, config: PallasConfig | None) -> PallasConfig:
    return default_pallas_config(dtype) if config is None else config


def acceleration_pallas(
    position: Array, mass: Array, params: PhysicsParams, *, config: PallasConfig | None = None
) -> Array:
    """Softened Newtonian accelerations ``a_i = G sum_{j != i} m_j (x_j - x_i) / s_ij**3``.

    Same sum as :func:`nbody_core.physics.forces.acceleration_analytic` (to round-off), computed by a
    tiled Pallas kernel. Derivatives for ``position``, ``mass``, ``G`` and ``softening``, in
    forward and reverse mode and of any order, come from a derivative rule whose tangent is
    the tiled XLA pass of :func:`~nbody_core.physics.kernels.acceleration_tiled_custom_vjp`.

    Args:
        position: ``[n, 3]`` positions, length units (float32 or float64).
        mass: ``[n]`` masses, mass units.
        params: :class:`PhysicsParams` (``G``, ``softening`` are read).
        config: static tiling (:class:`PallasConfig`); ``None`` picks
            :func:`default_pallas_config` for the dtype.

    Returns:
        ``[n, 3]`` accelerations, length / time**2 units.
    """
    dtype = position.dtype
    return _acceleration(position, mass.astype(dtype), jnp.asarray(params.G, dtype),
                         jnp.asarray(params.softening, dtype), _resolve(dtype, config))


# --------------------------------------------------------------------------- potential energy


@partial(jax.custom_vjp, nondiff_argnums=(4,))
def _energy(position, mass, G, softening, config):
    phi = _forward_sums(position, mass, softening, config, True)[3]
    return 0.5 * G * jnp.sum(mass * phi)


def _energy_fwd(position, mass, G, softening, config):
    ax, ay, az, phi, w = _forward_sums(position, mass, softening, config, True)
    half_sum = 0.5 * jnp.sum(mass * phi)
    return G * half_sum, (mass, G, softening, jnp.stack([ax, ay, az], -1), phi, w, half_sum)


def _energy_bwd(config, residuals, energy_bar):
    # U = G/2 sum_i m_i phi_i:  dU/dx_i = -m_i a_i,  dU/dm_i = G phi_i,  dU/dG = U / G,
    # dU/deps = G/2 eps sum_i m_i w_i  (d(-1/s)/deps = eps / s**3).
    mass, G, softening, raw, phi, w, half_sum = residuals
    position_bar = -energy_bar * G * mass[:, None] * raw
    mass_bar = energy_bar * G * phi
    softening_bar = energy_bar * G * 0.5 * softening * jnp.sum(mass * w)
    return position_bar, mass_bar, energy_bar * half_sum, softening_bar


_energy.defvjp(_energy_fwd, _energy_bwd)


def potential_energy_pallas(
    position: Array, mass: Array, params: PhysicsParams, *, config: PallasConfig | None = None
) -> Array:
    """Total softened Newtonian potential energy ``U = -G sum_{i<j} m_i m_j / s_ij``.

    Same value as :func:`nbody_core.physics.potentials.potential_energy_from_positions` for the
    Newtonian potential (to round-off; pairs at ``s == 0`` add 0 here, not ``-inf``). Its
    reverse pass reuses the forward sweep's accelerations: no second kernel.

    Returns:
        scalar energy, energy units.
    """
    dtype = position.dtype
    return _energy(position, mass.astype(dtype), jnp.asarray(params.G, dtype),
                   jnp.asarray(params.softening, dtype), _resolve(dtype, config))
