"""The preset registry: named starting points, each with its own initial-condition parameters.

One registry read by the CLI (``nbody presets``, ``nbody run --preset``), the ensembles
(which parameters a member may set or sweep, their defaults and bounds) and the dashboard.
A :class:`Preset` is a record: the builder of its initial state, its physical constants, a
default integrator, step and duration that integrate it correctly (a test runs every preset
to the end with these defaults), and its :class:`ICParameter` records (default, bounds,
units, doc). This module imports no JAX, so listing presets is instant; ``build`` imports
:mod:`nbody_core.systems.initial_conditions` when first called.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Callable, NamedTuple

from nbody_core.physics.units import get_unit_system
from nbody_core.registry import Registry

from .constants import FIGURE_EIGHT_PERIOD as FIGURE_EIGHT_PERIOD, MAX_BODIES as MAX_BODIES

__all__ = ["ICParameter", "Preset", "PRESETS", "get_preset", "MAX_BODIES", "FIGURE_EIGHT_PERIOD"]



class ICParameter(NamedTuple):
    """One initial-condition parameter of a preset.

    Attributes:
        name: keyword of the preset's ``build`` (and of ``EnsembleSpec`` and sweeps).
        default: value used when none is given; None means "not imposed" (e.g. the Plummer
            sphere keeps its sampled velocities unless a virial ratio is requested).
        low, high: bounds; ``low_open`` / ``high_open`` exclude the end itself.
        units: dimension name in ``units.DIMENSIONS`` (``"dimensionless"`` for ratios).
        doc: one line saying what it means.
    """

    name: str
    default: float | None
    low: float
    high: float
    units: str
    doc: str
    symbol: str = ""
    low_open: bool = False
    high_open: bool = False

    def check(self, value: Any) -> float:
        """``value`` as a float within the bounds, else ``ValueError`` naming the bound."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"{self.name} must be finite, got {value!r}")
        too_low = number <= self.low if self.low_open else number < self.low
        too_high = number >= self.high if self.high_open else number > self.high
        if too_low or too_high:
            raise ValueError(f"{self.name} must satisfy {self.bounds_text()}, got {number!r}")
        return number

    def bounds_text(self) -> str:
        """The bounds as text, e.g. ``0 <= eccentricity < 1``."""
        parts = []
        if self.low != -math.inf:
            parts.append(f"{self.low:g} {'<' if self.low_open else '<='} ")
        parts.append(self.symbol or self.name)
        if self.high != math.inf:
            parts.append(f" {'<' if self.high_open else '<='} {self.high:g}")
        return "".join(parts)


VIRIAL_RATIO = "virial_ratio"
ECCENTRICITY = "eccentricity"
MASS_RATIO = "mass_ratio"


def _virial_ratio(default: float | None, doc: str) -> ICParameter:
    return ICParameter(VIRIAL_RATIO, default, 0.0, math.inf, "dimensionless", doc, "Q", high_open=True)


class Preset(NamedTuple):
    """A named starting point.

    Attributes:
        name, description: as listed by ``nbody presets``.
        build: ``build(key, num_bodies, **parameters) -> ParticleState``; ``key`` is a JAX
            PRNG key (ignored by deterministic systems), ``num_bodies`` None for fixed-size
            ones; keywords are the names of ``parameters``. Traceable: the ensembles call it
            inside ``jit``/``vmap`` with traced parameter values.
        softening: default Plummer softening, length units.
        dt: default fixed step, time units (for an adaptive default integrator: the
            interval between saved snapshots).
        t_end: default duration, time units.
        integrator: default integrator (``"dopri8"`` is the adaptive one).
        units: unit system name (``units.UNIT_SYSTEMS``); G follows from it.
        num_bodies: N of a fixed-size system, the default N of a scalable one.
        scalable: whether N may be chosen (``--n``).
        parameters: the :class:`ICParameter` records ``build`` accepts.
        body_names: None, or a function returning the bodies' names in order.
    """

    name: str
    description: str
    build: Callable[..., Any]
    softening: float
    dt: float
    t_end: float
    integrator: str
    units: str = "nbody"
    num_bodies: int = 2
    scalable: bool = False
    parameters: tuple[ICParameter, ...] = ()
    body_names: Callable[[], tuple[str, ...]] | None = None

    @property
    def default_num_bodies(self) -> int | None:
        """N of a scalable preset by default; None for a fixed-size system."""
        return self.num_bodies if self.scalable else None

    @property
    def params(self):
        """:class:`~nbody_core.physics.state.PhysicsParams` of the preset: G of its unit system and its
        softening."""
        from nbody_core.physics.state import PhysicsParams

        return PhysicsParams(G=get_unit_system(self.units).G, softening=self.softening)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def parameter(self, name: str) -> ICParameter:
        """The :class:`ICParameter` called ``name`` (``ValueError`` naming the presets that
        have it when this one does not)."""
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter
        users = sorted(p.name for p in PRESETS.values() if name in p.parameter_names)
        raise ValueError(f"{name} does not apply to system {self.name!r}; it applies to {users}")


