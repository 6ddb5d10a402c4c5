"""Simulate tab without a browser: state logic, plot sources, URL settings, files."""

import sys

import jax.numpy as jnp
import numpy as np
import pytest

from nbody_explorer.limits import LIMITS
from nbody_explorer.components.orbit_scene import FLAG_SPEED, HEADER_WORDS, unpack_frame
from nbody_explorer.state.simulate import ERROR_FLOOR, UPLOADED, URL_PARAMETERS, SimulationState
from nbody_explorer.views.simulate import SimulateView
from nbody_core import PRESETS, FIGURE_EIGHT_PERIOD
from nbody_core.io import load_npz
from pythagorean_outcome import assert_known_outcome
from tests.app.conftest import shown_text

_simulate_module = sys.modules["nbody_core.integrate.simulate"]

TWO_BODY_CSV = b"m,x,y,z,vx,vy,vz\n1,0.5,0,0,0,0.5,0\n1,-0.5,0,0,0,-0.5,0\n"


@pytest.fixture
def view():
    return SimulateView()


def test_view_starts_ready_with_the_figure_eight(view):
    assert view.state.preset == "figure_eight"
    assert view.state.ready and not view.compiling
    np.testing.assert_allclose(view.scene.position[:, 0], [0.97000436, -0.97000436, 0.0], atol=1e-12)
    assert view.scene.last_sent[1] == 0  # the run's first frame (with the masses) is in the scene
    assert len(view.history_source.data["t"]) == 0
    assert "paused" in view.status.object


def test_playing_frames_grow_orbit_trails_and_energy_curve(view):
    view.playing = True  # no server: the loop is driven by calling the frame callback
    x0 = np.array(view.scene.position)
    for _ in range(5):
        view._frame()
    view.playing = False  # Pause sends the points still waiting for the plots' cadence
    assert len(view.history_source.data["t"]) == 5
    np.testing.assert_allclose(view.history_source.data["t"], 0.01 * np.arange(1, 6), rtol=1e-12)
    assert not np.allclose(view.scene.position, x0)
    # Each frame is positions only (no history re-sent: the browser keeps the trails).
    assert view.scene.last_sent[1] == 5
    assert len(view.scene.last_message) == 4 * (HEADER_WORDS + 3 * 3)
    energy_error = np.asarray(view.history_source.data["energy_error"])
    # Leapfrog on the figure-eight at dt = 1e-3: relative energy error ~1e-9 after 50 steps
    # (second order, error ~ (dt * |omega|)^2 with |omega| ~ 2); the floor is 1e-17.
    assert np.all(energy_error >= ERROR_FLOOR) and np.all(energy_error < 1e-7)
    assert energy_error[-1] > ERROR_FLOOR  # a real, non-zero error is drawn


def test_dt_softening_and_steps_apply_without_recompiling(view):
    view.step()
    cache_size = _simulate_module._advance._cache_size()
    t0 = view.state.time
    view.dt_slider.value = 0.002
    view.softening_slider.value = 0.01
    view.steps_slider.value = 3
    view.step()
    assert view.state.dt == 0.002 and view.state.softening == 0.01
    assert view.state.time == pytest.approx(t0 + 3 * 0.002, rel=1e-12)
    assert _simulate_module._advance._cache_size() == cache_size
    assert "dt = 0.002" in view.status.object


def test_preset_change_resets_cleanly_with_its_defaults(view):
    for _ in range(3):
        view.step()
    view.preset_select.value = "plummer"
    state = view.state
    assert state.ready and state.time == 0.0 and state.frames_taken == 0
    assert state.current.num_bodies == PRESETS["plummer"].default_num_bodies
    assert state.softening == float(PRESETS["plummer"].params.softening)
    assert view.softening_slider.value == state.softening
    assert len(view.scene.position) == state.current.num_bodies
    assert len(view.history_source.data["t"]) == 0
    run = view.scene.last_sent[0]
    view.step()
    assert view.scene.last_sent == (run, 1)  # the same run: the browser extends its trails
    assert not view.num_bodies_input.disabled


