"""Initial conditions: analytic properties, sampling statistics, the Solar System's periods."""

import math

import jax
import numpy as np
import pytest

import nbody_core as nb
from nbody_core.physics.units import AU_MSUN_YR


def _in_com_frame(state, atol=1e-12):
    np.testing.assert_allclose(nb.center_of_mass(state), 0.0, atol=atol)
    np.testing.assert_allclose(nb.center_of_mass_velocity(state), 0.0, atol=atol)


@pytest.mark.parametrize("m1, m2, a, e", [(1.0, 1.0, 1.0, 0.0), (1.0, 1e-3, 2.0, 0.5), (3.0, 0.5, 0.7, 0.95)])
def test_kepler_energy_pericentre_and_frame(m1, m2, a, e):
    state = nb.kepler(m1, m2, a=a, e=e)
    _in_com_frame(state)
    separation = np.linalg.norm(np.asarray(state.position[1] - state.position[0]))
    assert separation == pytest.approx(a * (1 - e), rel=1e-14)
    # Two-body energy E = -G m1 m2 / (2a); vis-viva sets the speed, so this holds to round-off.
    assert float(nb.total_energy(state)) == pytest.approx(-m1 * m2 / (2 * a), rel=1e-13)
    # Angular momentum magnitude mu sqrt(G M a (1 - e^2)).
    mu = m1 * m2 / (m1 + m2)
    expected = mu * math.sqrt((m1 + m2) * a * (1 - e * e))
    assert float(np.linalg.norm(nb.angular_momentum(state))) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("kwargs, message", [
    ({"e": 1.0}, "eccentricity"), ({"a": -1.0}, "semi-major axis"), ({"m1": 0.0}, "masses must be positive"),
])
def test_kepler_rejects_bad_parameters(kwargs, message):
    args = {"m1": 1.0, "m2": 1.0, "a": 1.0, "e": 0.1, **kwargs}
    with pytest.raises(ValueError, match=message):
        nb.kepler(args.pop("m1"), args.pop("m2"), **args)


def test_figure_eight_and_pythagorean_values():
    eight = nb.figure_eight()
    _in_com_frame(eight)
    # Energy of the figure-eight with G = m = 1 (Simo 2002: E = -1.2871...).
    assert float(nb.total_energy(eight)) == pytest.approx(-1.28714, abs=1e-4)
    np.testing.assert_allclose(nb.angular_momentum(eight), 0.0, atol=1e-7)  # zero-L choreography
    pythagorean = nb.pythagorean()
    _in_com_frame(pythagorean)
    # At rest at a 3-4-5 triangle: U = -(3*4/5 + 3*5/4 + 4*5/3) = -769/60 exactly.
    assert float(nb.total_energy(pythagorean)) == pytest.approx(-769 / 60, rel=1e-15)
    sides = sorted(
        float(np.linalg.norm(pythagorean.position[i] - pythagorean.position[j])) for i, j in ((0, 1), (0, 2), (1, 2))
    )
    np.testing.assert_allclose(sides, [3.0, 4.0, 5.0], rtol=1e-15)


def test_solar_system_keplers_third_law():
    state, names = nb.solar_system(), nb.solar_system_names()
    assert names[0] == "Sun" and len(names) == 9 and state.units == "au_msun_yr"
    _in_com_frame(state, atol=1e-15)
    x, v, m = (np.asarray(a) for a in state[:3])
    G = AU_MSUN_YR.G
    # Known sidereal periods: Earth-Moon barycentre 365.25636 d = 1.0000174 yr, Jupiter
    # 4332.59 d = 11.862 yr. The osculating two-body period differs from the mean one by the
    # other planets' perturbations, ~1e-5 relative for Earth and ~1e-3 for Jupiter.
    for name, known, rtol in (("EMB", 1.0000174, 2e-5), ("Jupiter", 11.862, 1e-3)):
        i = names.index(name)
        dx, dv = x[i] - x[0], v[i] - v[0]
        mu = G * (m[0] + m[i])
        a = 1.0 / (2.0 / np.linalg.norm(dx) - dv @ dv / mu)  # vis-viva
        assert 2 * math.pi * math.sqrt(a**3 / mu) == pytest.approx(known, rel=rtol), name