# Builders: thin, documented adapters from the registry's keywords to the constructors in
# initial_conditions (imported on first use: this module stays free of JAX).
def _checked(system: str, **values) -> None:
    """Check concrete parameter values against the registry's bounds (``ValueError`` naming
    the bound); traced values (inside jit/vmap) pass through unchecked."""
    jax = sys.modules.get("jax")  # no JAX loaded: no value can be a tracer
    for name, value in values.items():
        if value is None or (jax is not None and isinstance(value, jax.core.Tracer)):
            continue
        PRESETS[system].parameter(name).check(value)


def _figure_eight(key, n):
    from .initial_conditions import figure_eight

    return figure_eight()


def _kepler(key, n, *, eccentricity=0.5, mass_ratio=1.0):
    # Total mass 2 and a = 1 whatever the mass ratio q = m2 / m1: the period stays 2 pi / sqrt(2).
    from .initial_conditions import kepler

    _checked("kepler", eccentricity=eccentricity, mass_ratio=mass_ratio)
    return kepler(2.0 / (1.0 + mass_ratio), 2.0 * mass_ratio / (1.0 + mass_ratio), a=1.0, e=eccentricity)


def _pythagorean(key, n):
    from .initial_conditions import pythagorean

    return pythagorean()


def _solar_system(key, n):
    from .initial_conditions import solar_system

    return solar_system()


def _solar_system_names():
    from .initial_conditions import solar_system_names

    return solar_system_names()


def _plummer(key, n, *, virial_ratio=None):
    from .initial_conditions import plummer

    _checked("plummer", virial_ratio=virial_ratio)
    return plummer(key, n, virial_ratio=virial_ratio)


def _cold_collapse(key, n, *, virial_ratio=0.0):
    from .initial_conditions import cold_collapse

    _checked("cold_collapse", virial_ratio=virial_ratio)
    return cold_collapse(key, n, virial_ratio=virial_ratio)


def _rotating_disk(key, n):
    from .initial_conditions import rotating_disk

    return rotating_disk(key, n)


# Default integrators and steps: tests/nbody_core/test_presets.py runs each preset to t_end with these and
# checks its energy error against a bound stated there.
PRESETS: Registry[Preset] = Registry("preset", {
    p.name: p
    for p in (
        Preset("figure_eight", "Chenciner-Montgomery figure-eight, three equal masses",
               _figure_eight, 0.0, 1e-3, FIGURE_EIGHT_PERIOD, "leapfrog", num_bodies=3),
        Preset("kepler", "two-body Kepler orbit, mass ratio 1:1 (e = 0.5 unless set)",
               _kepler, 0.0, 1e-3, 2.0 * math.pi / math.sqrt(2.0), "leapfrog", num_bodies=2,
               parameters=(
                   ICParameter(ECCENTRICITY, 0.5, 0.0, 1.0, "dimensionless",
                               "orbital eccentricity of the relative orbit (a = 1)", "e", high_open=True),
                   ICParameter(MASS_RATIO, 1.0, 0.0, math.inf, "dimensionless",
                               "mass ratio q = m2 / m1 at fixed total mass 2", "q", low_open=True,
                               high_open=True),
               )),
        Preset("pythagorean", "Burrau's 3-4-5 problem: the lightest body escapes (adaptive IAS15)",
               _pythagorean, 0.0, 1e-5, 70.0, "ias15", num_bodies=3),
        Preset("solar_system", "Sun and eight planets at J2000 (AU, Msun, yr)",
               _solar_system, 0.0, 1e-3, 12.0, "yoshida4", units="au_msun_yr", num_bodies=9,
               body_names=_solar_system_names),
        Preset("plummer", "Plummer sphere in virial equilibrium (Aarseth-Henon-Wielen)",
               _plummer, 0.01, 1e-3, 1.0, "leapfrog", num_bodies=256, scalable=True,
               parameters=(_virial_ratio(None, "initial T / |U| (unsoftened U): velocities rescaled to it; "
                                               "not set: as sampled, close to 1/2"),)),
        Preset("cold_collapse", "uniform cold sphere collapsing from rest",
               _cold_collapse, 0.05, 1e-3, 2.0, "leapfrog", num_bodies=256, scalable=True,
               parameters=(_virial_ratio(0.0, "initial T / |U| (unsoftened U) of isotropic Gaussian "
                                              "velocities; 0 starts at rest"),)),
        Preset("rotating_disk", "thin disk on circular orbits around a central mass",
               _rotating_disk, 0.01, 1e-3, 6.0, "leapfrog", num_bodies=256, scalable=True),
    )
}, record_type=Preset)


def get_preset(name: str) -> Preset:
    """Look a preset up by name with a clear error for unknown names."""
    return PRESETS.get(name)
