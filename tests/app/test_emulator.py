"""Emulator tab logic without a browser: generate, train, plots, a live check, refusals."""

from __future__ import annotations

import io

import numpy as np
import pytest

from nbody_explorer.limits import LIMITS
from nbody_explorer.state.emulator import EmulatorState
from nbody_explorer.views.emulator import EmulatorView
from nbody_core.emulator import load_emulator
from nbody_core.ensembles import EnsembleSpec, run_ensemble
from tests.app.conftest import shown_text


@pytest.fixture(scope="module")
def trained_view():
    # Tiny on purpose: N = 4, 96 members (enough for a 3-point learning curve), 10 steps, 2 small
    # networks, 100 training steps: the point is the wiring.
    state = EmulatorState(gen_bodies=4, gen_members=96, gen_steps=10, num_networks=2, width=8, max_steps=100)
    view = EmulatorView(state)
    view.generate()
    assert state.data is not None, state.error
    view.train()
    return view


def test_generate_then_train_fills_every_plot(trained_view):
    view, state = trained_view, trained_view.state
    assert state.data.input_names == ("softening", "virial_ratio")
    assert state.emulator is not None and view.progress.value == 1000
    test_size = len(state.report.split.test)
    assert len(view.scatter_source.data["simulated"]) == test_size
    lower, upper = np.asarray(view.scatter_source.data["lower"]), np.asarray(view.scatter_source.data["upper"])
    assert np.all(lower < upper)
    assert len(view.curve_source.data["members"]) == 3  # 1/4, 1/2 and all training members
    assert sorted(view.curve_source.data["members"]) == list(view.curve_source.data["members"])
    assert len(view.band_source.data["x"]) == 120 and len(view.sim_source.data["x"]) > 0
    assert "MLP test RMSE" in view.metrics.object and "GP" in view.metrics.object
    assert not view.train_button.disabled and not view.check_button.disabled
    state.output = "lagrangian_radius_90"
    assert "lagrangian_radius_90" in view.scatter_figure.title.text
    state.axis = "softening"
    assert view.band_figure.xaxis.axis_label.startswith("softening")
    assert state.check_value == pytest.approx(np.sqrt(0.01 * 0.3))  # mid-range (log)


def test_run_the_simulator_here_checks_one_point(trained_view):
    view, state = trained_view, trained_view.state
    state.check_value = 0.05
    view.check()
    check = state.last_check
    assert check["replicas"] == 8 and len(view.check_source.data["y"]) == 8
    assert view.check_source.data["x"][0] == pytest.approx(0.05)
    assert "fresh simulations inside ±2 sd" in view.check_status.object
    state.check_value = 5.0  # outside the trained range: refused, nothing run
    view.check()
    assert "outside the trained range" in view.message.object and state.last_check is check


def test_measure_accuracy_shows_the_emulator_beside_the_baselines(trained_view):
    view, state = trained_view, trained_view.state
    assert not view.accuracy_button.disabled
    view.measure_accuracy()
    accuracy = state.accuracy
    assert accuracy is not None, state.error
    assert len(accuracy["points"]) == 4 and accuracy["replicas"] == 8  # 2 x 2 grid, 8 replicas each
    assert set(accuracy["models"]) == {"emulator", "training mean", "linear", "quadratic"}
    table = view.accuracy_table.object  # a Markdown table on purpose (as view.metrics)
    assert "Error of the mean / scatter" in table and "| quadratic |" in table


def test_download_is_a_loadable_model(trained_view, tmp_path):
    view, state = trained_view, trained_view.state
    assert view.download.filename.endswith(".npz") and not view.download.disabled
    path = tmp_path / "model.npz"
    path.write_bytes(view._download_file().getvalue())
    model = load_emulator(path)
    x = state.data.inputs[:5]
    assert np.array_equal(model.predict(x)[0], state.emulator.predict(x)[0])


def test_uploads_are_checked_and_names_escaped(tmp_path):
    view = EmulatorView(EmulatorState())
    view.upload.filename = "<b>evil</b>.npz"
    view.state.load_upload(b"not a zip", "<b>evil</b>.npz")
    assert "not a readable npz" in shown_text(view.message.object)  # and no <b> rendered
    view.state.load_upload(b"x" * (LIMITS.max_upload_bytes + 1), "big.npz")
    assert "limit" in view.message.object
    buffer = io.BytesIO()
    np.savez(buffer, x=np.zeros(2))
    view.state.load_upload(buffer.getvalue(), "plain.npz")
    assert "not an ensemble file" in view.message.object
    assert view.state.data is None and view.train_button.disabled
    # A real ensemble file (no sweep) is refused with the reason; one with a sweep loads.
    spec = EnsembleSpec(num_bodies=4, num_members=24, num_steps=5, dt=0.01)
    view.state.load_upload(run_ensemble(spec).npz_bytes(), "nosweep.npz")
    assert "no swept numeric parameter" in view.message.object
    spec = EnsembleSpec(num_bodies=4, num_members=24, num_steps=5, dt=0.01, sweeps=("virial_ratio=0.3:0.7",))
    assert view.state.load_upload(run_ensemble(spec).npz_bytes(), "ok.npz")
    # One of the 24 (N = 4 at dt = 0.01, a close pair) misses the 1e-3 energy target: dropped and said so.
    assert view.state.data.num_members == 23 and view.state.data.dropped_unconverged == 1
    assert not view.train_button.disabled
    assert "1 dropped over the energy-error target 0.001" in shown_text(view.dataset_status.object)
    # The generated sweep respects the server's ensemble caps.
    view.state.gen_members = LIMITS.max_ensemble_members + 1
    view.generate()
    assert "number of ensemble members" in view.message.object and view.state.data.num_members == 23
    assert "ok.npz: 23 members" in shown_text(view.dataset_status.object)


def test_posterior_from_an_observed_value(trained_view):
    view, state = trained_view, trained_view.state
    state.param.update(axis="virial_ratio", output="lagrangian_radius_50")
    # Observe exactly what the emulator predicts at virial ratio 0.5 (other input mid-range):
    # the posterior must put 0.5 inside its 95 % interval.
    point = {**state.fixed_values(), "virial_ratio": 0.5}
    state.observed_value = state.emulator.predict_named(point)["lagrangian_radius_50"][0]
    view.infer()
    posterior = state.posterior
    assert posterior.names == ("virial_ratio",) and len(view.posterior_source.data["x"]) == 201
    assert abs(sum(view.posterior_source.data["density"]) - 1) < 1e-9  # normalised grid mass
    assert posterior.interval[0, 0] <= 0.5 <= posterior.interval[0, 1]
    assert "95 % interval" in shown_text(view.posterior_status.object)
