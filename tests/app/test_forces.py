"""Forces tab logic without a browser: state, refusals, redraws and the timing sweep."""

import numpy as np
import pytest
from bokeh.document import Document

from nbody_explorer.state.forces import ForcesState, log10_histogram, parse_body_counts, speedup_summary
from nbody_explorer.views.forces import HIST_EDGES, ForcesView


@pytest.fixture(scope="module")
def view():
    # One view for the module: the first comparison compiles (seconds), later ones reuse it.
    # Plummer N=64 seed 7 is also used by tests/nbody_core/test_forcelab.py: one compile for both.
    return ForcesView(ForcesState(preset="plummer", num_bodies=64, seed=7))


def _reset(state):
    state.param.update(potential="newtonian", dtype="float64", show_arrows=True)


def test_state_compares_both_dtypes_for_newtonian(view):
    state = view.state
    _reset(state)
    assert set(state.comparisons) == {"float64", "float32"}
    assert state.hand_coded_status is None
    d64 = state.comparisons["float64"].relative_difference
    d32 = state.comparisons["float32"].relative_difference
    assert d64.shape == d32.shape == (64,)
    # Round-off of each dtype (eps 2.2e-16 and 1.2e-7): orders of magnitude apart.
    assert np.median(d64) < 1e-14 and 1e-9 < np.median(d32) < 1e-5
    assert state.float32_difference.shape == (64,)


def test_view_draws_arrows_scatter_and_both_histograms(view):
    state = view.state
    _reset(state)
    assert len(view.body_source.data["x"]) == 64
    assert len(view.autodiff_arrows.data["x0"]) == len(view.hand_coded_arrows.data["x0"]) == 64
    assert len(view.scatter_source.data["autodiff"]) == 64
    assert view.hist_sources["float64"].data["count"].sum() == 64
    assert view.hist_sources["float32"].data["count"].sum() == 64
    # float64 differences sit left of float32 ones on the log axis.
    centers = 0.5 * (HIST_EDGES[:-1] + HIST_EDGES[1:])
    mean64 = np.average(centers, weights=view.hist_sources["float64"].data["count"])
    mean32 = np.average(centers, weights=view.hist_sources["float32"].data["count"])
    assert mean32 - mean64 > 5  # more than five decades apart
    # The hand-coded arrows point the same way as the autodiff ones.
    for key in ("x1", "y1"):
        np.testing.assert_allclose(view.autodiff_arrows.data[key], view.hand_coded_arrows.data[key], rtol=1e-9)
    state.show_arrows = False
    assert len(view.autodiff_arrows.data["x0"]) == len(view.hand_coded_arrows.data["x0"]) == 0
    state.show_arrows = True
    assert len(view.autodiff_arrows.data["x0"]) == 64


def test_other_potential_marks_hand_coded_newtonian_only(view):
    state = view.state
    _reset(state)
    newtonian_arrows = np.array(view.autodiff_arrows.data["x1"])
    state.potential = "yukawa"
    assert "Newtonian only / not applicable" in state.hand_coded_status
    assert "Newtonian only" in view.scatter.title.text and "Newtonian only" in view.histogram.title.text
    assert "Newtonian only" in view.status.object
    assert len(view.scatter_source.data["autodiff"]) == 0
    assert len(view.hand_coded_arrows.data["x0"]) == 0  # never silently wrong arrows
    assert len(view.autodiff_arrows.data["x0"]) == 64
    assert not np.allclose(view.autodiff_arrows.data["x1"], newtonian_arrows)  # forces changed
    assert view.hist_sources["float64"].data["count"].sum() == 0
    assert view.hist_sources["precision"].data["count"].sum() == 64
    assert view.screening_input.visible and not view.power_input.visible
    state.potential = "power_law"
    assert view.power_input.visible and not view.screening_input.visible
    state.potential = "newtonian"
    assert "Newtonian only" not in view.scatter.title.text
    assert view.hist_sources["float64"].data["count"].sum() == 64


def test_float32_scene_uses_float32_forces(view):
    state = view.state
    _reset(state)
    state.dtype = "float32"
    assert state.current.autodiff.dtype == np.float32
    assert "float32" in view.scatter.title.text
    state.dtype = "float64"


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(num_bodies=10**6), "exceeds"),
        (dict(num_bodies=1), "at least 2"),
        (dict(softening=-0.1), "softening"),
        (dict(potential="yukawa", screening_length=0.0), "screening length"),
        (dict(power_index=float("nan")), "power index"),
        (dict(seed=-4), "seed"),
    ],
)
def test_bad_input_is_refused_and_previous_state_kept(view, change, match):
    state = view.state
    _reset(state)
    before = dict(state.configuration)
    comparisons = state.comparisons
    count = state.error_count
    state.param.update(**change)
    assert state.error_count == count + 1 and match in state.error
    assert state.configuration == before  # the widgets snap back
    assert state.comparisons is comparisons
    assert view.message.visible and match in view.message.object
    state.potential = "power_law"  # the session keeps working
    assert state.error == "" and not view.message.visible
    state.potential = "newtonian"


