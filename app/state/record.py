"""Record a movie of the Simulate tab's run (no Panel): the recorded frames of the current
run drawn by the same renderer as ``nbody run --movie`` (:mod:`nbody_core.io.movie`).

Contract: :func:`record_movie` streams the movie into a file one frame at a time, so its memory
does not grow with the movie's length; a stop (an exception from ``progress``, e.g. the
scheduler's ``Cancelled``) ends it within one frame's work and leaves no partial file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import param

from nbody_core.io.movie import write_movie

__all__ = ["FORMATS", "RecordSettings", "record_movie"]

FORMATS = {"MP4 (video)": ".mp4", "GIF (animated image)": ".gif"}


class RecordSettings(param.Parameterized):
    """What the Record button makes.

    Memory of one recording, whatever these settings: the run's recorded frames (at most
    ``nbody_explorer.state.simulate_run.RECORD_VALUES`` floats, ~32 MB, gathered once), one matplotlib
    figure and about three frames in flight (``width * height * 4`` bytes each: 11 MB at
    1280x720). MP4 frames go down a pipe to ffmpeg (a separate process, one thread); a GIF
    keeps only the previous frame's palette indices (0.9 MB at 1280x720). Measured: two concurrent
    maximal recordings at N = 2000 peaked 54-66 MiB over the warm process
    (benchmarks/results/record.md).
    """

    seconds = param.Integer(3, bounds=(1, 20), doc="Length of the movie, seconds.")
    fps = param.Integer(15, bounds=(5, 30), doc="Frames per second of the movie.")
    suffix = param.Selector(default=".mp4", objects=list(FORMATS.values()), doc="File type.")
    size = param.Selector(default=(640, 480), objects=[(480, 360), (640, 480), (1280, 720)],
                          doc="Width and height in pixels.")

    @property
    def num_frames(self) -> int:
        return int(self.seconds * self.fps)


def record_movie(simulation, settings: RecordSettings, directory: str | Path,
                 progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the movie of ``simulation``'s recorded frames (what has run so far) as
    ``directory / "movie<suffix>"`` and return its path.

    Seconds of work (call it on the worker pool). ``progress(done, total)`` is called before the
    first frame (``done`` 0) and after each one; an exception it raises ends the work there:
    the partial file is removed (and ffmpeg killed) before the exception propagates. The file
    appears only when complete (an earlier movie of that name stays until then).

    Raises:
        ValueError: in words, when nothing has run yet.
    """
    trajectory = simulation.trajectory()
    if len(np.asarray(trajectory.time)) < 2:
        raise ValueError("Play or Step the run first: a movie needs at least two moments of it.")
    time, position, mass, energy = trajectory.time, trajectory.position, trajectory.mass, trajectory.energy
    del trajectory  # velocities and momenta are not drawn: not held for the seconds of drawing
    path = Path(directory) / f"movie{settings.suffix}"
    write_movie(path, time, position, mass, energy, fps=settings.fps, seconds=settings.seconds, size=settings.size,
                title=str(simulation.preset).replace("_", " "), progress=progress)
    return path