@pytest.mark.slow  # 12 000 Yoshida steps of 9 bodies: ~5-10 s with compilation
def test_solar_system_orbits_periods_and_energy():
    state, names = nb.solar_system(), nb.solar_system_names()
    num_steps, dt = nb.steps_for_duration(12.0, 1e-3)
    # No params: G comes from the state's unit system (AU, Msun, yr).
    trajectory = nb.simulate(state, dt=dt, num_steps=num_steps, integrator="yoshida4")
    assert trajectory.units == "au_msun_yr" and trajectory.final_state.units == "au_msun_yr"
    # Yoshida-4 at dt = 1e-3 yr (Mercury's period / 240): measured 6e-10 over 12 years.
    assert float(np.max(trajectory.relative_energy_error)) < 1e-8
    position, time = np.asarray(trajectory.position), np.asarray(trajectory.time)
    # Heliocentric longitude sweeps 2 pi after one sidereal period. Perturbations (Saturn's
    # on Jupiter, the great inequality) move a single orbit's period by up to ~0.1 %.
    for name, known, tolerance in (("EMB", 1.0000174, 5e-5), ("Jupiter", 11.862, 0.02)):
        i = names.index(name)
        relative = position[:, i] - position[:, 0]
        angle = np.unwrap(np.arctan2(relative[:, 1], relative[:, 0]))
        angle = angle - angle[0]
        k = int(np.searchsorted(angle, 2 * math.pi))
        crossing = time[k - 1] + (2 * math.pi - angle[k - 1]) / (angle[k] - angle[k - 1]) * (time[k] - time[k - 1])
        assert crossing == pytest.approx(known, abs=tolerance), name


def test_solar_system_state_carries_its_units_so_g_is_never_silently_one():
    """issue 12 point 2: ``simulate(solar_system(), ...)`` used G = 1 and moved the
    Earth-Moon barycentre 82 degrees in one year."""
    state, names = nb.solar_system(), nb.solar_system_names()
    trajectory = nb.simulate(state, dt=1e-3, num_steps=1000, save_every=1000)
    emb, sun = names.index("EMB"), names.index("Sun")
    start, end = (np.asarray(trajectory.position[k, emb] - trajectory.position[k, sun]) for k in (0, -1))
    angle = math.degrees(math.atan2(np.cross(start, end)[2], start @ end))
    # One Julian year is 0.99998 sidereal years of the EMB: it comes back to within
    # 360 * 1.7e-5 = 0.006 degrees (perturbations by the planets: far below 0.05 degrees).
    assert abs(angle) < 0.05
    # The state's G is used everywhere a default G was: diagnostics agree with explicit G.
    explicit = nb.PhysicsParams(G=AU_MSUN_YR.G)
    assert float(nb.total_energy(state)) == float(nb.total_energy(state, explicit))
    # An explicit G from another unit system is refused, not used.
    with pytest.raises(ValueError, match=r"'au_msun_yr' units, where G = 39\.47.*params\.G = 1"):
        nb.simulate(state, dt=1e-3, num_steps=10, params=nb.PhysicsParams(softening=0.01))
    with pytest.raises(ValueError, match="au_msun_yr"):
        nb.advance(state, 10, dt=1e-3, params=nb.PhysicsParams())
    # The units survive the trajectory and a continued run.
    assert nb.advance(trajectory.final_state, 10, dt=1e-3).units == "au_msun_yr"


def test_every_initial_condition_function_returns_a_state(key):
    built = [nb.kepler(), nb.figure_eight(), nb.pythagorean(), nb.solar_system(), nb.plummer(key, 8),
             nb.cold_collapse(key, 8), nb.rotating_disk(key, 8)]
    assert all(isinstance(state, nb.ParticleState) for state in built)
    assert [state.units for state in built] == ["nbody"] * 3 + ["au_msun_yr"] + ["nbody"] * 3


