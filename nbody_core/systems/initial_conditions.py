"""Standard initial conditions: each returns a :class:`ParticleState` in the centre-of-mass
frame, carrying its unit system.

Deterministic systems take keyword parameters (``kepler(m1, m2, a=1, e=0.5)``); random ones
take an explicit PRNG ``key`` first (``plummer(key, n)``). Every constructor is traceable:
with traced parameters (inside ``jit``/``vmap``, as the ensembles call them) the eager checks
are skipped and the centring is done in JAX. :data:`PRESETS` (from :mod:`nbody_core.systems.presets`)
names each with its initial-condition parameters, physics, integrator, step and duration.
"""

from __future__ import annotations

import csv
import math
import os
from functools import partial
from pathlib import Path
import jax
import jax.numpy as jnp
import numpy as np

from nbody_core.physics.diagnostics import kinetic_energy, potential_energy, to_center_of_mass_frame
from .constants import FIGURE_EIGHT_PERIOD as FIGURE_EIGHT_PERIOD, MAX_BODIES
from nbody_core.physics.state import ParticleState, make_state, validate_state
from nbody_core.physics.units import AU_MSUN_YR

__all__ = [
    "kepler",
    "kepler_period",
    "figure_eight",
    "FIGURE_EIGHT_PERIOD",
    "pythagorean",
    "solar_system",
    "solar_system_names",
    "SOLAR_SYSTEM_DATA",
    "EXAMPLES",
    "example_initial_conditions",
    "plummer",
    "cold_collapse",
    "rotating_disk",
    "rescale_to_virial_ratio",
    "plummer_sample",
    "cold_collapse_sample",
    "disk_sample",
]


def _traced(*values) -> bool:
    return any(isinstance(v, jax.core.Tracer) for v in jax.tree.leaves(values))


def _com(position, velocity, mass, *, dtype=jnp.float64, units: str = "nbody") -> ParticleState:
    if _traced(position, velocity, mass):
        # Inside jit/vmap (the ensembles): centre in JAX; the values were checked eagerly.
        position, velocity, mass = (jnp.asarray(a, dtype) for a in (position, velocity, mass))
        state = ParticleState(position, velocity, mass, jnp.zeros((), dtype), units)
        return to_center_of_mass_frame(state)
    # NumPy, not eager JAX: each eager jnp op compiles per shape (seconds for a new n).
    position, velocity, mass = (np.asarray(a, dtype=np.float64) for a in (position, velocity, mass))
    validate_state(position, velocity, mass)
    total = mass.sum()
    position = position - (mass[:, None] * position).sum(axis=0) / total
    velocity = velocity - (mass[:, None] * velocity).sum(axis=0) / total
    return make_state(position, velocity, mass, dtype=dtype, units=units)


def kepler_period(*, a: float, total_mass: float, G: float = 1.0) -> float:
    """Orbital period ``2 pi sqrt(a**3 / (G M))`` of a bound two-body orbit."""
    return 2.0 * math.pi * math.sqrt(a**3 / (G * total_mass))


def kepler(m1: float = 1.0, m2: float = 1.0, *, a: float = 1.0, e: float = 0.0, G: float = 1.0) -> ParticleState:
    """Two bodies on a Keplerian orbit, starting at pericentre on the x axis.

    Args:
        m1, m2: positive masses, mass units.
        a: semi-major axis of the relative orbit, length units.
        e: eccentricity, ``0 <= e < 1``.
        G: gravitational constant.

    Traceable in every argument but ``G`` (the ensembles vmap it over e and the masses).
    """
    traced = _traced(m1, m2, a, e)
    if not traced:
        if not (m1 > 0 and m2 > 0):
            raise ValueError(f"masses must be positive, got m1={m1!r}, m2={m2!r}")
        if not a > 0:
            raise ValueError(f"semi-major axis a must be positive, got {a!r}")
        if not 0 <= e < 1:
            raise ValueError(f"eccentricity must satisfy 0 <= e < 1 for a bound orbit, got {e!r}")
    xp = jnp if traced else np
    total = m1 + m2
    r_peri = a * (1.0 - e)
    v_peri = xp.sqrt(G * total * (1.0 + e) / r_peri)  # vis-viva at pericentre
    zero = xp.zeros_like(r_peri)
    position = xp.stack([xp.stack([-m2 / total * r_peri, zero, zero]), xp.stack([m1 / total * r_peri, zero, zero])])
    velocity = xp.stack([xp.stack([zero, -m2 / total * v_peri, zero]), xp.stack([zero, m1 / total * v_peri, zero])])
    return _com(position, velocity, xp.stack([xp.asarray(m1), xp.asarray(m2)]))


