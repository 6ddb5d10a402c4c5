"""Record button logic without a browser: the run so far becomes a movie of the asked size and
length (same renderer as `nbody run --movie`); Stop or a closed session ends the recording after
the frame in hand and leaves no partial file; a finished movie is kept."""

import io

import imageio.v2 as imageio
import pytest

import nbody_explorer.views.record as record_view
from nbody_explorer.views.simulate import SimulateView


def _recording_view(steps: int = 8):
    view = SimulateView(sync_url=False)
    for _ in range(steps):
        view.step()
    recorder = view.recorder
    recorder.seconds.value, recorder.fps.value = 1, 5
    recorder.format.value, recorder.size.value = ".gif", (480, 360)
    return view, recorder


def test_record_makes_a_gif_of_the_run_so_far():
    view = SimulateView(sync_url=False)
    recorder = view.recorder
    recorder.record()  # nothing has run yet: refused in words
    assert "Play or Step the run first" in recorder.status.object or "press Step or Play" in recorder.status.object
    assert not recorder.download.visible and not recorder.record_button.disabled
    # More recorded frames than movie frames, so that every movie frame shows a new moment.
    for _ in range(8):
        view.step()
    recorder.seconds.value, recorder.fps.value = 1, 5
    recorder.format.value, recorder.size.value = ".gif", (480, 360)
    recorder.record()
    assert recorder.download.visible and recorder.download.filename.endswith(".gif")
    assert recorder.progress.value == recorder.progress.max == 5
    assert not recorder.stop_button.visible and not recorder.record_button.disabled
    frames = imageio.mimread(io.BytesIO(recorder._file().getvalue()), format="GIF")
    assert len(frames) == 5 and frames[0].shape[:2] == (360, 480)


def _stop_at_frame(monkeypatch, frame: int, stop):
    """Make the recording call ``stop()`` once ``frame`` frames are drawn; returns the frame
    counts the recording reported (``[0, 1, ...]``)."""
    seen = []
    original = record_view.record_movie

    def recording(simulation, settings, folder, progress):
        def watched(done, total):
            seen.append(done)
            if done == frame:
                stop()
            progress(done, total)

        return original(simulation, settings, folder, watched)

    monkeypatch.setattr(record_view, "record_movie", recording)
    return seen


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_stop_ends_the_recording_after_the_frame_in_hand_and_removes_the_partial_file(monkeypatch, suffix):
    view, recorder = _recording_view()
    recorder.format.value = suffix
    recorder.seconds.value = 4  # 20 frames: the stop comes at the 3rd
    seen = _stop_at_frame(monkeypatch, 3, recorder.stop)
    recorder.record()
    assert seen == [0, 1, 2, 3]  # not one frame drawn after Stop
    folder = recorder._folder()
    assert list(folder.iterdir()) == []  # no partial movie, no temporary file
    assert "stopped" in recorder.status.object
    assert not recorder.download.visible and not recorder.progress.visible
    assert not recorder.record_button.disabled and not recorder.stop_button.visible
    assert not recorder.job_running("movie")


def test_a_finished_movie_is_kept_when_a_later_recording_is_stopped(monkeypatch):
    view, recorder = _recording_view()
    recorder.record()
    finished = recorder._file().getvalue()
    assert recorder.download.visible and finished[:6] == b"GIF89a"
    _stop_at_frame(monkeypatch, 2, recorder.stop)
    recorder.record()
    assert "stopped" in recorder.status.object
    assert recorder.download.visible  # the earlier movie is still there to download
    assert recorder._file().getvalue() == finished
    assert [p.name for p in recorder._folder().iterdir()] == ["movie.gif"]


def test_a_closed_session_ends_the_recording_and_removes_its_files(monkeypatch):
    view, recorder = _recording_view()
    recorder.seconds.value = 4
    seen = _stop_at_frame(monkeypatch, 3, view.runner.close)  # what Bokeh does when the tab is gone
    recorder.record()
    folder = recorder._folder()
    assert seen == [0, 1, 2, 3]
    assert not folder.exists() or list(folder.iterdir()) == []