def test_plummer_virial_equilibrium_and_energy(key):
    n = 2048
    state = nb.plummer(key, n)
    _in_com_frame(state, atol=1e-14)
    assert float(np.sum(state.mass)) == pytest.approx(1.0, rel=1e-14)
    # Sampling noise: over 8 seeds at n = 2048 the standard deviations were 0.008 (Q) and
    # 0.0063 (E); the tolerances are ~4 sigma. Henon units: Q = 1/2, E = -1/4 (the 0.1 %
    # mass cut shifts E by < 0.001).
    assert float(nb.virial_ratio(state)) == pytest.approx(0.5, abs=0.035)
    assert float(nb.total_energy(state)) == pytest.approx(-0.25, abs=0.025)
    # Half-mass radius of a Plummer sphere: a / sqrt(2^(2/3) - 1) with a = 3 pi / 16; the
    # median of n radii has a sampling error ~ 1 / sqrt(n) relative (2 %).
    half_mass = 3 * math.pi / 16 / math.sqrt(2 ** (2 / 3) - 1)
    assert float(np.median(np.linalg.norm(np.asarray(state.position), axis=1))) == pytest.approx(half_mass, rel=0.06)
    rescaled = nb.plummer(key, n, virial_ratio=0.3)
    assert float(nb.virial_ratio(rescaled)) == pytest.approx(0.3, rel=1e-12)
    # Seeded: the same key gives the same sphere, another key a different one.
    np.testing.assert_array_equal(nb.plummer(key, n).position, state.position)
    assert not np.allclose(nb.plummer(jax.random.key(1), n).position, state.position)


def test_cold_collapse_is_cold_and_uniform(key):
    state = nb.cold_collapse(key, 2048, radius=2.0)
    assert float(nb.virial_ratio(state)) == 0.0  # Q = 0 exactly: every velocity is zero
    radius = np.linalg.norm(np.asarray(state.position) - np.asarray(nb.center_of_mass(state)), axis=1)
    # Inside the sphere up to the shift to the centre-of-mass frame, whose size per axis has
    # a standard deviation R sqrt(1/5) / sqrt(n) = 0.02: 0.1 is ~4 sigma in 3D.
    assert radius.max() <= 2.0 + 0.1
    # Uniform density: (r / R)^3 is uniform on [0, 1], mean 1/2, standard error 0.29 / sqrt(n)
    # = 0.0064; 0.03 is ~4.5 sigma plus the COM shift.
    assert float(np.mean((radius / 2.0) ** 3)) == pytest.approx(0.5, abs=0.03)
    warm = nb.cold_collapse(key, 256, virial_ratio=0.25)
    assert float(nb.virial_ratio(warm)) == pytest.approx(0.25, rel=1e-12)


def test_rotating_disk_circular_speeds(key):
    state = nb.rotating_disk(key, 256, disk_mass=0.01, thickness=0.0)
    x, v = np.asarray(state.position), np.asarray(state.velocity)
    relative, relative_velocity = x[1:] - x[0], v[1:] - v[0]
    radius = np.linalg.norm(relative[:, :2], axis=1)
    assert radius.min() >= 0.5 - 1e-2 and radius.max() <= 2.0 + 1e-2
    # Velocities are tangential...
    radial_velocity = np.sum(relative[:, :2] * relative_velocity[:, :2], axis=1) / radius
    assert np.abs(radial_velocity).max() < 1e-12
    # ...and v^2 / r balances the central mass's pull plus the enclosed disk mass, which
    # the real (flattened, granular) disk's gravity matches to the disk's mass fraction.
    acceleration = np.asarray(nb.acceleration_analytic(state.position, state.mass, nb.PhysicsParams(softening=0.01)))
    inward = -np.sum((acceleration[1:] - acceleration[0])[:, :2] * relative[:, :2], axis=1) / radius
    centripetal = np.sum(relative_velocity[:, :2] ** 2, axis=1) / radius
    ratio = centripetal / inward
    assert np.median(np.abs(ratio - 1)) < 0.02
    assert np.mean(np.abs(ratio - 1) < 0.05) > 0.9  # a few bodies sit next to a neighbour


@pytest.mark.parametrize("name", list(nb.PRESETS))
def test_every_preset_builds_a_valid_state(name, key):
    preset = nb.get_preset(name)
    state = preset.build(key, preset.default_num_bodies and 64)
    assert state.position.shape[1] == 3 and state.num_bodies >= 2
    assert np.isfinite(np.asarray(state.position)).all() and (np.asarray(state.mass) > 0).all()
    _in_com_frame(state, atol=1e-12)
    assert preset.dt > 0 and preset.t_end > 0 and preset.units in nb.UNIT_SYSTEMS


def test_bad_counts_and_names(key):
    with pytest.raises(ValueError, match="at least 2"):
        nb.plummer(key, 1)
    with pytest.raises(ValueError, match="exceeds the cap"):
        nb.cold_collapse(key, nb.MAX_BODIES + 1)
    with pytest.raises(ValueError, match="must be an integer"):
        nb.rotating_disk(key, 10.5)
    with pytest.raises(ValueError, match="unknown preset 'galaxy'"):
        nb.get_preset("galaxy")
