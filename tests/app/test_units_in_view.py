"""Units on the Simulate tab's readouts, without a browser (issue 14): the status line, the time
axes of the conservation plots and the orbit scene's caption follow the preset's unit system."""

from nbody_explorer.views.simulate import SimulateView
from nbody_explorer.views.simulate_status import status_text


def _status(state) -> str:
    return status_text(state, queue_position=0, preparing=False, playing=False, hidden=False,
                       fps=0.0, steps_per_second=0.0, painted=0.0)


def _time_labels(view) -> set[str]:
    return {fig.xaxis[0].axis_label for fig in view.plots.figures}


def test_readouts_follow_the_presets_units():
    view = SimulateView(sync_url=False)
    text = _status(view.state)
    assert "N-body units (G = 1)" in text and " yr" not in text
    assert _time_labels(view) == {"time (time units)"} and view.scene.length_unit == "length units"
    view.state.preset = "solar_system"
    text = _status(view.state)
    assert "</b> yr" in text and f"dt = {view.state.dt:.3g} yr" in text and text.rstrip().endswith(" AU")
    assert "N-body units" not in text
    assert _time_labels(view) == {"time (yr)"} and view.scene.length_unit == "AU"
