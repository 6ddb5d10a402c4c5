"""Record a movie of the Simulate tab's run (no Panel): the recorded frames of the current
run drawn by the same renderer as ``nbody run --movie`` (:mod:`nbody_core.io.movie`)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import param

from nbody_core.io.movie import write_movie

__all__ = ["RecordSettings", "movie_bytes"]

FORMATS = {"MP4 (video)": ".mp4", "GIF (animated image)": ".gif"}


class RecordSettings(param.Parameterized):
    """What the Record button makes."""

    seconds = param.Integer(3, bounds=(1, 20), doc="Length of the movie, seconds.")
    fps = param.Integer(15, bounds=(5, 30), doc="Frames per second of the movie.")
    suffix = param.Selector(default=".mp4", objects=list(FORMATS.values()), doc="File type.")
    size = param.Selector(default=(640, 480), objects=[(480, 360), (640, 480), (1280, 720)],
                          doc="Width and height in pixels.")

    @property
    def num_frames(self) -> int:
        return int(self.seconds * self.fps)


def movie_bytes(simulation, settings: RecordSettings, progress: Callable[[int, int], None] | None = None) -> bytes:
    """The movie of ``simulation``'s recorded frames (what has run so far) as file bytes.

    Seconds of work (call it on the worker pool). ``progress(done, total)`` after each frame.

    Raises:
        ValueError: in words, when nothing has run yet.
    """
    trajectory = simulation.trajectory()
    if len(np.asarray(trajectory.time)) < 2:
        raise ValueError("Play or Step the run first: a movie needs at least two moments of it.")
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"movie{settings.suffix}"
        write_movie(path, trajectory.time, trajectory.position, trajectory.mass, trajectory.energy,
                    fps=settings.fps, seconds=settings.seconds, size=settings.size,
                    title=str(simulation.preset).replace("_", " "), progress=progress)
        return path.read_bytes()