def test_a_preset_set_again_while_the_previous_ones_defaults_apply_gets_its_own_defaults_and_run():
    """A watcher of a preset's defaults (a widget echo, the URL sync) may set the preset again
    while they are applied. That change was swallowed: the state kept the new preset's name
    but the first one's dt/softening, and no new run was started (the browser test saw
    "N = 2, ε = 0.01": Kepler's run with Plummer's softening)."""
    state = SimulationState(preset="kepler")
    state.prepare()
    generation = state.generation

    def set_again(event):
        if state.preset == "plummer":
            state.preset = "cold_collapse"  # inside plummer's defaults (its softening event)

    watcher = state.param.watch(set_again, ["softening"])
    state.preset = "plummer"
    state.param.unwatch(watcher)
    assert state.preset == "cold_collapse"
    expected = PRESETS["cold_collapse"]
    assert state.softening == float(expected.params.softening)
    assert state.dt == expected.dt and state.integrator == expected.integrator
    assert state.generation > generation and not state.built  # a new run, built from cold_collapse
    assert state.current.num_bodies == state.num_bodies == expected.default_num_bodies


def test_body_count_and_integrator_changes_rebuild_the_run(view):
    view.preset_select.value = "cold_collapse"
    view.num_bodies_input.value = 40
    assert view.state.current.num_bodies == 40 and len(view.scene.position) == 40
    view.step()
    view.integrator_select.value = "yoshida4"
    assert view.state.time == 0.0 and view.state.current.num_bodies == 40
    view.step()
    assert view.state.time == pytest.approx(10 * view.state.dt)


def test_body_count_over_the_cap_is_refused_with_a_message(view):
    view.preset_select.value = "plummer"
    view.num_bodies_input.value = LIMITS.max_bodies + 1
    assert view.state.num_bodies == PRESETS["plummer"].default_num_bodies
    assert view.message.visible
    assert view.last_message == f"Bodies N must be a whole number from 2 to {LIMITS.max_bodies}; kept 256."
    assert view.num_bodies_input.value == 256  # the field shows the kept value again


def test_float32_run_has_float32_state_and_larger_energy_error():
    errors = {}
    for precision in ("float64", "float32"):
        state = SimulationState(preset="kepler", precision=precision, steps_per_frame=50, dt=1e-5)
        assert state.current.position.dtype == jnp.dtype(precision)
        for _ in range(4):
            state.step_frame()
        errors[precision] = state.history.energy_error[-1]
    # At dt = 1e-5 the leapfrog truncation error is ~1e-12 (it is 3.5e-6 at dt = 1e-3 and
    # scales as dt^2), far below float32 round-off in E itself (eps32 = 1.2e-7), which
    # float64 does not have (eps64 = 2.2e-16).
    assert errors["float64"] < 1e-10
    assert errors["float32"] > 100 * errors["float64"]


def test_view_colour_size_and_trail_options_reach_the_scene(view):
    view.preset_select.value = "solar_system"
    assert view.scene.view == "3d"  # the rotatable camera by default
    view.projection_select.value = "xz"
    view.size_switch.value = False
    view.trails_switch.value = False
    view.trail_slider.value = 50
    assert (view.scene.view, view.scene.size_by_mass, view.scene.trails, view.scene.trail_length) == ("xz", False, False, 50)
    assert unpack_frame(view.scene.last_message)["speed"] is None  # speeds travel only when needed
    view.color_select.value = "speed"
    assert view.scene.color_by == "speed"
    view.step()
    frame = unpack_frame(view.scene.last_message)
    assert frame["flags"] & FLAG_SPEED
    # float32 on the wire: relative 2**-24 ~ 6e-8.
    np.testing.assert_allclose(frame["speed"], np.linalg.norm(view.state.velocity, axis=1), rtol=1e-6)


