"""Inference tab logic without a browser: settings, a short run drawn into every plot,
refusals, stopping and the finite-difference panel."""

import math
import threading
import time

import numpy as np
import pytest

from nbody_explorer.state.inference import InferenceState
from nbody_explorer.views.inference import MAX_PARAMETERS, InferenceView
from tests.app.conftest import mark_served, shown_text

SMALL = dict(problem="triple", num_obs=4, num_chains=2, num_warmup=40, num_samples=10, chunk_size=5, seed=1)


@pytest.fixture(scope="module")
def view():
    view = InferenceView(InferenceState(**SMALL))
    view._on_start()  # not served: runs synchronously, chunk by chunk, through _apply_chunk
    return view


def test_run_fills_state_and_diagnostics(view):
    state = view.state
    assert not state.running and state.status.startswith("Done")
    assert state.draws.shape == (2, 40 + 10, 3)
    assert state.num_warmup_done == 40 and state.num_post_warmup == 10
    d = state.diagnostics
    assert set(d["parameters"]) == {"log_m0", "log_m1", "log_m2"}
    assert 0 <= d["acceptance_rate"] <= 1
    for row in d["parameters"].values():
        assert math.isfinite(row["mean"]) and math.isfinite(row["ess_bulk"]) and math.isfinite(row["r_hat"])
    assert d["parameters"]["log_m0"]["truth"] == pytest.approx(np.log(1.1))


def test_run_draws_every_plot(view):
    assert view.trace_source.data["iteration"] == list(range(50))
    assert len(view.trace_source.data["p0_c1"]) == 50 and np.isnan(view.trace_source.data["p0_c2"]).all()
    L = view.state.leapfrog_steps
    assert len(view.path_source.data["x"]) == L + 1  # the current proposal's leapfrog path
    assert len(view.arrow_source.data["x0"]) == L + 1  # a gradient arrow at every step
    assert view.path_line_source.data["color"][0] in ("#2ca02c", "#d62728")
    assert len(view.gradnorm_source.data["norm"]) == L + 1 and min(view.gradnorm_source.data["norm"]) > 0
    assert len(view.energy_source.data["iteration"]) > 0
    assert sum(view.hist_sources[0].data["count"]) == 2 * 10
    assert view.stats_source.data["parameter"] == ["log_m0", "log_m1", "log_m2"]
    assert np.isfinite(view.stats_source.data["r_hat"]).all()
    assert "R-hat" in view.stats_table.object and "log_m2" in view.stats_table.object
    assert view.truth_spans[1].location == pytest.approx(np.log(0.9))
    assert [f.visible for f in view.trace_figures] == [True] * 3 + [False] * (MAX_PARAMETERS - 3)
    # Only the three parameters' panels are in the page: a hidden figure's ranges are NaN and
    # BokehJS warned "could not set initial ranges" for each at every render (issue 28, item 6).
    assert [pane.object for pane in view.trace_column.objects] == view.trace_figures[:3]
    assert [pane.object for pane in view.hist_row.objects] == view.hist_figures[:3]
    # The recorded path starts where chain 0 stood before its last transition.
    info = view.state.last_info
    np.testing.assert_allclose(info.path_position[0, -1, 0], view.state.draws[0, -2])


def test_plane_choice_redraws_path(view):
    state = view.state
    state.plane_y = "log_m2"
    path = view.state.last_info.path_position[0, -1]
    np.testing.assert_allclose(view.path_source.data["y"], path[:, 2])
    assert view.truth_point.data["y"] == [pytest.approx(0.0)]
    state.plane_y = "log_m1"


def test_parameter_set_changes_plane_choices():
    state = InferenceState()
    state.parameters = "masses+G+velocity"
    assert state.param.plane_x.objects == ["log_m0", "log_m1", "log_m2", "log_G", "vx2"]
    state.problem = "star_planets"
    assert state.parameter_names()[-1] == "vx1"


def test_bad_settings_are_refused_with_a_message(view):
    state = view.state
    before = state.draws.copy()
    state.auto_step_size, state.num_warmup = True, 0
    view._on_start()
    assert view.message.visible and "warm-up" in shown_text(view.message.object)
    np.testing.assert_array_equal(state.draws, before)  # previous results kept
    state.num_warmup = 40
    with pytest.raises(ValueError):
        state.noise = -1.0  # param bounds refuse it before the sampler sees it


def test_stop_ends_a_run_early():
    state = InferenceState(**{**SMALL, "num_samples": 50})
    run = state.start()
    state.record(run.warmup())
    state.record(run.next_chunk())
    state.finish("Stopped by the user")
    assert not state.running and state.num_post_warmup == 5 and not run.done


