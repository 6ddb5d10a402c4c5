"""Fixed-step integrators: convergence order, reversibility, energy behaviour, momentum."""

import numpy as np
import pytest

import nbody_core as nb
from kepler_analytic import kepler_positions

KEPLER = dict(m1=1.0, m2=1.0, a=1.0, e=0.5)

# Step sizes in each integrator's asymptotic range: errors well above round-off (>= 1e-9)
# and well below order one.
CONVERGENCE_STEPS = {
    "euler": [2e-3, 1e-3, 5e-4, 2.5e-4],
    "leapfrog": [2e-2, 1e-2, 5e-3, 2.5e-3],
    "yoshida4": [4e-2, 2e-2, 1e-2, 5e-3],
    "yoshida4_kdk": [4e-2, 2e-2, 1e-2, 5e-3],
    "rk4": [4e-2, 2e-2, 1e-2, 5e-3],
}


FIXED_STEP = nb.INTEGRATORS.where(lambda integrator: not integrator.adaptive)


@pytest.mark.parametrize("name", FIXED_STEP)
def test_measured_convergence_order(name):
    state = nb.kepler(KEPLER["m1"], KEPLER["m2"], a=KEPLER["a"], e=KEPLER["e"])
    t_final = 2.0  # about half an orbit, through pericentre passage's fast part
    exact = kepler_positions([t_final], **KEPLER)[0]
    dts, errors = np.array(CONVERGENCE_STEPS[name]), []
    for dt in dts:
        num_steps = round(t_final / dt)
        # advance traces num_steps: one compilation for all four step sizes.
        final = nb.advance(state, num_steps, dt=t_final / num_steps, integrator=name)
        errors.append(np.abs(np.asarray(final.position) - exact).max())
    slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    # Issue requirement: within +-0.3 of the theoretical order (measured 0.99, 2.00, 3.99, 4.11).
    assert abs(slope - nb.INTEGRATORS[name].order) < 0.3, (name, slope, errors)


def test_leapfrog_is_time_reversible_rk4_is_not():
    state = nb.figure_eight()

    def there_and_back(integrator):
        forward = nb.advance(state, 300, dt=1e-2, integrator=integrator)
        back = nb.advance(forward._replace(velocity=-forward.velocity), 300, dt=1e-2, integrator=integrator)
        return np.abs(np.asarray(back.position) - np.asarray(state.position)).max()

    # Leapfrog (KDK) is exactly symmetric: only round-off remains (~1e-16 per step, grown
    # by the mild instability of the orbit over 600 steps).
    assert there_and_back("leapfrog") < 1e-12
    assert there_and_back("yoshida4") < 1e-12  # a symmetric composition of leapfrogs
    assert there_and_back("yoshida4_kdk") < 1e-12
    # RK4 is not symmetric: its truncation error (~dt^5 per step) does not cancel.
    assert there_and_back("rk4") > 1e-10


def test_symplectic_energy_error_bounded_rk4_and_euler_drift():
    state = nb.kepler(KEPLER["m1"], KEPLER["m2"], a=KEPLER["a"], e=KEPLER["e"])
    period = nb.kepler_period(a=1.0, total_mass=2.0)

    def first_and_last_tenth(integrator, steps_per_orbit, orbits):
        trajectory = nb.simulate(
            state, dt=period / steps_per_orbit, num_steps=steps_per_orbit * orbits, save_every=10,
            integrator=integrator,
        )
        error = np.asarray(trajectory.relative_energy_error)
        tenth = len(error) // 10
        return error[:tenth].max(), error[-tenth:].max()

    # Symplectic: a shadow Hamiltonian is conserved, so the error oscillates with a fixed
    # amplitude over 100 orbits (measured 1.08e-2 and 3.1e-4 in the first and last tenth).
    for integrator in ("leapfrog", "yoshida4", "yoshida4_kdk"):
        first, last = first_and_last_tenth(integrator, 100, 100)
        assert last < 1.1 * first, (integrator, first, last)
        assert first < (0.02 if integrator == "leapfrog" else 1e-3)
    # Non-symplectic: secular drift, the error grows ~linearly (measured x10 and x8).
    first, last = first_and_last_tenth("rk4", 100, 100)
    assert last > 5 * first
    first, last = first_and_last_tenth("euler", 2000, 10)
    assert last > 5 * first


@pytest.mark.parametrize("name", list(nb.INTEGRATORS))
def test_momentum_conserved_to_round_off(name, key):
    state = nb.plummer(key, 256)
    params = nb.PhysicsParams(softening=0.01)
    if nb.get_integrator(name).adaptive:
        span = dict(t_end=float(state.time) + 0.04, num_saves=4)
    else:
        span = dict(dt=1e-3, num_steps=40, save_every=10)
    trajectory = nb.solve(state, params=params, integrator=name, **span).trajectory
    momentum = np.asarray(trajectory.linear_momentum)
    angular = np.asarray(trajectory.angular_momentum)
    # Pairwise forces cancel exactly in exact arithmetic, and every integrator updates P
    # linearly; round-off is ~1e-16 x sqrt(n) x the typical momentum per body (~1e-2 here),
    # so 1e-14 leaves a wide margin yet fails for any real leak.
    assert np.abs(momentum).max() < 1e-14
    if nb.INTEGRATORS[name].symplectic:
        # Kicks and drifts each conserve L = sum m x cross v exactly (central forces; v x v = 0),
        # so their compositions do too, to round-off. Euler changes L by dt^2 m v x a per step.
        assert np.abs(angular - angular[0]).max() < 1e-13


def test_registry_and_unknown_name():
    assert {name: i.order for name, i in nb.INTEGRATORS.items()} == {
        "euler": 1, "leapfrog": 2, "yoshida4": 4, "rk4": 4, "yoshida4_kdk": 4, "dopri8": 8, "ias15": 15,
    }
    assert [i.symplectic for i in nb.INTEGRATORS.values()] == [False, True, True, False, True, False, False]
    # One registry: each record says what it is, and how it runs.
    assert nb.INTEGRATORS.where(lambda i: i.adaptive) == ("dopri8", "ias15")
    for record in nb.INTEGRATORS.values():
        assert (record.build is None) == record.adaptive == (record.solver is not None)
    # Okabe-Ito colours (colour-blind safe), one per integrator.
    okabe_ito = {"#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7"}
    colors = [i.color for i in nb.INTEGRATORS.values()]
    assert set(colors) <= okabe_ito and len(set(colors)) == len(colors)
    with pytest.raises(ValueError, match="unknown integrator 'verlet'"):
        nb.get_integrator("verlet")


def test_yoshida4_drift_kick_drift_beats_kick_drift_kick_at_equal_cost():
    # Issue 12 point 8: same three force evaluations per step, DKD's error constant is smaller.
    state, period = nb.figure_eight(), nb.FIGURE_EIGHT_PERIOD
    # Reference: RK4 at dt = 2e-4 is converged to ~1e-13 here (error ~ dt^4).
    reference = np.asarray(nb.simulate(state, dt=2e-4, t_end=period, integrator="rk4", save_every=10**6).position[-1])
    errors = {}
    for name in ("yoshida4", "yoshida4_kdk"):
        final = nb.simulate(state, dt=2e-2, t_end=period, integrator=name, save_every=10**6).position[-1]
        errors[name] = np.abs(np.asarray(final) - reference).max()
    # Measured 2.18e-6 vs 1.30e-5 (x5.96; x5.9-6.0 at dt = 0.04, 0.02, 0.01).
    assert errors["yoshida4_kdk"] > 4 * errors["yoshida4"], errors
