"""OrbitScene without a browser: the frame format, what each frame carries, the parameters."""

from pathlib import Path

import numpy as np
import pytest

from nbody_explorer.components.orbit_scene import (
    CIVIDIS,
    FLAG_MASS,
    FLAG_RESET,
    FLAG_KEEP_CAMERA,
    FLAG_SPEED,
    FLAG_VELOCITY,
    HEADER_WORDS,
    OKABE_ITO,
    OrbitScene,
    pack_chunk,
    pack_frame,
    unpack_frame,
)


def _system(n=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)), rng.normal(size=(n, 3)), rng.uniform(0.1, 2.0, n)


def test_pack_frame_round_trips_positions_speeds_and_masses():
    position, velocity, mass = _system()
    speed = np.linalg.norm(velocity, axis=1)
    data = pack_frame(position, speed=speed, mass=mass, time=1.25, run_id=3, frame_index=17, reset=True)
    assert len(data) == 4 * (HEADER_WORDS + 3 * 5 + 5 + 5)
    frame = unpack_frame(data)
    assert frame["flags"] == FLAG_SPEED | FLAG_MASS | FLAG_RESET
    assert (frame["n"], frame["run_id"], frame["frame_index"], frame["time"]) == (5, 3, 17, 1.25)
    # float32 on the wire: values agree to float32 rounding (relative 2**-24 ~ 6e-8).
    np.testing.assert_allclose(frame["position"], position, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(frame["speed"], speed, rtol=1e-7)
    np.testing.assert_allclose(frame["mass"], mass, rtol=1e-7)


def test_a_plain_frame_holds_only_positions():
    position, _, _ = _system(n=1000)
    data = pack_frame(position, frame_index=2)
    assert len(data) == 4 * (HEADER_WORDS + 3000)  # 12 kB for N = 1000: no history, no JSON
    frame = unpack_frame(data)
    assert frame["flags"] == 0 and frame["speed"] is None and frame["mass"] is None


@pytest.mark.parametrize("bad", [np.zeros((4, 2)), np.zeros(12)])
def test_pack_frame_rejects_positions_that_are_not_n_by_3(bad):
    with pytest.raises(ValueError, match=r"shape \[n, 3\]"):
        pack_frame(bad)


def test_pack_frame_rejects_speeds_of_the_wrong_length():
    with pytest.raises(ValueError, match="speed must have shape"):
        pack_frame(np.zeros((3, 3)), speed=np.zeros(2))


def test_unpack_frame_rejects_foreign_or_truncated_bytes():
    with pytest.raises(ValueError, match="not an orbit-scene frame"):
        unpack_frame(np.zeros(12, "<f4").tobytes())
    with pytest.raises(ValueError, match="header says"):
        unpack_frame(pack_frame(np.zeros((3, 3)))[:-4])


def test_show_run_then_frames_carry_masses_once_and_speeds_only_when_colouring_by_speed():
    position, velocity, mass = _system()
    scene = OrbitScene()
    first = unpack_frame(scene.show_run(position, mass, velocity=velocity))
    assert first["flags"] == FLAG_MASS | FLAG_RESET and first["frame_index"] == 0
    second = unpack_frame(scene.show_frame(position + 1.0, velocity=velocity, time=0.5))
    assert second["flags"] == 0 and second["frame_index"] == 1 and second["run_id"] == first["run_id"]
    scene.color_by = "speed"  # re-sends the current frame with speeds at once
    assert scene.frames_sent == 3
    third = unpack_frame(scene.show_frame(position, velocity=velocity))
    assert third["flags"] == FLAG_SPEED
    np.testing.assert_allclose(third["speed"], np.linalg.norm(velocity, axis=1), rtol=1e-7)
    again = unpack_frame(scene.show_run(position, mass))
    assert again["run_id"] == first["run_id"] + 1 and again["frame_index"] == 0


def test_one_acknowledgement_stands_for_every_earlier_frame_of_its_run():
    position, _, mass = _system()
    scene = OrbitScene()
    scene.show_run(position, mass)
    run = scene.last_sent[0]
    for _ in range(3):
        scene.show_frame(position)
    assert scene.unacknowledged([run, 3]) == 0
    assert scene.unacknowledged([run, 1]) == 2  # frames 2 and 3 are still in flight
    assert scene.unacknowledged([run - 1, 3]) is None  # a painted frame of the previous run
    assert scene.unacknowledged([run, 4]) is None  # not a frame this scene sent
    scene.drawn = [run, 2]
    assert scene.unacknowledged() == 1


def test_paint_reports_from_the_browser_reach_the_watchers_on_the_short_path():
    scene = OrbitScene()
    seen = []
    scene.param.watch(lambda event: seen.append(event.new), ["drawn"])
    scene._process_events({"drawn": [3, 7], "painted": 12, "paint_rate": 30.0})
    assert scene.drawn == [3, 7] and scene.painted == 12 and scene.paint_rate == 30.0
    assert seen == [[3, 7]]
    assert not scene._param__private.syncing  # the short path leaves nothing marked as syncing
    scene._process_events({"view": "xy", "drawn": [3, 8]})  # anything else: Panel's own path
    assert scene.view == "xy" and scene.drawn == [3, 8] and seen == [[3, 7], [3, 8]]


def test_show_frame_with_another_body_count_asks_for_show_run():
    position, _, mass = _system()
    scene = OrbitScene()
    scene.show_run(position, mass)
    with pytest.raises(ValueError, match="call show_run first"):
        scene.show_frame(position[:3])


def test_a_rendering_view_asking_for_the_frame_gets_the_current_one():
    position, _, mass = _system()
    scene = OrbitScene()
    scene._handle_msg({"type": "ready"})  # nothing to send before a run
    assert scene.frames_sent == 0
    scene.show_run(position, mass)
    scene._handle_msg({"type": "ready"})
    scene._handle_msg({"type": "something else"})
    assert scene.frames_sent == 2


def test_velocities_travel_only_while_editing():
    position, velocity, mass = _system()
    scene = OrbitScene()
    scene.show_run(position, mass, velocity=velocity)
    assert unpack_frame(scene.show_frame(position, velocity=velocity))["velocity"] is None
    scene.editing = True  # re-sends the current frame with velocities at once (the arrows)
    resent = unpack_frame(scene.last_message)
    assert scene.frames_sent == 3 and resent["flags"] == FLAG_VELOCITY
    np.testing.assert_allclose(resent["velocity"], velocity, rtol=1e-7, atol=1e-7)
    scene.editing = False
    assert scene.frames_sent == 3 and unpack_frame(scene.show_frame(position, velocity=velocity))["velocity"] is None


def test_show_edit_is_a_new_run_that_keeps_the_camera_and_may_change_n():
    position, velocity, mass = _system()
    scene = OrbitScene(editing=True)
    first = unpack_frame(scene.show_run(position, mass, velocity=velocity))
    assert not first["flags"] & FLAG_KEEP_CAMERA
    edited = unpack_frame(scene.show_edit(position[:4], mass[:4], velocity=velocity[:4], time=2.0))
    assert edited["flags"] == FLAG_RESET | FLAG_MASS | FLAG_VELOCITY | FLAG_KEEP_CAMERA
    assert edited["n"] == 4 and edited["run_id"] == first["run_id"] + 1 and edited["time"] == 2.0
    np.testing.assert_allclose(edited["velocity"], velocity[:4], rtol=1e-7, atol=1e-7)
    scene.show_frame(position[:4])  # frames of the edited state follow with its N
    with pytest.raises(ValueError, match=r"velocity must have shape \[3, 3\]"):
        pack_frame(position[:3], velocity=velocity)


def test_edit_messages_go_to_on_edit_and_nowhere_else():
    scene = OrbitScene()
    scene._handle_msg({"type": "edit", "action": "move"})  # no handler: ignored
    received = []
    scene.on_edit = received.append
    scene._handle_msg({"type": "edit", "action": "remove", "index": 1})
    scene._handle_msg({"type": "ready"})
    assert received == [{"type": "edit", "action": "remove", "index": 1}] and scene.frames_sent == 0


def test_parameters_and_palettes():
    scene = OrbitScene(view="xz", trail_length=50)
    assert scene.view == "xz" and scene.trail_length == 50
    with pytest.raises(ValueError):
        scene.view = "top"
    with pytest.raises(ValueError):
        scene.color_by = "rainbow"
    assert len(OKABE_ITO) == 8 and all(c.startswith("#") and len(c) == 7 for c in OKABE_ITO + CIVIDIS)
    assert scene.palette == list(CIVIDIS) and len(CIVIDIS) >= 32


def test_the_esm_module_ships_beside_the_class_and_in_the_package_data():
    esm = Path(OrbitScene._esm)
    assert esm.is_file() and esm.parent.name == "components"
    text = esm.read_text()
    assert "export function render" in text
    assert "http://" not in text and "https://" not in text  # nothing fetched at run time
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"components/*.js"' in pyproject


def test_the_scene_renders_to_a_bokeh_model_with_the_module_inline():
    from bokeh.document import Document

    scene = OrbitScene(name="probe")
    model = scene.get_root(Document())
    assert "export function render" in model.esm
    assert model.data.name == "probe" and model.data.view == "3d"


def test_the_scene_displays_in_a_jupyter_notebook_and_takes_frames_there():
    import nbformat
    from nbclient import NotebookClient

    root = Path(__file__).resolve().parents[2]
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(
            "import numpy as np, panel as pn\n"
            "from nbody_explorer.components.orbit_scene import OrbitScene\n"
            "pn.extension()\n"
            "scene = OrbitScene(name='nb-scene', view='quad', height=400)\n"
            "scene.show_run(np.eye(3), np.ones(3))\n"
            "scene"),
        nbformat.v4.new_code_cell("scene.show_frame(2 * np.eye(3)); print('frames sent', scene.frames_sent)"),
    ])
    NotebookClient(notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(root)}}).execute()
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    mime_types = {mime for o in outputs if o.output_type in ("display_data", "execute_result") for mime in o.get("data", {})}
    assert "application/vnd.holoviews_exec.v0+json" in mime_types  # a live Panel view, not a repr
    assert "frames sent 2" in "".join(o.get("text", "") for o in outputs if o.output_type == "stream")