def test_url_settings_round_trip_and_tampered_values_are_rejected():
    state = SimulationState()
    rejected = state.apply_settings(
        {"preset": "plummer", "n": "64", "integrator": "rk4", "dt": "0.0005", "softening": "0.02",
         "view": "yz", "trails": "false", "steps": "abc", "fps": "1000", "forces": "<script>"}
    )
    assert (state.preset, state.num_bodies, state.integrator, state.dt, state.softening) == (
        "plummer", 64, "rk4", 0.0005, 0.02)
    assert state.projection == "yz" and state.trails is False
    assert [r.split(":")[0] for r in rejected] == ["forces=<script>", "steps=abc", "fps=1000"]
    assert state.steps_per_frame == 10 and state.frame_rate == 30 and state.forces == "auto"
    again = SimulationState()
    assert again.apply_settings(state.url_settings()) == []
    assert again.url_settings() == state.url_settings()
    assert set(state.url_settings()) == set(URL_PARAMETERS.values())


def test_uploaded_preset_in_url_without_an_upload_is_rejected():
    state = SimulationState()
    rejected = state.apply_settings({"preset": UPLOADED})
    assert len(rejected) == 1 and "upload" in rejected[0]
    assert state.preset == "figure_eight" and state.current.num_bodies == 3


def test_bad_csv_upload_shows_a_message_and_keeps_the_run(view):
    view.step()
    t = view.state.time
    view.upload.filename = "broken.csv"
    view.upload.value = b"m,x,y,z,vx,vy,vz\n1,0,0,0,0,0,0\n-1,1,0,0,0,0,0\n"
    assert view.message.visible and "broken.csv" in view.last_message and "mass" in view.last_message
    assert "broken.csv" in shown_text(view.message.object)  # shown as typed (tests/app/test_messages.py)
    assert view.state.preset == "figure_eight" and view.state.time == t


def test_good_csv_upload_replaces_the_system(view):
    view.upload.filename = "binary.csv"
    view.upload.value = TWO_BODY_CSV
    assert view.state.preset == UPLOADED and view.state.current.num_bodies == 2
    assert view.state.ready
    np.testing.assert_allclose(sorted(view.scene.position[:, 0]), [-0.5, 0.5])
    view.step()
    assert view.state.time > 0


def test_step_clicked_while_the_run_compiles_is_taken_once_it_is_ready(view):
    # Served, a load/reset/rebuild compiles on the worker pool; a Step click in that window
    # used to be dropped silently (the browser test after a CSV upload saw Step do nothing).
    view.upload.filename = "binary.csv"
    view.upload.value = TWO_BODY_CSV
    view.compiling = True  # as while the pool compiles the uploaded run
    view.step()
    assert view.state.time == 0.0  # nothing computed while compiling...
    view.compiling = False
    view._after_ready()
    assert view.state.time > 0  # ...and the click was not lost
    view.step()
    assert view.state.time == pytest.approx(2 * view.state.steps_per_frame * view.state.dt)


def test_downloads_give_the_current_state_and_the_recorded_trajectory(view, tmp_path):
    for _ in range(3):
        view.step()
    csv_bytes = view.controls._state_csv_file().getvalue()
    state = SimulationState()
    state.load_csv(csv_bytes)
    np.testing.assert_allclose(state.position, view.state.position, rtol=0, atol=0)
    path = tmp_path / view.download_trajectory.filename
    path.write_bytes(view.controls._trajectory_file().getvalue())
    arrays, metadata = load_npz(path)
    assert arrays["position"].shape == (4, 3, 3)  # initial snapshot + 3 frames
    np.testing.assert_allclose(arrays["t"], [0.0, 0.01, 0.02, 0.03], atol=1e-12)
    assert metadata["preset"] == "figure_eight"
    assert view.download_trajectory.filename == "nbody_figure_eight_trajectory.npz"


