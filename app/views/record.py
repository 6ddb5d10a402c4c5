"""Record button for the Simulate tab: the run so far as an MP4 or GIF, made on the session
runner's worker pool (never the event loop), with a progress bar and a download link."""

from __future__ import annotations

import io
from functools import partial

import panel as pn

from app.runtime.messages import escape_markdown
from app.runtime.view import SessionView
from app.state.record import FORMATS, RecordSettings, movie_bytes

__all__ = ["RecordPanel"]


class RecordPanel(SessionView):
    """``RecordPanel(simulate_view)``: seconds, fps, format, size, Record, progress, download
    (on the Simulate view's session runner)."""

    def __init__(self, simulate, **params):
        super().__init__(runner=simulate.runner, **params)
        self.simulate = simulate
        self.settings = RecordSettings()
        self._data = b""
        self.seconds = pn.widgets.IntInput(label="Movie length (s)", value=3, start=1, end=20, width=140)
        self.fps = pn.widgets.IntInput(label="Frames per second", value=15, start=5, end=30, width=140)
        self.format = pn.widgets.Select(label="File type", options=FORMATS, value=".mp4", width=140)
        self.size = pn.widgets.Select(label="Size (pixels)", options={f"{w}×{h}": (w, h) for w, h in
                                                                      self.settings.param.size.objects},
                                      value=(640, 480), width=140)
        self.record_button = pn.widgets.Button(label="● Record", color="danger", width=140)
        self.progress = pn.indicators.Progress(value=0, max=1, visible=False, width=280)
        self.status = pn.pane.Markdown("", name="record-status")
        self.download = pn.widgets.FileDownload(callback=self._file, filename="nbody.mp4", label="Download movie",
                                                visible=False, width=280)
        self.record_button.on_click(self.runner.locked(lambda _: self.record()))
        self._layout = pn.Column(pn.Row(self.seconds, self.fps), pn.Row(self.format, self.size),
                                 self.record_button, self.progress, self.status, self.download)

    def __panel__(self):
        return self._layout

    def _file(self) -> io.BytesIO:
        return io.BytesIO(self._data)

    def record(self) -> None:
        """Make the movie on the pool (at once when not served)."""
        if self.job_running("movie"):
            return
        self.settings.param.update(seconds=self.seconds.value, fps=self.fps.value, suffix=self.format.value,
                                   size=self.size.value)
        self.simulate.playing = False
        total = self.settings.num_frames
        self.progress.param.update(value=0, max=total, visible=True)
        self.download.visible = False
        self.record_button.disabled = True
        self.status.object = f"Recording 0 / {total} frames …"

        def work(job):
            def progress(done, total):
                if done % 5 == 0 or done == total:
                    job.checkpoint()
                    self.in_session(partial(self._set_progress, done, total))

            return movie_bytes(self.simulate.state, self.settings, progress)

        def done(data):
            self._data = data
            self.record_button.disabled = False
            self.progress.value = self.progress.max
            self.download.filename = f"nbody-{self.simulate.state.preset}{self.settings.suffix}"
            self.download.visible = True
            self.status.object = f"Movie ready: {total} frames, {len(data) / 1e6:.2f} MB."

        def failed(error):
            self.record_button.disabled = False
            self.progress.visible = False
            self.status.object = escape_markdown(f"No movie: {error}")

        self.run_job("movie", work, done=done, failed=failed)

    def _set_progress(self, done: int, total: int) -> None:
        self.progress.value = done
        self.status.object = f"Recording {done} / {total} frames …"
