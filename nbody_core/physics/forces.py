"""Forces and accelerations: by autodiff of the potential energy, and hand-coded.

Everything that moves bodies goes through one small interface::

    acceleration_fn(position [n, 3], mass [n], params: PhysicsParams) -> [n, 3]

built by :func:`acceleration_function` from a force method and a potential. The force
methods are one registry, :data:`FORCE_METHODS`, of frozen :class:`ForceMethod` records; an
``acceleration_fn`` is an :class:`Acceleration` record (method, potential), hashable and
equal by value, so it can be a static argument of ``jax.jit`` and two calls with the same
choice share one compilation. Adding a kernel is adding one record. A method that picks
another per system (by ``n``, dtype or device: shapes are static when a kernel is traced)
is one record whose ``kernel`` calls a selection function and then the chosen record's
kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
from jax import Array

from nbody_core.registry import Registry

from .autoselect import AUTO, resolve_forces
from .kernels import acceleration_autodiff_tiled, acceleration_tiled, acceleration_tiled_custom_vjp
from .pallas_kernels import acceleration_pallas
from .potentials import NEWTONIAN, PairPotential, get_potential, potential_energy_from_positions
from .state import PhysicsParams

__all__ = [
    "AccelerationFn",
    "Acceleration",
    "ForceMethod",
    "FORCE_METHODS",
    "get_force_method",
    "acceleration_function",
    "acceleration_autodiff",
    "acceleration_analytic",
    "forces_autodiff",
    "forces_analytic",
    "register_force_method",
]

AccelerationFn = Callable[[Array, Array, PhysicsParams], Array]


def forces_autodiff(
    position: Array, mass: Array, params: PhysicsParams, potential: str | PairPotential = NEWTONIAN
) -> Array:
    """Forces ``F = -dU/dx`` by ``jax.grad`` of the potential energy.

    Returns:
        ``[n, 3]`` forces, mass * length / time**2 units.
    """
    return -jax.grad(potential_energy_from_positions)(position, mass, params, potential)


def acceleration_autodiff(
    position: Array, mass: Array, params: PhysicsParams, potential: str | PairPotential = NEWTONIAN
) -> Array:
    """Accelerations ``a_i = -(1/m_i) dU/dx_i`` by autodiff; works for any pair potential."""
    return forces_autodiff(position, mass, params, potential) / mass[:, None]


def acceleration_analytic(position: Array, mass: Array, params: PhysicsParams) -> Array:
    """Hand-coded softened Newtonian accelerations (the reference kernel).

    ``a_i = G sum_{j != i} m_j (x_j - x_i) / (r_ij**2 + eps**2)**(3/2)``, an ``[n, n, 3]``
    broadcast: simple and exact, O(n**2) memory.

    Returns:
        ``[n, 3]`` accelerations, length / time**2 units.
    """
    n = position.shape[0]
    dr = position[None, :, :] - position[:, None, :]  # dr[i, j] = x_j - x_i
    r2 = jnp.sum(dr * dr, axis=-1) + params.softening**2
    off_diagonal = ~jnp.eye(n, dtype=bool)
    safe_r2 = jnp.where(off_diagonal, r2, 1.0)
    inv_r3 = jnp.where(off_diagonal, safe_r2 ** -1.5, 0.0)
    # params.G is ArrayLike, so a NumPy G times an Array types as ndarray; at run time it is an Array.
    return params.G * jnp.einsum("ij,ijk->ik", inv_r3 * mass[None, :], dr)  # type: ignore[return-value]


def forces_analytic(position: Array, mass: Array, params: PhysicsParams) -> Array:
    """Hand-coded softened Newtonian forces ``m_i a_i``, ``[n, 3]``."""
    return mass[:, None] * acceleration_analytic(position, mass, params)


@dataclass(frozen=True)
class ForceMethod:
    """Registry entry: one way to compute accelerations.

    Frozen and hashable (compared by value), so a record can be a static argument of
    ``jax.jit``.

    Attributes:
        name: registry key, e.g. ``"tiled"``; the ``--forces`` / ``forces=`` value.
        description: one line for menus and ``--help``.
        kernel: ``kernel(position [n, 3], mass [n], params, potential) -> [n, 3]``
            accelerations, length / time**2 units.
        potentials: names of the pair potentials the kernel computes, or ``None`` for any
            pair potential (autodiff of its energy).
    """

    name: str
    description: str
    kernel: Callable[[Array, Array, PhysicsParams, PairPotential], Array]
    potentials: tuple[str, ...] | None = ("newtonian",)

    def supports(self, potential: str | PairPotential) -> bool:
        """True when the kernel computes ``potential`` (a registered one, not a look-alike)."""
        if self.potentials is None:
            return True
        potential = get_potential(potential)
        return any(
            potential.pair_energy is get_potential(name).pair_energy for name in self.potentials
        )

    def check(self, potential: str | PairPotential) -> PairPotential:
        """The potential, or a ``ValueError`` naming the methods that do compute it."""
        potential = get_potential(potential)
        if not self.supports(potential):
            usable = sorted(name for name, m in FORCE_METHODS.items() if m.supports(potential))
            raise ValueError(
                f"force method {self.name!r} is hand-coded for "
                f"{' / '.join(name.title() for name in self.potentials or ())} "
                f"gravity only; for the {potential.name!r} potential use one of {usable}"
            )
        return potential


@dataclass(frozen=True)
class Acceleration:
    """``acceleration_fn(position, mass, params) -> [n, 3]`` for one (method, potential).

    A hashable record, not a fresh closure: equal choices give equal objects, so jitted
    functions that take it as a static argument compile once per choice.
    """

    method: ForceMethod
    potential: PairPotential

    def __call__(self, position: Array, mass: Array, params: PhysicsParams) -> Array:
        return self.method.kernel(position, mass, params, self.potential)


def _analytic_kernel(position, mass, params, potential):
    return acceleration_analytic(position, mass, params)


def _tiled_kernel(position, mass, params, potential):
    return acceleration_tiled(position, mass, params)


def _tiled_custom_vjp_kernel(position, mass, params, potential):
    return acceleration_tiled_custom_vjp(position, mass, params)


def _pallas_kernel(position, mass, params, potential):
    return acceleration_pallas(position, mass, params)


def _auto_kernel(position, mass, params, potential):
    # n and dtype are static while a kernel is traced: the choice is made then, once per
    # compilation. Gradients may follow (unknown here): select_forces answers with a kernel
    # whose reverse pass is cheap and whose forward is as fast.
    newtonian = potential.pair_energy is NEWTONIAN.pair_energy
    name = resolve_forces(AUTO, n=position.shape[0], dtype=position.dtype, newtonian=newtonian)
    return FORCE_METHODS[name].kernel(position, mass, params, potential)


#: Every force method by name. Methods with ``potentials=None`` apply to any pair potential.
FORCE_METHODS: Registry[ForceMethod] = Registry("force method", {
    method.name: method
    for method in (
        ForceMethod("autodiff", "-grad U by jax.grad; any pair potential", acceleration_autodiff, None),
        ForceMethod("analytic", "hand-coded Newtonian kernel (Newtonian only)", _analytic_kernel),
        ForceMethod("tiled", "hand-coded Newtonian kernel, tiled: fast, O(n) memory", _tiled_kernel),
        ForceMethod(
            "tiled_custom_vjp",
            "the tiled kernel with a hand-coded exact derivative rule (forward and reverse mode): fast derivatives through runs",
            _tiled_custom_vjp_kernel,
        ),
        ForceMethod(
            "autodiff_tiled",
            "-grad of the tiled potential by jax.grad; any pair potential, O(n) memory",
            acceleration_autodiff_tiled,
            None,
        ),
        ForceMethod(
            "pallas",
            "Pallas direct-sum kernel with the tiled derivative rule (Triton on GPUs; "
            "interpreted, slow, elsewhere); Newtonian only",
            _pallas_kernel,
        ),
        ForceMethod(
            AUTO,
            "the fastest exact kernel for the device, dtype, N and potential "
            "(nbody_core.physics.autoselect; default)",
            _auto_kernel,
            None,
        ),
    )
}, record_type=ForceMethod)


def get_force_method(forces: str | ForceMethod) -> ForceMethod:
    """Look a force method up by name (or pass a :class:`ForceMethod` through)."""
    return FORCE_METHODS.get(forces)


def register_force_method(method: ForceMethod, *, replace: bool = False) -> ForceMethod:
    """Add ``method`` to :data:`FORCE_METHODS` under its name (for kernels defined outside
    this module).

    Raises:
        TypeError: not a :class:`ForceMethod`.
        ValueError: the name is taken (unless ``replace``).
    """
    return FORCE_METHODS.register(getattr(method, "name", ""), method, replace=replace)


def acceleration_function(
    forces: str | ForceMethod = "analytic",
    potential: str | PairPotential = NEWTONIAN,
    *,
    method: str | ForceMethod | None = None,
) -> Acceleration:
    """Build ``acceleration_fn(position, mass, params) -> [n, 3]`` (a hashable record).

    Args:
        forces: a name in :data:`FORCE_METHODS` (or a :class:`ForceMethod`): ``"autodiff"``
            and ``"autodiff_tiled"`` apply to any potential, the hand-coded kernels
            (``"analytic"``, ``"tiled"``, ...) to Newtonian gravity only.
        potential: a :class:`PairPotential` or its registry name.
        method: deprecated alias of ``forces``.

    Raises:
        ValueError: for an unknown method or potential, or a hand-coded kernel asked for a
            non-Newtonian potential.
    """
    if method is not None:
        forces = method
    forces = get_force_method(forces)
    return Acceleration(forces, forces.check(potential))
