"""Frames streamed ahead of the browser: which were sent, which were played, how many more to make.

Contract: :class:`FrameStream` keeps the frames of the current stream that the browser has
not played past yet (a ring keyed by frame index: each :class:`SentFrame` holds what the
frame showed, its diagnostics and the full-precision :class:`~nbody_explorer.state.simulate_edits.RunPoint`
to rewind to), reads the browser's acknowledgement (the frame it played) and says how many
frames to compute next: a chunk of about :data:`CHUNK_S` of playback while fewer than
:data:`CHUNKS_AHEAD` chunks wait in the browser, nothing once that far ahead (so a hidden
page, which plays nothing, stops the computation). Pure logic: no Panel, no JAX, no thread.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

__all__ = ["CHUNK_S", "CHUNKS_AHEAD", "FrameStream", "SentFrame"]

#: Playback time one chunk (one message) holds: 100-250 ms per the design (issue 21); short
#: enough that Play shows motion soon, long enough to carry several frames per message.
CHUNK_S = 0.15
#: Chunks the server keeps ahead of what the browser played: the jitter buffer that hides a
#: slow compute or a late message; the future dropped on an interaction is at most this much.
CHUNKS_AHEAD = 3


class SentFrame(NamedTuple):
    """One frame of the stream as sent, with what the server needs once it is played.

    Attributes:
        index: the frame's index in the scene's run (as in the message).
        generation: the run generation it was computed in (an older one is stale).
        time: simulation time, time units.
        position: ``[n, 3]`` float64 positions, length units.
        velocity: ``[n, 3]`` float64 velocities, velocity units.
        history: its diagnostics points (:class:`~nbody_explorer.state.simulate_run.FrameDiagnostics`), or None.
        point: the run at this frame (:class:`~nbody_explorer.state.simulate_edits.RunPoint`), to rewind to.
        nonfinite: the run stopped at a non-finite step in this frame.
        fault: why it stopped (:class:`~nbody_explorer.state.simulate_run.RunFault`) or None.
        energy_warning: the run's energy warning once this frame was computed, or None.
    """

    index: int
    generation: int
    time: float
    position: np.ndarray
    velocity: np.ndarray
    history: Any = None
    point: Any = None
    nonfinite: bool = False
    fault: Any = None
    energy_warning: str | None = None


class FrameStream:
    """Flow control and the ring of sent frames for one scene.

    :meth:`restart` begins a stream at the frame the browser shows now (after a run start or
    any single frame: the browser dropped its buffer); :meth:`sent` records a chunk;
    :meth:`acknowledge` reads the browser's ``drawn``; :meth:`take_played` hands each played
    frame over once (for the plots and readouts); :meth:`frames_wanted` says how many frames
    the next chunk should hold (0: far enough ahead).

    Args:
        chunk_s: playback seconds per chunk.
        chunks_ahead: chunks kept ahead of the played frame.
    """

    def __init__(self, *, chunk_s: float = CHUNK_S, chunks_ahead: int = CHUNKS_AHEAD):
        if not chunk_s > 0 or chunks_ahead < 1:
            raise ValueError(f"chunk_s must be > 0 and chunks_ahead >= 1, got {chunk_s}, {chunks_ahead}")
        self.chunk_s, self.chunks_ahead = float(chunk_s), int(chunks_ahead)
        self.run_id = -1
        self.base = -1  # index of the frame the stream started from (shown when it started)
        self.last_sent = -1  # index of the newest frame sent
        self.played = -1  # index of the newest frame the browser played (never before base)
        self._reported = -1  # newest frame handed out by take_played
        self._ring: dict[int, SentFrame] = {}

    # ------------------------------------------------------------------ stream
    def restart(self, run_id: int, index: int, frame: SentFrame | None = None) -> None:
        """A new stream from frame ``index`` of run ``run_id``, which the browser shows now
        (``frame``: what it holds, the point to rewind to while nothing later is played)."""
        self.run_id, self.base = int(run_id), int(index)
        self.last_sent = self.played = self._reported = self.base
        self._ring = {self.base: frame._replace(index=self.base)} if frame is not None else {}

    def sent(self, frames: list[SentFrame]) -> None:
        """Record a chunk sent after :attr:`last_sent` (consecutive indices)."""
        for frame in frames:
            if frame.index != self.last_sent + 1:
                raise ValueError(f"frame {frame.index} sent after {self.last_sent}: a chunk continues the stream")
            self._ring[frame.index] = frame
            self.last_sent = frame.index

    def acknowledge(self, run_id: int, index: int) -> bool:
        """The browser played frame ``index`` of run ``run_id`` (its ``drawn``).

        Returns:
            True when this moves the played frame on; False for an acknowledgement of
            another run, of a frame before this stream (it reached the browser before the
            frame that restarted it) or beyond what was sent, or one already known.
        """
        if int(run_id) != self.run_id or not self.played < int(index) <= self.last_sent:
            return False
        self.played = int(index)
        return True

    # ------------------------------------------------------------------ flow
    def chunk_frames(self, frame_rate: float) -> int:
        """Frames in one chunk at ``frame_rate`` simulated frames/s (at least one)."""
        return max(1, int(math.ceil(frame_rate * self.chunk_s - 1e-9)))

    @property
    def ahead(self) -> int:
        """Frames sent and not yet played."""
        return self.last_sent - self.played

    def frames_wanted(self, frame_rate: float) -> int:
        """How many frames the next chunk should hold: a chunk's worth while fewer than
        ``chunks_ahead`` chunks wait in the browser, else 0 (the next acknowledgement asks again)."""
        chunk = self.chunk_frames(frame_rate)
        return 0 if self.ahead >= self.chunks_ahead * chunk else chunk

    # ------------------------------------------------------------------ played frames
    def take_played(self) -> list[SentFrame]:
        """The frames played since the previous call, oldest first (each handed out once),
        and forget every frame before the played one (its own entry stays: :meth:`played_frame`)."""
        out = [self._ring[i] for i in range(self._reported + 1, self.played + 1) if i in self._ring]
        self._reported = self.played
        for index in [i for i in self._ring if i < self.played]:
            del self._ring[index]
        return out

    def played_frame(self) -> SentFrame | None:
        """The frame the browser played last (None if it is not known: a stream restarted
        without one)."""
        return self._ring.get(self.played)

    def __len__(self) -> int:
        """Frames held (the played one and those sent after it)."""
        return len(self._ring)