def test_a_chunk_packs_consecutive_frames_with_their_times_and_unpacks_to_float32():
    rng = np.random.default_rng(21)
    position, velocity, time = rng.normal(size=(5, 4, 3)), rng.normal(size=(5, 4, 3)), np.linspace(0.1, 0.5, 5)
    data = pack_chunk(position, time=time, run_id=3, first_index=17)
    assert len(data) == 4 * (HEADER_WORDS + 5 * (1 + 3 * 4))
    chunk = unpack_frame(data)
    assert chunk["chunk"] and chunk["run_id"] == 3 and chunk["frame_index"] == 17 and chunk["count"] == 5
    assert chunk["speed"] is None and chunk["flags"] == 0
    np.testing.assert_array_equal(chunk["position"], position.astype(np.float32))
    np.testing.assert_array_equal(chunk["times"], time.astype(np.float32))
    speed = np.linalg.norm(velocity, axis=2)
    with_speed = unpack_frame(pack_chunk(position, time=time, speed=speed))
    assert with_speed["flags"] == FLAG_SPEED
    np.testing.assert_array_equal(with_speed["speed"], speed.astype(np.float32))
    with pytest.raises(ValueError, match="header says"):
        unpack_frame(data[:-4])
    with pytest.raises(ValueError, match="time must have shape"):
        pack_chunk(position, time=time[:4])
    with pytest.raises(ValueError, match=r"count >= 1, n, 3"):
        pack_chunk(position[0], time=time[:1])


def test_show_chunk_continues_the_frame_indices_of_the_run_and_keeps_its_last_frame():
    position, velocity, mass = _system()
    scene = OrbitScene()
    scene.show_run(position, mass, velocity=velocity)
    run = scene.last_sent[0]
    frames = np.stack([position + k for k in range(1, 4)])
    first = scene.show_chunk(frames, velocity=np.stack([velocity] * 3), time=np.array([0.1, 0.2, 0.3]))
    chunk = unpack_frame(scene.last_message)
    assert first == 1 and chunk["frame_index"] == 1 and chunk["run_id"] == run and scene.last_sent == (run, 3)
    np.testing.assert_array_equal(scene.position, frames[-1])  # what a later resend shows
    scene.color_by = "speed"  # a resend of the last frame, then chunks carry speeds
    scene.show_chunk(frames[:1], velocity=velocity[None], time=np.array([0.4]))
    np.testing.assert_allclose(unpack_frame(scene.last_message)["speed"][0], np.linalg.norm(velocity, axis=1), rtol=1e-6)
    assert scene.last_sent == (run, 5)
    with pytest.raises(ValueError, match="the run has"):
        scene.show_chunk(frames[:, :2], velocity=np.stack([velocity[:2]] * 3), time=np.zeros(3))