def figure_eight() -> ParticleState:
    """The Chenciner-Montgomery figure-eight: three equal masses chasing on one curve.

    Chenciner & Montgomery (2000), Ann. Math. 152, 881; initial data of Simo (2002),
    "Dynamical properties of the figure eight solution", to 8 digits; G = m = 1; period
    :data:`FIGURE_EIGHT_PERIOD`.
    """
    x1 = np.array([0.97000436, -0.24308753, 0.0])
    v3 = np.array([-0.93240737, -0.86473146, 0.0])
    position = [x1, -x1, [0.0, 0.0, 0.0]]
    velocity = [-v3 / 2, -v3 / 2, v3]
    return _com(position, velocity, [1.0, 1.0, 1.0])


def pythagorean() -> ParticleState:
    """Burrau's Pythagorean problem: masses 3, 4, 5 at rest at the corners of a 3-4-5 triangle.

    Szebehely & Peters (1967), AJ 72, 876: after a long sequence of close encounters the
    lightest body (m = 3) escapes and the other two leave as a binary.
    """
    position = [[1.0, 3.0, 0.0], [-2.0, -1.0, 0.0], [1.0, -1.0, 0.0]]
    return _com(position, np.zeros((3, 3)), [3.0, 4.0, 5.0])


# Shipped inside the package (so a plain wheel install has it); assets/ links to the same file.
_PACKAGE_DATA = Path(__file__).resolve().parent / "data"
SOLAR_SYSTEM_DATA = Path(os.environ.get("NBODY_SOLAR_SYSTEM_CSV", _PACKAGE_DATA / "solar_system_j2000.csv"))

#: Example initial-condition CSV files shipped with the package, by name: ``(file, unit system)``.
#: The CLI reads them as ``nbody run --ic example:NAME`` from any directory.
EXAMPLES = {
    # The Sun and the four inner planets at J2000 (AU, solar masses, years).
    "bodies": ("bodies.csv", "au_msun_yr"),
}
EXAMPLE_PREFIX = "example:"


def example_initial_conditions(name: str) -> tuple[Path, str]:
    """``(path, unit system)`` of the shipped example ``name`` (``"bodies"`` or ``"example:bodies"``).

    Raises:
        ValueError: an unknown name, naming the known ones.
    """
    key = name[len(EXAMPLE_PREFIX):] if name.startswith(EXAMPLE_PREFIX) else name
    if key not in EXAMPLES:
        known = ", ".join(EXAMPLE_PREFIX + known for known in EXAMPLES)
        raise ValueError(f"unknown example {name!r}; the package ships {known}")
    filename, units = EXAMPLES[key]
    return _PACKAGE_DATA / filename, units


