"""Record button for the Simulate tab: the run so far as an MP4 or GIF, made on the session
runner's worker pool (never the event loop), with a progress bar, a Stop button and a download.

The movie streams into a file in this session's own temporary folder (memory bounded: see
:class:`~nbody_explorer.state.record.RecordSettings`); Stop or a closed tab ends it within one frame's work
(a scheduler checkpoint after every frame) and leaves no partial file; the finished movie is
kept there until a newer one replaces it or the session is destroyed.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path

import panel as pn

from nbody_explorer.runtime.admission import release_memory
from nbody_explorer.runtime.messages import escape_markdown
from nbody_explorer.runtime.view import SessionView
from nbody_explorer.state.links import link_value
from nbody_explorer.state.record import FORMATS, RecordSettings, record_movie

__all__ = ["RecordPanel"]

_PROGRESS_EVERY_S = 0.25  # page updates of the progress bar at most this often (a checkpoint every frame)


class RecordPanel(SessionView):
    """``RecordPanel(simulate_view)``: seconds, fps, format, size, Record, Stop, progress,
    download (on the Simulate view's session runner)."""

    def __init__(self, simulate, **params):
        super().__init__(runner=simulate.runner, **params)
        self.simulate = simulate
        self.settings = RecordSettings()
        self._directory: tempfile.TemporaryDirectory | None = None
        self._movie: Path | None = None  # the finished movie offered for download
        self._job = None  # the recording's job, known from its first frame (not served: no other handle)
        self.seconds = pn.widgets.IntInput(label="Movie length (s)", value=3, start=1, end=20, width=140)
        self.fps = pn.widgets.IntInput(label="Frames per second", value=15, start=5, end=30, width=140)
        self.format = pn.widgets.Select(label="File type", options=FORMATS, value=".mp4", width=140)
        self.size = pn.widgets.Select(label="Size (pixels)", options={f"{w}×{h}": (w, h) for w, h in
                                                                      self.settings.param.size.objects},
                                      value=(640, 480), width=140)
        self.record_button = pn.widgets.Button(label="● Record", color="danger", width=140)
        self.stop_button = pn.widgets.Button(label="■ Stop recording", width=140, visible=False)
        self.progress = pn.indicators.Progress(value=0, max=1, visible=False, width=280)
        self.status = pn.pane.Markdown("", name="record-status")
        self.download = pn.widgets.FileDownload(callback=self._file, filename="nbody.mp4", label="Download movie",
                                                visible=False, width=280)
        # The widgets and the settings move together (the settings are URL keys too); a value
        # from the page passes the validation boundary first.
        for widget, name in ((self.seconds, "seconds"), (self.fps, "fps"), (self.format, "suffix"), (self.size, "size")):
            widget.param.watch(partial(self._to_settings, widget, name), "value")
            self.settings.param.watch(partial(self._to_widget, widget), name)
        self.record_button.on_click(self.runner.locked(lambda _: self.record()))
        self.stop_button.on_click(self.runner.locked(lambda _: self.stop()))
        self.runner.on_destroyed(self._remove_files)
        self._layout = pn.Column(pn.Row(self.seconds, self.fps), pn.Row(self.format, self.size),
                                 pn.Row(self.record_button, self.stop_button), self.progress, self.status,
                                 self.download)

    def __panel__(self):
        return self._layout

    def _to_settings(self, widget, name: str, event) -> None:
        if event.new is None or event.new == getattr(self.settings, name):
            return
        try:
            setattr(self.settings, name, link_value(self.settings, name, event.new))
        except ValueError as error:  # Refused: said in words, the widget shows the kept value
            self.simulate.notify(str(error))
            widget.value = getattr(self.settings, name)

    @staticmethod
    def _to_widget(widget, event) -> None:
        if widget.value != event.new:
            widget.value = event.new

    def _file(self) -> io.BytesIO:
        if self._movie is None or not self._movie.is_file():
            return io.BytesIO(b"")
        return io.BytesIO(self._movie.read_bytes())

    def _folder(self) -> Path:
        """This session's folder for movies (removed with the session, or at exit)."""
        if self._directory is None:
            self._directory = tempfile.TemporaryDirectory(prefix="nbody-movie-")
        return Path(self._directory.name)

    def _remove_files(self) -> None:
        """The session is destroyed: its movies go (a recording still running was cancelled
        by the runner and removes its own partial file)."""
        self._movie = None
        if self._directory is not None:
            shutil.rmtree(self._directory.name, ignore_errors=True)

    def record(self) -> None:
        """Make the movie on the pool (at once when not served)."""
        if self.job_running("movie"):
            self.status.object = "The last recording is still stopping; press Record again in a moment."
            return
        self.settings.param.update(seconds=self.seconds.value, fps=self.fps.value, suffix=self.format.value,
                                   size=self.size.value)
        self.simulate.playing = False
        total = self.settings.num_frames
        settings = RecordSettings(**self.settings.param.values())  # the job's own copy
        folder = self._folder()
        self.progress.param.update(value=0, max=total, visible=True)
        self.download.visible = False
        self.record_button.disabled = True
        self.stop_button.visible = True
        self.status.object = f"Recording 0 / {total} frames …"
        shown = [0.0]

        def work(job):
            self._job = job

            def progress(done, total):
                job.checkpoint()  # every frame: Stop or a closed tab ends the work within one frame
                now = time.monotonic()
                if done == total or now - shown[0] >= _PROGRESS_EVERY_S:
                    shown[0] = now
                    self.in_session(partial(self._set_progress, done, total))

            try:
                return record_movie(self.simulate.state, settings, folder, progress)
            finally:
                # Hand the frames' freed pages back to the OS now (gc + malloc_trim): without it
                # a process kept ~15 % over its warm RSS after a GIF + MP4 pair of recordings.
                release_memory()

        def done(path):
            self._job = None
            for other in folder.glob("movie.*"):
                if other != path:
                    other.unlink(missing_ok=True)  # a movie of the other file type
            self._movie = path
            self._idle()
            self.progress.value = self.progress.max
            self.download.filename = f"nbody-{self.simulate.state.preset}{settings.suffix}"
            self.download.visible = True
            self.status.object = f"Movie ready: {total} frames, {path.stat().st_size / 1e6:.2f} MB."

        def failed(error):
            self._job = None
            self._idle(keep_movie=True)
            self.progress.visible = False
            self.status.object = escape_markdown(f"No movie: {error}")

        def interrupted():
            self._job = None
            self._idle(keep_movie=True)
            self.progress.visible = False
            self.status.object = "Recording stopped: the page lost its connection. Press Record to try again."

        self.run_job("movie", work, done=done, failed=failed, interrupted=interrupted)

    def stop(self) -> None:
        """Stop the recording: the work ends within one frame and its partial file is removed;
        the previous movie, if any, stays available."""
        job = self._job or self.job("movie")  # running, or still waiting for a slot
        if job is None or job.finished.is_set():
            return
        self._job = None
        self.cancel_job("movie")
        job.cancel()
        self._idle(keep_movie=True)
        self.progress.visible = False
        self.status.object = "Recording stopped; nothing was saved."

    def _idle(self, *, keep_movie: bool = False) -> None:
        self.record_button.disabled = False
        self.stop_button.visible = False
        if keep_movie and self._movie is not None and self._movie.is_file():
            self.download.visible = True

    def _set_progress(self, done: int, total: int) -> None:
        if self._job is None and done < total:
            return  # stopped meanwhile: the bar is hidden
        self.progress.value = done
        self.status.object = f"Recording {done} / {total} frames …"