def test_figure_eight_returns_to_its_start_after_one_period():
    state = SimulationState(preset="figure_eight", integrator="yoshida4", steps_per_frame=200)
    state.dt = FIGURE_EIGHT_PERIOD / 6000
    for _ in range(30):
        state.step_frame()
    # Simo's initial data are given to 8 digits, so the orbit closes to ~1e-6; yoshida4 at
    # dt ~ 1e-3 adds ~1e-10.
    np.testing.assert_allclose(state.position, np.asarray(state.initial.position), atol=1e-5)


def test_nonfinite_run_stops_with_a_message(view):
    view.preset_select.value = "pythagorean"
    view.integrator_select.value = "leapfrog"  # its default, ias15, gets it right at any save interval
    view.dt_slider.value = 0.1  # far too large for the close encounters: blows up or drifts
    view.steps_slider.value = 200
    view.playing = True
    for _ in range(30):
        if not view.playing:
            break
        view._frame()
    energy_error = view.state.history.energy_error
    assert view.state.nonfinite or energy_error[-1] > 1e-3
    if view.state.nonfinite:
        assert not view.playing and view.message.visible


def test_session_destroyed_stops_the_frame_loop(view):
    view.playing = True
    assert view._ticker.running  # the notebook/no-server loop: a periodic callback
    view.close()
    assert not view._ticker.running and view._ticker.closed
    view.playing = False
    view.playing = True  # a destroyed session never restarts its loop
    assert not view._ticker.running


def test_compiling_indicator_is_shown_while_the_frame_function_compiles(view, monkeypatch):
    seen = []
    original = view.state.prepare

    def spy():
        seen.append((view.compiling, view.status.object))
        return original()

    monkeypatch.setattr(view.state, "prepare", spy)
    view.integrator_select.value = "rk4"  # a new static configuration: must compile
    assert seen and seen[0][0] is True and "preparing…" in seen[0][1]
    assert not view.compiling and "preparing" not in view.status.object and view.state.ready


def test_tampered_widget_value_is_named_and_undone(view):
    view.steps_slider.value = 10**6  # a hostile client can send what the slider never would
    assert view.state.steps_per_frame == 10 and view.steps_slider.value == 10
    # Refused in the user's words: the label they see and the allowed range, never the parameter's name.
    assert view.message.visible and view.last_message.startswith("Steps per frame") and "from 1 to 200" in view.last_message
    assert "steps_per_frame" not in view.last_message


def test_empty_upload_is_reported():
    view = SimulateView()
    view.upload.param.update(value=None, filename="empty.csv")  # how Panel delivers a 0-byte file
    assert view.message.visible and "CSV file is empty" in view.last_message
    assert view.state.preset == "figure_eight"


def test_user_text_in_messages_is_neither_html_nor_markdown(view):
    view.notify("forces=__import__('os'): <img src=x onerror=alert(1)>")
    assert shown_text(view.message.object) == "forces=__import__('os'): <img src=x onerror=alert(1)>"
    assert r"\_\_import\_\_" in view.message.object


def test_sessions_share_one_compile_per_configuration():
    # Issue 10 item 5: no app-side cache; the core's jitted frame function is keyed by
    # hashable records (integrator, force method, potential) and the state's shape, so a
    # second session with the same configuration reuses the first one's compilation.
    first = SimulationState(preset="figure_eight", integrator="rk4", forces="analytic")
    first.prepare()
    size = _simulate_module._advance._cache_size()
    second = SimulationState(preset="figure_eight", integrator="rk4", forces="analytic")
    second.prepare()
    second.step_frame()
    assert _simulate_module._advance._cache_size() == size


