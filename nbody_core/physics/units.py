"""Unit systems: G = 1 N-body units by default, plus named physical systems.

A :class:`UnitSystem` fixes the length, mass and time units (in CGS) and hence the value of
G in that system. ``convert(value, "velocity", "au_msun_yr", "cgs")`` converts any
quantity whose dimension is listed in :data:`DIMENSIONS`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from nbody_core.registry import Registry

__all__ = [
    "UnitSystem",
    "G_CGS",
    "NBODY",
    "AU_MSUN_YR",
    "CGS",
    "SI",
    "PC_MSUN_MYR",
    "UNIT_SYSTEMS",
    "DIMENSIONS",
    "get_unit_system",
    "nbody_units",
    "convert",
]

G_CGS = 6.67430e-8  # CODATA 2018, cm^3 g^-1 s^-2
AU_CM = 1.495978707e13  # IAU 2012 Resolution B2, exact
JULIAN_YEAR_S = 365.25 * 86400.0
PARSEC_CM = 3.0856775814913673e18  # IAU 2015 Resolution B2
# Gaussian gravitational constant k (AU^{3/2} day^-1 Msun^{-1/2}); G = k^2 in AU, Msun, day.
GAUSSIAN_K = 0.01720209895
# Solar mass consistent with k and the IAU AU: GM_sun = k^2 AU^3 / day^2.
MSUN_G = GAUSSIAN_K**2 * AU_CM**3 / 86400.0**2 / G_CGS

# (length, mass, time) exponents of each quantity.
DIMENSIONS: Registry[tuple[int, int, int]] = Registry("dimension", {
    "dimensionless": (0, 0, 0),
    "length": (1, 0, 0),
    "mass": (0, 1, 0),
    "time": (0, 0, 1),
    "velocity": (1, 0, -1),
    "acceleration": (1, 0, -2),
    "energy": (2, 1, -2),
    "momentum": (1, 1, -1),
    "angular_momentum": (2, 1, -1),
    "force": (1, 1, -2),
})


class UnitSystem(NamedTuple):
    """Units of length, mass and time, in CGS, with human labels.

    ``length_cm`` etc. are ``None`` for scale-free N-body units, which cannot be converted
    until a physical scale is chosen with :func:`nbody_units`.
    """

    name: str
    length_cm: float | None
    mass_g: float | None
    time_s: float | None
    length_label: str
    mass_label: str
    time_label: str

    @property
    def G(self) -> float:
        """Value of the gravitational constant in this system."""
        if self.length_cm is None:
            return 1.0
        length_cm, mass_g, time_s = self._cgs_scales()
        return G_CGS * mass_g * time_s**2 / length_cm**3

    def label(self, dimension: str) -> str:
        """Human-readable unit of ``dimension``, e.g. ``"AU / yr"``."""
        exponents = _dimension(dimension)
        parts_num: list[str] = []
        parts_den: list[str] = []
        for exponent, unit in zip(exponents, (self.length_label, self.mass_label, self.time_label)):
            if exponent == 0:
                continue
            text = unit if abs(exponent) == 1 else f"{unit}^{abs(exponent)}"
            (parts_num if exponent > 0 else parts_den).append(text)
        numerator = " ".join(parts_num) or "1"
        return numerator + (" / " + " ".join(parts_den) if parts_den else "")

    def scale(self, dimension: str) -> float:
        """Size of this system's unit of ``dimension`` in CGS."""
        if self.length_cm is None:
            raise ValueError(
                "N-body units have no physical scale; pick one with nbody_units(mass_g, length_cm)"
            )
        a, b, c = _dimension(dimension)
        length_cm, mass_g, time_s = self._cgs_scales()
        return length_cm**a * mass_g**b * time_s**c

    def _cgs_scales(self) -> tuple[float, float, float]:
        # A physical system sets all three scales (nbody_units, the presets); N-body units none.
        if self.length_cm is None or self.mass_g is None or self.time_s is None:
            raise ValueError(f"unit system {self.name!r} has no physical scale")
        return self.length_cm, self.mass_g, self.time_s


def _dimension(dimension: str) -> tuple[int, int, int]:
    return DIMENSIONS.get(dimension)


def nbody_units(mass_g: float, length_cm: float, name: str = "nbody_scaled") -> UnitSystem:
    """N-body units (G = 1) with a physical mass and length scale; time follows from G."""
    if not (mass_g > 0 and length_cm > 0):
        raise ValueError("mass_g and length_cm must be positive")
    time_s = math.sqrt(length_cm**3 / (G_CGS * mass_g))
    return UnitSystem(name, length_cm, mass_g, time_s, "L_nb", "M_nb", "T_nb")


NBODY = UnitSystem("nbody", None, None, None, "L", "M", "T")
AU_MSUN_YR = UnitSystem("au_msun_yr", AU_CM, MSUN_G, JULIAN_YEAR_S, "AU", "Msun", "yr")
CGS = UnitSystem("cgs", 1.0, 1.0, 1.0, "cm", "g", "s")
SI = UnitSystem("si", 100.0, 1000.0, 1.0, "m", "kg", "s")
PC_MSUN_MYR = UnitSystem("pc_msun_myr", PARSEC_CM, MSUN_G, 1e6 * JULIAN_YEAR_S, "pc", "Msun", "Myr")
UNIT_SYSTEMS: Registry[UnitSystem] = Registry(
    "unit system", {u.name: u for u in (NBODY, AU_MSUN_YR, CGS, SI, PC_MSUN_MYR)}, record_type=UnitSystem
)


def get_unit_system(units: str | UnitSystem) -> UnitSystem:
    """The :class:`UnitSystem` called ``units`` (a record passes through)."""
    return UNIT_SYSTEMS.get(units)


def convert(value, dimension: str, from_units: str | UnitSystem, to_units: str | UnitSystem):
    """Convert ``value`` (scalar or array) of the given dimension between unit systems."""
    source, target = get_unit_system(from_units), get_unit_system(to_units)
    return value * (source.scale(dimension) / target.scale(dimension))
