"""Small pytrees that carry a simulation: the particle state and the physics parameters.

``ParticleState`` holds what the next step needs (positions, velocities, masses, time) and
the name of its unit system (static metadata, not a leaf); ``PhysicsParams`` holds the traced
physical constants. Changing any leaf of either never recompiles a jitted function; changing
their shapes, dtypes or the state's unit system does. :func:`resolve_params` takes G from the
state's unit system, so a state in AU, Msun and years is never integrated with G = 1 by accident.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from nbody_core.registry import Registry

from .precision import require_float64
from .units import get_unit_system

__all__ = ["DTYPES", "ParticleState", "PhysicsParams", "make_state", "validate_state", "cast_state", "get_dtype",
           "resolve_params", "register_units_pytree"]

#: The floating dtypes a run may use, by the name the CLI, the dashboard and files use.
DTYPES: Registry[type] = Registry("dtype", {"float64": jnp.float64, "float32": jnp.float32})


def get_dtype(name: str):
    """The dtype named ``name`` in :data:`DTYPES`, with a clear error for any other name."""
    return DTYPES.get(name)


class ParticleState(NamedTuple):
    """State of one N-body system.

    Attributes:
        position: ``[n, 3]`` array, length units.
        velocity: ``[n, 3]`` array, length / time units.
        mass: ``[n]`` array, mass units; every mass is positive.
        time: scalar, time units.
        units: name of the unit system (``units.UNIT_SYSTEMS``; ``"nbody"``: G = 1). Static
            pytree metadata, not a leaf: it survives ``jit``, ``vmap``, ``scan`` and
            ``_replace``, and :func:`resolve_params` reads G from it.
    """

    position: Array
    velocity: Array
    mass: Array
    time: Array
    units: str = "nbody"

    @property
    def num_bodies(self) -> int:
        return self.position.shape[-2]

    @property
    def dtype(self):
        return self.position.dtype


def register_units_pytree(cls: Any) -> Any:
    """Register a ``NamedTuple`` whose last field is ``units`` as a pytree with that field as
    static metadata (like a jit static argument): the other fields are the leaves, so
    ``tree_map``, ``vmap``, ``scan`` and ``grad`` see exactly the arrays, and the unit
    system survives them. Returns ``cls`` (usable as a class decorator)."""
    fields = cls._fields[:-1]
    if cls._fields[-1] != "units":
        raise ValueError(f"{cls.__name__}: the last field must be 'units', got {cls._fields[-1]!r}")
    jax.tree_util.register_pytree_with_keys(
        cls,
        lambda s: (tuple((jax.tree_util.GetAttrKey(f), getattr(s, f)) for f in fields), s.units),
        lambda units, leaves: cls(*leaves, units=units),
        flatten_func=lambda s: (tuple(s[:-1]), s.units),
    )
    return cls


register_units_pytree(ParticleState)


class PhysicsParams(NamedTuple):
    """Traced physical constants shared by every potential.

    Attributes:
        G: gravitational constant in the run's unit system (1 in N-body units).
        softening: Plummer softening length eps >= 0, length units. The softened distance
            is ``sqrt(r**2 + eps**2)``.
        screening_length: Yukawa screening length lambda > 0, length units (Yukawa only).
        power_index: exponent p of the power-law potential ``-G m_i m_j / s**p`` (power-law
            only; p = 1 is Newtonian gravity).
    """

    G: ArrayLike = 1.0
    softening: ArrayLike = 0.0
    screening_length: ArrayLike = 1.0
    power_index: ArrayLike = 1.0

    def astype(self, dtype) -> "PhysicsParams":
        """Every constant as a ``dtype`` array (float64 needs :func:`~nbody_core.enable_float64`)."""
        require_float64(dtype)
        return PhysicsParams(*(jnp.asarray(v, dtype=dtype) for v in self))


def make_state(position, velocity, mass, time=0.0, *, dtype=jnp.float64, units: str = "nbody") -> ParticleState:
    """Build a validated :class:`ParticleState` from array-likes.

    Args:
        position: ``[n, 3]`` (or ``[n, 2]``, padded with z = 0) positions, length units.
        velocity: same shape as ``position``, length / time units.
        mass: ``[n]`` positive masses, mass units.
        time: initial time, time units.
        dtype: floating dtype of every leaf (float64 by default, float32 on request).
        units: unit system of the values (a name in ``units.UNIT_SYSTEMS``).

    Raises:
        ValueError: naming the problem, for wrong shapes, non-finite values, non-positive
            masses, values too large for ``dtype``, fewer than two bodies or an unknown
            unit system.
        RuntimeError: ``dtype`` is float64 while JAX's 64-bit mode is off (JAX would make
            float32 arrays): call :func:`nbody_core.enable_float64` first.
    """
    require_float64(dtype)
    units = get_unit_system(units).name
    position = np.asarray(position, dtype=np.float64)
    velocity = np.asarray(velocity, dtype=np.float64)
    mass = np.asarray(mass, dtype=np.float64)
    if position.ndim == 2 and position.shape[1] == 2:
        position = np.pad(position, ((0, 0), (0, 1)))
    if velocity.ndim == 2 and velocity.shape[1] == 2:
        velocity = np.pad(velocity, ((0, 0), (0, 1)))
    validate_state(position, velocity, mass)
    _check_magnitudes(position, velocity, mass, dtype)
    return ParticleState(
        position=jnp.asarray(position, dtype=dtype),
        velocity=jnp.asarray(velocity, dtype=dtype),
        mass=jnp.asarray(mass, dtype=dtype),
        time=jnp.asarray(time, dtype=dtype),
        units=units,
    )


def validate_state(position, velocity, mass) -> None:
    """Raise ``ValueError`` with a clear message if the arrays do not form a valid state."""
    position = np.asarray(position)
    velocity = np.asarray(velocity)
    mass = np.asarray(mass)
    if position.ndim != 2 or position.shape[1] != 3:
        raise ValueError(f"position must have shape [n, 3], got {position.shape}")
    if velocity.shape != position.shape:
        raise ValueError(
            f"velocity shape {velocity.shape} does not match position shape {position.shape}"
        )
    if mass.shape != (position.shape[0],):
        raise ValueError(f"mass must have shape [{position.shape[0]}], got {mass.shape}")
    n = position.shape[0]
    if n < 2:
        raise ValueError(f"an N-body system needs at least 2 bodies, got {n}")
    for name, values in (("position", position), ("velocity", velocity), ("mass", mass)):
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise ValueError(f"{name} contains a non-finite value (NaN or inf) for body {row}")
    if (mass <= 0).any():
        row = int(np.argwhere(mass <= 0)[0][0])
        raise ValueError(f"mass must be positive, body {row} has mass {float(mass[row])!r}")


def _check_magnitudes(position, velocity, mass, dtype) -> None:
    """Refuse values whose squares or pairwise products overflow ``dtype`` (r**2, m_i m_j,
    m v**2 would be inf at the first step, so the run could only report garbage)."""
    limit = float(np.sqrt(np.finfo(dtype).max))
    for name, values in (("mass", mass), ("position", position), ("velocity", velocity)):
        magnitude = np.abs(values) if values.ndim == 1 else np.abs(values).max(axis=1)
        if (magnitude > limit).any():
            row = int(np.argmax(magnitude > limit))
            raise ValueError(
                f"{name} of body {row} ({float(magnitude[row]):.3g}) is too large for "
                f"{np.dtype(dtype).name}: its square would overflow (limit {limit:.3g}); rescale the units"
            )


def cast_state(state: ParticleState, dtype) -> ParticleState:
    """Return ``state`` with every leaf cast to ``dtype`` (e.g. ``jnp.float32``).

    Raises:
        RuntimeError: ``dtype`` is float64 while JAX's 64-bit mode is off (see :func:`make_state`).
    """
    require_float64(dtype)
    return jax.tree.map(lambda leaf: jnp.asarray(leaf, dtype=dtype), state)


# A G from another unit system is off by a large factor (G = 1 against 39.48 in AU, Msun and
# years); one from another table of constants by little (4 pi^2 against k^2 365.25^2: 4e-5).
# 1 % tells the two apart.
_G_TOLERANCE = 1e-2


def resolve_params(state: ParticleState, params: PhysicsParams | None = None) -> PhysicsParams:
    """The physics parameters to integrate ``state`` with.

    Args:
        state: a :class:`ParticleState`; its ``units`` name fixes G.
        params: None (G from the state's unit system, other constants at their defaults) or
            explicit :class:`PhysicsParams`, returned unchanged when they agree with it.

    Returns:
        :class:`PhysicsParams`.

    Raises:
        ValueError: when ``params.G`` contradicts a physical unit system of the state (e.g.
            the default G = 1 with a state built in AU, Msun and years). States in N-body
            units accept any G (they are scale-free). A traced G is not checked.
    """
    units = get_unit_system(getattr(state, "units", "nbody"))
    if params is None:
        return PhysicsParams(G=units.G)
    if units.name != "nbody" and not isinstance(params.G, jax.core.Tracer):
        G = np.asarray(params.G, dtype=float)
        if not np.all(np.abs(G - units.G) <= _G_TOLERANCE * units.G):
            raise ValueError(
                f"the state is in {units.name!r} units, where G = {units.G:.10g}, but params.G = "
                f"{float(G.ravel()[0]):.10g}; pass params=PhysicsParams(G=nbody_core.UNIT_SYSTEMS"
                f"[{units.name!r}].G, ...) or leave params out to use the state's G"
            )
    return params
