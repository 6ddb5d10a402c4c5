"""Record button logic without a browser: the run so far becomes a movie of the asked size and
length (same renderer as `nbody run --movie`)."""

import io

import imageio.v2 as imageio

from app.views.simulate import SimulateView


def test_record_makes_a_gif_of_the_run_so_far():
    view = SimulateView(sync_url=False)
    recorder = view.recorder
    recorder.record()  # nothing has run yet: refused in words
    assert "Play or Step the run first" in recorder.status.object or "press Step or Play" in recorder.status.object
    assert not recorder.download.visible and not recorder.record_button.disabled
    # More recorded frames than movie frames: a GIF merges repeated frames (Pillow keeps the
    # duration), so a run shorter than the movie would decode to fewer frames.
    for _ in range(8):
        view.step()
    recorder.seconds.value, recorder.fps.value = 1, 5
    recorder.format.value, recorder.size.value = ".gif", (480, 360)
    recorder.record()
    assert recorder.download.visible and recorder.download.filename.endswith(".gif")
    assert recorder.progress.value == recorder.progress.max == 5
    frames = imageio.mimread(io.BytesIO(recorder._file().getvalue()), format="GIF")
    assert len(frames) == 5 and frames[0].shape[:2] == (360, 480)