def _elements_to_state(a, e, inclination, mean_longitude, longitude_perihelion, longitude_node, mu):
    """Heliocentric position and velocity from Keplerian elements (angles in radians)."""
    argument_perihelion = longitude_perihelion - longitude_node
    mean_anomaly = math.remainder(mean_longitude - longitude_perihelion, 2 * math.pi)
    eccentric_anomaly = mean_anomaly + e * math.sin(mean_anomaly)
    for _ in range(50):  # Newton iteration on Kepler's equation M = E - e sin E
        delta = (eccentric_anomaly - e * math.sin(eccentric_anomaly) - mean_anomaly) / (
            1 - e * math.cos(eccentric_anomaly)
        )
        eccentric_anomaly -= delta
        if abs(delta) < 1e-15:
            break
    cos_e, sin_e = math.cos(eccentric_anomaly), math.sin(eccentric_anomaly)
    root = math.sqrt(1 - e * e)
    mean_motion = math.sqrt(mu / a**3)
    rate = mean_motion / (1 - e * cos_e)
    orbital_position = np.array([a * (cos_e - e), a * root * sin_e, 0.0])
    orbital_velocity = np.array([-a * sin_e * rate, a * root * cos_e * rate, 0.0])

    def rot_z(angle):
        c, s = math.cos(angle), math.sin(angle)
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])

    def rot_x(angle):
        c, s = math.cos(angle), math.sin(angle)
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])

    rotation = rot_z(longitude_node) @ rot_x(inclination) @ rot_z(argument_perihelion)
    return rotation @ orbital_position, rotation @ orbital_velocity


def _solar_system_rows(path) -> list[dict[str, str]]:
    path = Path(path) if path is not None else SOLAR_SYSTEM_DATA
    with open(path, newline="") as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("#")))


def solar_system_names(path: str | os.PathLike | None = None) -> tuple[str, ...]:
    """Names of the bodies of :func:`solar_system`, in its order (Sun first)."""
    return tuple(row["name"] for row in _solar_system_rows(path))


def solar_system(path: str | os.PathLike | None = None) -> ParticleState:
    """Sun and the eight planets at J2000.0 from the orbital elements shipped in the package.

    Units are AU, solar masses and Julian years: the state's ``units`` is ``"au_msun_yr"``,
    so ``simulate(solar_system(), ...)`` integrates with G = 39.476... by itself. The frame
    is the barycentric mean ecliptic and equinox of J2000. Body names:
    :func:`solar_system_names`.

    Returns:
        :class:`ParticleState` of the Sun and the planets, Sun first.
    """
    rows = _solar_system_rows(path)
    G = AU_MSUN_YR.G
    sun_mass = float(rows[0]["mass_msun"])
    position, velocity, mass = [], [], []
    for row in rows:
        m = float(row["mass_msun"])
        mass.append(m)
        if float(row["a_au"]) == 0.0:  # the Sun
            position.append(np.zeros(3))
            velocity.append(np.zeros(3))
            continue
        inclination, mean_longitude, longitude_perihelion, longitude_node = (
            math.radians(float(row[k])) for k in (
                "i_deg", "mean_longitude_deg", "longitude_perihelion_deg", "longitude_node_deg"))
        x, v = _elements_to_state(
            float(row["a_au"]), float(row["e"]), inclination, mean_longitude, longitude_perihelion,
            longitude_node, mu=G * (sun_mass + m),
        )
        position.append(x)
        velocity.append(v)
    return _com(position, velocity, mass, units=AU_MSUN_YR.name)


def _check_count(n: int, minimum: int = 2) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ValueError(f"number of bodies must be an integer, got {n!r}")
    if n < minimum:
        raise ValueError(f"number of bodies must be at least {minimum}, got {n}")
    if n > MAX_BODIES:
        raise ValueError(f"number of bodies {n} exceeds the cap of {MAX_BODIES}")


def _scale_to_virial_ratio(state: ParticleState, virial_ratio) -> ParticleState:
    if not _traced(virial_ratio) and virial_ratio < 0:
        raise ValueError(f"virial_ratio must be >= 0, got {virial_ratio!r}")
    return rescale_to_virial_ratio(state, virial_ratio)


