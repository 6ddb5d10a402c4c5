"""Chaos tab logic without a browser: state, twin run, drawn sources and the summary."""

import numpy as np
import pytest

from nbody_explorer.state.chaos import PIECES, SYSTEMS, ChaosState
from nbody_explorer.views.chaos import ChaosView


@pytest.fixture(scope="module")
def view():
    view = ChaosView(ChaosState(system="pythagorean", delta=1e-9))
    view.run()  # not served: runs at once on this thread
    return view


def test_pythagorean_twins_are_drawn_with_a_lyapunov_time(view):
    run = view.state.result
    assert run is not None and not view.state.error
    assert len(view.orbit_sources[0].data["xs"]) == len(view.orbit_sources[1].data["xs"]) == 3
    d = np.asarray(view.separation_source.data["d"])
    assert d[0] == pytest.approx(1e-9, rel=1e-6) and d.max() > 1e6 * d[0]  # grows > 6 decades
    assert len(view.fit_source.data["t"]) == 2
    # Same settings as tests/nbody_core/test_chaos.py: t_L measured 1.46 there.
    assert 0.5 < run.fit.lyapunov_time < 5.0
    assert "Lyapunov time" in view.summary.object
    assert not view.run_button.disabled


def test_regular_kepler_orbit_reports_slow_growth():
    state = ChaosState(system="kepler", delta=1e-9)
    run = state.run()
    assert run is not None
    # Saved 10 times per period for 40 periods: snapshots 200 and 400 are both at pericentre
    # (20 and 40 periods). Linear growth doubles the separation between them; exponential
    # growth at the fitted rate would multiply it by exp(20 P / t_L).
    assert run.separation.size == 401
    assert run.separation[400] / run.separation[200] == pytest.approx(2.0, rel=0.05)  # measured 1.99999
    assert run.fit.regular
    assert "No exponential growth detected: regular orbit" in state.summary()
    assert "Lyapunov time t_L" not in state.summary()


def test_plummer_twin_is_offered_and_drawn_with_its_lyapunov_time():
    view = ChaosView(ChaosState(system="plummer"))
    assert view.state.delta == 1e-9  # the default perturbation
    view.run()
    run = view.state.result
    assert run is not None and not run.fit.regular
    assert len(view.orbit_sources[0].data["xs"]) == 32
    # Same settings as tests/nbody_core/test_chaos.py (measured t_L = 0.32 there).
    assert 0.1 < run.fit.lyapunov_time < 1.0
    assert "Lyapunov time t" in view.summary.object and "regular" not in view.summary.object
    assert len(view.fit_source.data["t"]) == 2 and len(view.power_source.data["t"]) == 0


def test_regular_orbit_draws_a_power_law_instead_of_an_exponential():
    view = ChaosView(ChaosState(system="figure_eight"))
    view.run()
    assert view.state.result.fit.regular
    assert len(view.fit_source.data["t"]) == 0 and len(view.power_source.data["t"]) > 10
    assert "regular orbit" in view.summary.object


def test_every_system_has_a_friendly_name():
    for key in SYSTEMS:
        assert ChaosState.system_label(key)[0].isupper() and "_" not in ChaosState.system_label(key)


def test_the_twins_run_in_pieces_with_a_checkpoint_between_them():
    state = ChaosState(system="kepler", delta=1e-9)
    calls = []
    assert state.compute(checkpoint=lambda: calls.append(1)) is not None
    assert len(calls) == PIECES