def test_refused_link_values_are_said_in_words():
    # Issue 14: "Number parameter 'SimulationState.dt' must be at least 1e-07" named internals.
    state = SimulationState()
    rejected = state.apply_settings({"dt": "-1", "fps": "0", "n": "10000000"})
    # Issue 26: one sentence with the label the sidebar shows and the allowed range.
    assert rejected[0] == f"n=10000000: Bodies N must be a whole number from 2 to {LIMITS.max_bodies}; kept 256."
    assert "dt=-1: dt (time step) must be a number from 1e-07 to 1 time units; kept 0.001." in rejected
    assert "fps=0: Speed (frames/s) must be a whole number from 1 to 60; kept 30." in rejected
    assert not any("SimulationState" in message or "parameter" in message for message in rejected)


def test_pythagorean_defaults_run_to_t70_with_the_known_outcome_in_the_dashboard():
    state = SimulationState(preset="pythagorean")
    preset = PRESETS["pythagorean"]
    # The preset's own integrator (IAS15), and dt read as the frame's save interval.
    assert state.integrator == preset.integrator == "ias15" and state.adaptive
    assert state.steps_per_frame * state.dt == pytest.approx(0.05)
    state.prepare()
    frames = 0
    while state.time < preset.t_end - 1e-9:
        assert state.step_frame() is not None and state.fault is None, state.fault
        frames += 1
        if frames == 1:
            first_step = state._next_dt
    assert frames == round(preset.t_end / 0.05)
    # Issue 12: the time is t0 + k dt, not a sum of 1400 save intervals (69.99999999999817).
    assert state.time == preset.t_end and state.history.time[-1] == preset.t_end
    # Step control carried between frames: ~13000 accepted steps in 1400 frames, not a
    # restart from the default first step (1 % of the shortest dynamical time) every frame.
    assert state.steps_taken < 20 * frames and first_step > 0
    # IAS15 reaches |dE/E| ~ 1e-11 on this problem in one call (tests/nbody_core/test_ias15.py);
    # a frame boundary every 0.05 time units only rounds away the compensation terms
    # (measured 1.1e-11 at t = 70). 1e-9 is the bound for the dashboard.
    assert state.history.energy_error[-1] <= 1e-9
    assert state.energy_warning is None and state.accepted_steps_per_second > 0
    # The known outcome, checked as in the core and preset tests: m = 3 escapes, 4 and 5 bound.
    assert_known_outcome(state.position, state.velocity, state.mass)


@pytest.mark.parametrize("integrator", ["leapfrog", "ias15"])
def test_time_is_t0_plus_k_dt_exactly_across_frames_and_dt_changes(integrator):
    """Issue 12: adding 0.1 ten times gives 0.9999999999999999; the run's time is a product."""
    state = SimulationState(preset="kepler", integrator=integrator, dt=0.1, steps_per_frame=1)
    for _ in range(10):
        assert state.step_frame() is not None
    assert state.time == 1.0 and float(state.current.time) == 1.0
    state.dt, state.steps_per_frame = 0.3, 2  # traced: the run goes on, counted from t = 1
    for _ in range(3):
        assert state.step_frame() is not None
    assert state.time == 1.0 + 6 * 0.3
    np.testing.assert_array_equal(state.history.time[-4:], [1.0, 1.0 + 2 * 0.3, 1.0 + 4 * 0.3, 1.0 + 6 * 0.3])
    assert [frame[0] for frame in state._record][-1] == state.time