def test_preset_change_applies_its_softening(view):
    state = view.state
    _reset(state)
    state.preset = "figure_eight"
    assert state.softening == 0.0 and len(view.body_source.data["x"]) == 3
    assert state.comparisons["float64"].relative_difference.max() < 1e-12
    state.preset = "plummer"
    assert state.softening == 0.01 and len(view.body_source.data["x"]) == 64


def test_timing_sweep_fills_table_and_plots(view):
    state = view.state
    state.param.update(timing_ns="4, 8", timing_repeats=1, numpy_loop_max_n=4,
                       timing_methods=["numpy_loop", "numpy_vectorized", "jax_analytic"])
    seen = []
    state.param.watch(lambda event: seen.append(event.new), "timing_done")
    view.run_timing()  # not served: runs in this thread
    assert seen[-1] == 6 and view.progress.value == view.progress.max == 6
    table = view.timing_table_source.data
    assert len(table["method"]) == 6 and set(table["method"]) == {"numpy_loop", "numpy_vectorized", "jax_analytic"}
    row = [i for i, (m, n) in enumerate(zip(table["method"], table["n"])) if m == "numpy_loop" and n == 8][0]
    assert "extrapolated" in table["note"][row]
    jax_rows = [i for i, m in enumerate(table["method"]) if m == "jax_analytic"]
    assert all(np.isfinite(table["compile_ms"][i]) for i in jax_rows)
    assert len(view.compile_points.data["n"]) == 2
    assert len(view.timing_lines.data["xs"]) == 3
    assert "faster than the NumPy loop" in view.timing_status.object
    assert not view.run_timing_button.disabled
    # Medians with their spread (fastest - slowest call), and a summary under the button
    # (issue 28 item 7: the plots are below the fold).
    points = view.timing_points.data
    assert all(lo <= mid <= hi for lo, mid, hi in zip(points["run_min_ms"], points["run_ms"], points["run_max_ms"]))
    assert all(" – " in spread for spread in table["spread"])
    assert view.timing_summary.visible and "median of 1 calls" in view.timing_summary.object
    assert "- jax_analytic: " in view.timing_summary.object and "numpy_loop" not in view.timing_summary.object


def test_histogram_legend_beside_the_bars_not_over_them(view):
    from bokeh.models import Legend

    assert [type(item) for item in view.histogram.right] == [Legend]
    assert not [item for item in view.histogram.center if isinstance(item, Legend)]


def test_timing_refuses_bad_requests(view):
    state = view.state
    count = state.error_count
    state.timing_ns = "8, lots"
    view.run_timing()
    assert state.error_count == count + 1 and "whole numbers" in state.error
    assert "Timing not run" in view.timing_status.object
    state.param.update(timing_ns="8", timing_methods=[])
    view.run_timing()
    assert "at least one method" in state.error
    state.timing_methods = list(state.param.timing_methods.objects)


def test_helpers():
    assert parse_body_counts("64; 16,16 , 256") == (16, 64, 256)
    with pytest.raises(ValueError, match="outside"):
        parse_body_counts("1")
    with pytest.raises(ValueError, match="at least one N"):
        parse_body_counts(" , ")
    counts, zeros = log10_histogram(np.array([0.0, 1e-16, 1e-7]), edges=HIST_EDGES)
    assert zeros == 1 and counts.sum() == 3 and counts[0] == 1


def test_speedup_summary_states_extrapolation():
    from nbody_core.lab.forcelab import TimingRecord, TimingResult

    def record(method, n, ms, speedup, *, extrapolated_from=None, speedup_extrapolated=False):
        return TimingRecord(method, n, ms, None, None, extrapolated_from is not None, extrapolated_from,
                            speedup, speedup_extrapolated)

    result = TimingResult(
        records=(record("numpy_loop", 4, 2.0, 1.0), record("numpy_loop", 8, 8.0, 1.0, extrapolated_from=4),
                 record("jax_analytic", 4, 0.5, 4.0), record("jax_analytic", 8, 0.1, 80.0, speedup_extrapolated=True)),
        methods=("numpy_loop", "jax_analytic"), num_bodies=(4, 8), repeats=1, numpy_loop_max_n=4, device="cpu",
    )
    text = speedup_summary(result)
    assert "At N = 8" in text and "jax_analytic 80x" in text and "extrapolated as N^2 from N = 4" in text


def test_view_renders_into_a_bokeh_document(view):
    document = Document()
    document.add_root(view.__panel__().get_root(document))
    for name in ("forces-bodies", "forces-arrows-autodiff", "forces-arrows-hand-coded", "forces-scatter",
                 "forces-hist-float64", "forces-hist-float32", "forces-timing-table", "forces-timing-figure"):
        assert document.get_model_by_name(name) is not None, name