@jax.jit
def rescale_to_virial_ratio(state: ParticleState, virial_ratio) -> ParticleState:
    """Scale every velocity by one factor so that ``T / |U|`` equals ``virial_ratio``.

    Args:
        state: :class:`ParticleState`; U is its unsoftened Newtonian energy with the G of
            its unit system.
        virial_ratio: target ``Q >= 0`` (scalar, traced). A state at rest stays at rest.

    Returns:
        the state with rescaled velocities.
    """
    kinetic = kinetic_energy(state)
    potential = jnp.abs(potential_energy(state))
    factor = jnp.where(kinetic > 0, jnp.sqrt(virial_ratio * potential / kinetic), 0.0)
    return state._replace(velocity=state.velocity * factor)


def plummer(
    key: jax.Array,
    n: int,
    *,
    total_mass: float = 1.0,
    virial_radius: float = 1.0,
    virial_ratio: float | None = None,
) -> ParticleState:
    """Plummer sphere by Aarseth, Henon & Wielen (1974), A&A 37, 183, in Henon units.

    Positions invert the cumulative mass profile; speeds follow the isotropic distribution
    function, whose ``q = v / v_esc`` has density ``q^2 (1 - q^2)^{7/2}``, i.e.
    ``q^2 ~ Beta(3/2, 9/2)`` (sampled exactly as a ratio of chi-squares, not by rejection).
    With G = 1 the virial radius is ``virial_radius`` (scale radius ``3 pi / 16`` of it) and ``E = -1/4``
    for unit mass and radius. The outermost 0.1 % of the mass is not sampled, as in AHW.

    Args:
        key: PRNG key.
        n: number of equal-mass bodies.
        total_mass, virial_radius: scales (G = 1).
        virial_ratio: if given, velocities are rescaled so ``T / |U|`` equals it exactly.
    """
    _check_count(n)
    if not (total_mass > 0 and virial_radius > 0):
        raise ValueError("total_mass and virial_radius must be positive")
    position, velocity = plummer_sample(key, n, total_mass, virial_radius)
    state = _com(position, velocity, np.full(n, total_mass / n))
    return state if virial_ratio is None else _scale_to_virial_ratio(state, virial_ratio)


@partial(jax.jit, static_argnames="n")
def plummer_sample(key, n, total_mass, virial_radius):
    """Positions and velocities ``[n, 3]`` of a Plummer sphere (see :func:`plummer`), not yet
    centred; traceable in every argument but ``n``."""
    k_radius, k_pos_dir, k_q, k_vel_dir = jax.random.split(key, 4)
    scale_radius = 3.0 * math.pi / 16.0 * virial_radius
    mass_fraction = jax.random.uniform(k_radius, (n,), minval=1e-12, maxval=0.999)
    radius = scale_radius / jnp.sqrt(mass_fraction ** (-2.0 / 3.0) - 1.0)
    position = radius[:, None] * _isotropic(k_pos_dir, n)
    # q^2 ~ Beta(3/2, 9/2) = X / (X + Y) with X ~ chi^2_3, Y ~ chi^2_9 (Gamma(k/2, 2) each):
    # exact, and far cheaper to compile than jax.random.beta's rejection sampler (~15 s).
    squares = jax.random.normal(k_q, (n, 12)) ** 2
    chi2_3, chi2_9 = jnp.sum(squares[:, :3], axis=1), jnp.sum(squares[:, 3:], axis=1)
    q = jnp.sqrt(chi2_3 / (chi2_3 + chi2_9))
    escape_speed = jnp.sqrt(2.0 * total_mass / scale_radius) * (1.0 + (radius / scale_radius) ** 2) ** -0.25
    velocity = (q * escape_speed)[:, None] * _isotropic(k_vel_dir, n)
    return position, velocity


def _isotropic(key, n):
    direction = jax.random.normal(key, (n, 3))
    return direction / jnp.linalg.norm(direction, axis=1, keepdims=True)