def test_each_preset_opens_with_its_default_integrator_and_switching_works():
    state = SimulationState()
    assert state.integrator == PRESETS["figure_eight"].integrator and not state.adaptive
    assert {"ias15", "dopri8", "leapfrog"} <= set(state.param.integrator.objects)
    state.preset = "pythagorean"
    assert state.integrator == "ias15"
    state.preset = "figure_eight"
    assert state.integrator == "leapfrog" and state.dt == PRESETS["figure_eight"].dt
    # Adaptive on the figure-eight: each frame advances steps_per_frame x dt of time exactly.
    for integrator in ("ias15", "dopri8"):
        state.integrator = integrator
        state.prepare()
        for frame in range(1, 4):
            assert state.step_frame() is not None and state.fault is None
            assert state.time == pytest.approx(frame * state.steps_per_frame * state.dt, rel=1e-12)
        # 8th and 15th order at tolerance ~1e-13: well below leapfrog's 1e-6 (see test_presets.py).
        assert state.history.energy_error[-1] < 1e-10
        carried = state._next_dt
        state.dt = 2 * state.dt  # traced: the next frame reuses the compiled call and the step
        assert state._next_dt == carried
        before = state.time
        assert state.step_frame() is not None
        assert state.time == pytest.approx(before + state.steps_per_frame * state.dt, rel=1e-12)
    state.integrator = "leapfrog"
    assert not state.adaptive and state.time == 0.0
    state.prepare()
    state.step_frame()
    assert state.steps_taken == state.steps_per_frame
    assert state.time == pytest.approx(state.steps_per_frame * state.dt, rel=1e-12)


def test_adaptive_slider_changes_do_not_recompile():
    state = SimulationState(preset="pythagorean")
    state.prepare()
    state.step_frame()
    ias15 = sys.modules["nbody_core.integrate.ias15"]._ias15_steps  # the loop: compiled once
    compiled = ias15._cache_size()
    state.dt = 2 * state.dt
    state.softening = 1e-3
    state.steps_per_frame = 3
    for _ in range(3):
        assert state.step_frame() is not None and state.fault is None
    assert ias15._cache_size() == compiled


def test_view_labels_dt_as_the_save_interval_and_shows_accepted_steps_for_adaptive_runs(view):
    view.preset_select.value = "pythagorean"
    assert view.integrator_select.value == "ias15"
    assert "save interval" in view.dt_slider.name
    view.playing = True  # no server: the loop is driven by calling the frame callback
    for _ in range(3):
        view._frame()
    view.update_status(force=True)
    assert "accepted steps/s" in view.status.object and "save interval dt = 0.005" in view.status.object
    assert view.state.time == pytest.approx(view.state.frames_taken * 0.05, rel=1e-12)
    view.playing = False
    view.integrator_select.value = "leapfrog"
    assert view.dt_slider.name == "dt (time step, time units)"
    view.update_status(force=True)
    assert "accepted" not in view.status.object and " dt = 0.005" in view.status.object


def test_dt_and_softening_sliders_name_their_units():
    from nbody_explorer.views.simulate import SimulateView

    view = SimulateView(sync_url=False)
    assert view.dt_slider.name == "dt (time step, time units)"
    assert view.softening_slider.name == "Softening ε (length units)"
    view.state.preset = "solar_system"  # years and AU (issue 14)
    assert view.dt_slider.name == "dt (time step, yr)" and view.softening_slider.name == "Softening ε (AU)"


def test_status_line_shows_the_place_in_the_servers_queue(view):
    view.runner.queue_position = 3  # set by the pool while this session's job waits
    assert "waiting: 2 ahead of you" in view.status.object
    view.runner.queue_position = 0
    assert "ahead of you" not in view.status.object


def test_the_status_line_shows_its_new_text_escaped_and_keeps_its_stylesheet():
    import html

    from bokeh.document import Document

    from nbody_explorer.views.simulate_status import new_status_line

    def sheets(model):  # inline CSS, or an imported stylesheet's URL (rebuilt as a new model per update)
        return [getattr(sheet, "css", None) or getattr(sheet, "url", sheet) for sheet in model.stylesheets]

    line = new_status_line()
    model = line.get_root(Document())
    css = sheets(model)
    line.object = "<b>t = 1</b> & more"
    # Panel's HTML pane ships its text escaped, for the browser to unescape into the pane.
    assert html.unescape(model.text) == "<b>t = 1</b> & more" and "&lt;b&gt;" in model.text
    assert sheets(model) == css
    assert any(".compiling" in str(text) for text in css)  # the status line's own stylesheet