def test_finite_difference_panel(view):
    sweep = view.state.gradient_error_sweep()
    view._show_sweep(sweep)
    errors = np.asarray(view.fd_source.data["error"])
    # The V: a minimum below 1e-6 in the interior of the h sweep (float64 central differences).
    assert errors.min() < 1e-6 and 0 < int(np.argmin(errors)) < len(errors) - 1
    costs = view.state.gradient_costs((1, 3), num_bodies=4, num_steps=2, num_obs=1, repeats=3)
    view._show_costs(costs)
    data = view.cost_source.data
    assert data["d"] == [1, 3]
    assert all(v > 0 for v in data["finite_difference_ms"])
    # Medians of the repeats with their spread (issue 28 item 7: one call is noise).
    for kind in ("forward", "autodiff", "finite_difference"):
        for low, median, high, cost in zip(data[f"{kind}_min_ms"], data[f"{kind}_ms"], data[f"{kind}_max_ms"], costs):
            assert low <= median <= high
            assert median == pytest.approx(1e3 * float(np.median(getattr(cost, f"{kind}_times_s"))))
    assert "finite differences" in view.fd_status.object and "medians of 3 calls" in view.fd_status.object


def test_disagreeing_chains_give_a_visible_warning():
    # A fixed step of 1e-6 (the smallest allowed) leaves each chain at its own prior draw (the chains now start
    # overdispersed), so they cannot agree: the state says so and the status line shows it.
    state = InferenceState(**{**SMALL, "auto_step_size": False, "step_size": 1e-6, "num_warmup": 1,
                              "num_samples": 10})
    run = state.start()
    state.record(run.warmup())
    while not run.done:
        state.record(run.next_chunk())
    state.finish()
    assert state.chains_warning is not None and "chains disagree" in state.chains_warning
    assert "Warning: chains disagree" in state.status


def test_closing_the_tab_stops_the_warm_up_within_one_block(monkeypatch):
    # The warm-up runs as blocks of at most chunk_size transitions; the tab closes after the
    # second block and at most the block running then finishes.
    import nbody_explorer.state.inference as inference_state

    view = InferenceView(InferenceState(**{**SMALL, "num_warmup": 400, "chunk_size": 5}))
    blocks = []  # one entry per block about to start: was the stop already set?
    real_warmup = inference_state.hmc.warmup_chains_in_blocks

    def counting_warmup(*args, before_block, **options):
        def hook(done):
            blocks.append(view.runner.stop.is_set())
            before_block(done)

        return real_warmup(*args, before_block=hook, **options)

    monkeypatch.setattr(inference_state.hmc, "warmup_chains_in_blocks", counting_warmup)

    mark_served(view)
    view._on_start()
    job = view.job("chunk")
    assert _poll(lambda: len(blocks) >= 3 or job.finished.is_set())
    assert not job.finished.is_set(), "the warm-up ended before it could be stopped"
    at_stop = len(blocks)
    view.runner._on_session_destroyed(None)  # the tab closed
    assert _poll(job.finished.is_set)
    assert len(blocks) - at_stop <= 1 and blocks[at_stop:] in ([], [True])
    assert job.error is None and job.cancelled()
    assert len(blocks) < 400 // 5  # stopped early, not at the end of the warm-up


def _poll(condition, timeout_s: float = 120.0) -> bool:
    """Wait for ``condition()`` (no fixed sleeps: a loaded machine only makes it slower)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        threading.Event().wait(0.02)
    return condition()


def test_metric_select_sets_leapfrog_steps_and_paths_are_drawn_in_theta():
    state = InferenceState(**{**SMALL, "num_samples": 5})
    assert state.metric == "laplace" and state.leapfrog_steps == 2  # nbody_core.defaults
    state.metric = "diagonal"
    assert state.leapfrog_steps == 10
    state.metric = "laplace"
    assert state.leapfrog_steps == 2
    run = state.start()
    assert run.whitening is not None and run.leapfrog_steps == 2
    state.record(run.warmup())
    assert "step size (whitened coordinates)" in state.status
    state.record(run.next_chunk())
    info = state.last_info
    # Every leapfrog step is recorded, in the parameters: the gradient recorded at each path point is
    # the log posterior's gradient there (chain rule through the whitening; float64 round-off).
    import jax

    path = np.asarray(info.path_position[0, -1])
    assert path.shape == (2 + 1, 3)
    exact = np.asarray(jax.vmap(jax.grad(run.problem.logdensity_fn))(path))
    np.testing.assert_allclose(np.asarray(info.path_gradient[0, -1]), exact, rtol=1e-8,
                               atol=1e-8 * np.abs(exact).max())
    np.testing.assert_allclose(state.draws[:, -1], np.where(
        np.asarray(info.is_accepted)[:, -1, None], np.asarray(info.path_position)[:, -1, -1],
        np.asarray(info.path_position)[:, -1, 0]))


def test_metric_select_in_the_sampler_card():
    view = InferenceView(InferenceState())
    assert view.metric_select.value == "laplace" and list(view.metric_select.options) == ["laplace", "diagonal"]
    view.metric_select.value = "diagonal"  # as a user picks it: the state and the L slider follow
    assert view.state.metric == "diagonal" and view.leapfrog_input.value == 10