def cold_collapse(
    key: jax.Array, n: int, *, total_mass: float = 1.0, radius: float = 1.0, virial_ratio: float = 0.0
) -> ParticleState:
    """Uniform-density sphere of equal masses, at rest (or with isotropic Gaussian velocities
    scaled to ``virial_ratio = T / |U|``). Collapses in about the free-fall time
    ``pi / 2 sqrt(R^3 / (2 G M))``."""
    _check_count(n)
    if not (total_mass > 0 and radius > 0):
        raise ValueError("total_mass and radius must be positive")
    if _traced(virial_ratio):
        # Q = 0 scales the Gaussian velocities to 0: the same state as the cold start.
        position, velocity = cold_collapse_sample(key, n, radius, moving=True)
        return _scale_to_virial_ratio(_com(position, velocity, jnp.full((n,), total_mass / n)), virial_ratio)
    position, velocity = cold_collapse_sample(key, n, radius, moving=virial_ratio > 0)
    state = _com(position, velocity, np.full(n, total_mass / n))
    return _scale_to_virial_ratio(state, virial_ratio) if virial_ratio > 0 else state


@partial(jax.jit, static_argnames=("n", "moving"))
def cold_collapse_sample(key, n, radius, *, moving):
    """Positions ``[n, 3]`` uniform in a sphere of ``radius`` and velocities (standard normal
    if ``moving``, else zero), not yet centred; see :func:`cold_collapse`."""
    k_r, k_dir, k_v = jax.random.split(key, 3)
    r = radius * jax.random.uniform(k_r, (n,)) ** (1.0 / 3.0)
    position = r[:, None] * _isotropic(k_dir, n)
    velocity = jax.random.normal(k_v, (n, 3)) if moving else jnp.zeros((n, 3))
    return position, velocity


def rotating_disk(
    key: jax.Array,
    n: int,
    *,
    central_mass: float = 1.0,
    disk_mass: float = 0.01,
    inner_radius: float = 0.5,
    outer_radius: float = 2.0,
    thickness: float = 0.01,
) -> ParticleState:
    """A central mass with ``n - 1`` light bodies on circular orbits in a thin disk.

    Radii are uniform in area between ``inner_radius`` and ``outer_radius``; each circular
    speed includes the disk mass inside its radius, ``v = sqrt(G M(<r) / r)`` (G = 1).
    """
    _check_count(n)
    if not (0 < inner_radius < outer_radius):
        raise ValueError("need 0 < inner_radius < outer_radius")
    if not (central_mass > 0 and disk_mass > 0):
        raise ValueError("central_mass and disk_mass must be positive")
    return _com(*disk_sample(key, n, central_mass, disk_mass, inner_radius, outer_radius, thickness))


@partial(jax.jit, static_argnames="n")
def disk_sample(key, n, central_mass, disk_mass, inner_radius, outer_radius, thickness):
    """Positions, velocities ``[n, 3]`` and masses ``[n]`` of :func:`rotating_disk`, not yet
    centred; traceable in every argument but ``n``."""
    m = n - 1
    k_r, k_phi, k_z = jax.random.split(key, 3)
    u = jax.random.uniform(k_r, (m,))
    r = jnp.sqrt(inner_radius**2 + u * (outer_radius**2 - inner_radius**2))
    phi = jax.random.uniform(k_phi, (m,), maxval=2 * math.pi)
    z = thickness * jax.random.normal(k_z, (m,))
    enclosed = central_mass + disk_mass * (r**2 - inner_radius**2) / (outer_radius**2 - inner_radius**2)
    speed = jnp.sqrt(enclosed / r)
    position = jnp.concatenate(
        [jnp.zeros((1, 3)), jnp.stack([r * jnp.cos(phi), r * jnp.sin(phi), z], axis=1)]
    )
    velocity = jnp.concatenate(
        [jnp.zeros((1, 3)), jnp.stack([-speed * jnp.sin(phi), speed * jnp.cos(phi), jnp.zeros(m)], axis=1)]
    )
    mass = jnp.concatenate([jnp.reshape(central_mass, (1,)), jnp.full((m,), disk_mass / m)])
    return position, velocity, mass
