"""Unit systems and conversions against published constants."""

import math

import numpy as np
import pytest

from nbody_core.physics.units import (
    AU_MSUN_YR,
    CGS,
    NBODY,
    SI,
    UNIT_SYSTEMS,
    convert,
    get_unit_system,
    nbody_units,
)


def test_au_per_year_in_km_per_s():
    # 1 AU / Julian year = 1.495978707e8 km / 31 557 600 s = 4.740470 km/s (IAU AU, exact).
    assert convert(1.0, "velocity", "au_msun_yr", "si") / 1e3 == pytest.approx(4.740470, rel=1e-6)
    assert convert(29.78, "velocity", "si", "au_msun_yr") * 1e3 == pytest.approx(6.2821, rel=1e-4)


def test_gravitational_constant_in_each_system():
    assert SI.G == pytest.approx(6.67430e-11, rel=1e-12)  # CODATA 2018
    assert CGS.G == pytest.approx(6.67430e-8, rel=1e-12)
    # Gaussian constant: G = k^2 AU^3 / (Msun day^2) -> (k * 365.25)^2 = 39.4769 per Julian
    # year, vs 4 pi^2 = 39.4784 for a year defined by Earth's orbit (Kepler III).
    assert AU_MSUN_YR.G == pytest.approx((0.01720209895 * 365.25) ** 2, rel=1e-12)
    assert AU_MSUN_YR.G == pytest.approx(4 * math.pi**2, rel=1e-4)
    assert NBODY.G == 1.0
    # Solar mass implied by k and the IAU AU agrees with the IAU nominal 1.98841e33 g to 1e-4
    # (the residual is G's own uncertainty).
    assert AU_MSUN_YR.mass_g == pytest.approx(1.98841e33, rel=1e-4)


@pytest.mark.parametrize("dimension", ["length", "mass", "time", "velocity", "energy", "angular_momentum"])
def test_round_trip_every_pair(dimension):
    value = np.array([1.5, -2.25e3])
    for source in ("au_msun_yr", "cgs", "si", "pc_msun_myr"):
        for target in ("au_msun_yr", "cgs", "si", "pc_msun_myr"):
            there = convert(value, dimension, source, target)
            np.testing.assert_allclose(convert(there, dimension, target, source), value, rtol=1e-14)


def test_energy_and_parsec_conversions():
    # 1 erg = 1e-7 J; 1 pc / Myr = 0.9778 km/s.
    assert convert(1.0, "energy", "cgs", "si") == pytest.approx(1e-7, rel=1e-14)
    assert convert(1.0, "velocity", "pc_msun_myr", "si") / 1e3 == pytest.approx(0.977792, rel=1e-5)


def test_scaled_nbody_units_have_g_equal_one():
    units = nbody_units(mass_g=AU_MSUN_YR.mass_g, length_cm=AU_MSUN_YR.length_cm)
    assert units.G == pytest.approx(1.0, rel=1e-12)
    # With M = 1 Msun and L = 1 AU the time unit is 1 yr / (2 pi) (to the Gaussian year).
    assert units.time_s / AU_MSUN_YR.time_s == pytest.approx(1 / math.sqrt(AU_MSUN_YR.G), rel=1e-12)


def test_labels_and_errors():
    assert AU_MSUN_YR.label("velocity") == "AU / yr"
    assert AU_MSUN_YR.label("energy") == "AU^2 Msun / yr^2"
    assert NBODY.label("time") == "T"
    assert set(UNIT_SYSTEMS) >= {"nbody", "au_msun_yr", "cgs", "si"}
    with pytest.raises(ValueError, match="N-body units have no physical scale"):
        convert(1.0, "length", "nbody", "si")
    with pytest.raises(ValueError, match="unknown dimension 'colour'"):
        convert(1.0, "colour", "si", "cgs")
    with pytest.raises(ValueError, match="unknown unit system 'imperial'"):
        get_unit_system("imperial")
    with pytest.raises(ValueError, match="must be positive"):
        nbody_units(mass_g=-1.0, length_cm=1.0)
