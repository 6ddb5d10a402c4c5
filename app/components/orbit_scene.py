"""The live orbit scene: a Panel ``JSComponent`` that draws bodies and trails in the browser.

Two binary messages, both float32. A single frame (:func:`pack_frame`: header, positions
``[n, 3]``, speeds ``[n]`` only when colouring by speed, masses ``[n]`` only when a run starts,
velocities ``[n, 3]`` only while editing) is shown at once and drops every frame the browser
still buffers (run starts, Step, edits, Pause: "show this now"). A chunk (:func:`pack_chunk`:
header with run id, first frame index, frame count, then the times, positions and speeds of
``count`` consecutive frames, ~150 ms of playback) is appended to the browser's jitter
buffer, which plays at the display's rate (requestAnimationFrame) at ``frame_rate`` simulated
frames/s, interpolating linearly between frames. The browser (``orbit_scene.js``, shipped
beside this file, no CDN) keeps the trails, fades them, acknowledges the frame it played
(``drawn``) and reports back how many frames it painted. While ``editing`` (the run is paused) the browser draws velocity arrows and
lets bodies be dragged; it sends ``{"type": "edit", ...}`` messages, which go to
:attr:`OrbitScene.on_edit` (see ``app/state/edits.py`` for their format). While ``predicting``
a click on a projection sends ``{"type": "guess", "plane", "a", "b"}`` to
:attr:`OrbitScene.on_guess`; the server draws guesses and the revealed path through
``predict_marks`` (see ``app/state/predict.py``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

import numpy as np
import param
from bokeh.palettes import Cividis256
from panel.custom import JSComponent

from nbody_explorer.compat.param_sync import BrowserReports

__all__ = [
    "OrbitScene", "pack_frame", "unpack_frame", "FLAG_MASS", "FLAG_RESET", "FLAG_SPEED", "FLAG_VELOCITY",
    "FLAG_KEEP_CAMERA", "HEADER_WORDS", "pack_chunk",
]

HEADER_WORDS = 8  # float32 words before the positions (keep in step with orbit_scene.js)
MAGIC = 7.0  # header[0]: format version of a single frame
CHUNK_MAGIC = 8.0  # header[0]: a chunk of consecutive frames (see pack_chunk)
FLAG_SPEED = 1
FLAG_MASS = 2
FLAG_RESET = 4
FLAG_VELOCITY = 8  # velocities [n, 3] follow (after speeds and masses): editing
FLAG_KEEP_CAMERA = 16  # with FLAG_RESET: an edited state, trails dropped but the camera kept

# Colour-blind-safe maps. Okabe & Ito (2008), "Color Universal Design", for a few bodies
# (black replaced by light grey: the scene background is dark); cividis (Nuñez et al.
# 2018, designed for colour-vision deficiency) for mass or speed, from a quarter up, so
# that the darkest colours do not vanish on the dark background.
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#BBBBBB")
CIVIDIS = tuple(Cividis256[i] for i in range(64, 256, 3))
BACKGROUND = "#0b1221"


def pack_frame(
    position: np.ndarray,
    *,
    speed: np.ndarray | None = None,
    mass: np.ndarray | None = None,
    time: float = 0.0,
    run_id: int = 0,
    frame_index: int = 0,
    reset: bool = False,
    velocity: np.ndarray | None = None,
    keep_camera: bool = False,
) -> bytes:
    """One frame as little-endian float32 bytes: the only thing sent per frame.

    Layout: header ``[magic, n, flags, run_id, frame_index, time, 0, 0]``, then positions
    ``[n, 3]`` row-major, then speeds ``[n]`` if given, then masses ``[n]`` if given, then
    velocities ``[n, 3]`` if given.

    Args:
        position: ``[n, 3]`` positions, length units.
        speed: ``[n]`` speeds, velocity units, or None (not colouring by speed).
        mass: ``[n]`` masses, mass units, or None (unchanged since the run started).
        time: simulation time, time units (float32 in the message: display only).
        run_id: identifies the run; the browser drops its trails when it changes.
        frame_index: frames since the run started.
        reset: a new run: the browser drops its trails and re-fits the camera.
        velocity: ``[n, 3]`` velocities, velocity units (editing: drawn as arrows), or None.
        keep_camera: with ``reset``, the browser keeps its camera (an edited state).

    Returns:
        ``4 * (8 + 3n [+ n] [+ n] [+ 3n])`` bytes.
    """
    position = np.asarray(position)
    if position.ndim != 2 or position.shape[1] != 3:
        raise ValueError(f"position must have shape [n, 3], got {position.shape}")
    n = position.shape[0]
    flags = (
        (FLAG_SPEED if speed is not None else 0) | (FLAG_MASS if mass is not None else 0) | (FLAG_RESET if reset else 0)
        | (FLAG_VELOCITY if velocity is not None else 0) | (FLAG_KEEP_CAMERA if keep_camera else 0)
    )
    parts = [
        np.array([MAGIC, n, flags, run_id, frame_index, time, 0.0, 0.0], dtype="<f4"),
        position.astype("<f4", copy=False).reshape(-1),
    ]
    for extra, label in ((speed, "speed"), (mass, "mass")):
        if extra is not None:
            extra = np.asarray(extra).reshape(-1)
            if extra.shape[0] != n:
                raise ValueError(f"{label} must have shape [{n}], got {extra.shape}")
            parts.append(extra.astype("<f4", copy=False))
    if velocity is not None:
        velocity = np.asarray(velocity)
        if velocity.shape != (n, 3):
            raise ValueError(f"velocity must have shape [{n}, 3], got {velocity.shape}")
        parts.append(velocity.astype("<f4", copy=False).reshape(-1))
    return np.concatenate(parts).tobytes()


def pack_chunk(
    position: np.ndarray,
    *,
    time: np.ndarray,
    speed: np.ndarray | None = None,
    run_id: int = 0,
    first_index: int = 0,
) -> bytes:
    """``count`` consecutive frames of one run as one little-endian float32 message.

    Layout: header ``[8, n, flags, run_id, first_index, count, 0, 0]``, then the times
    ``[count]``, then positions ``[count, n, 3]`` row-major, then speeds ``[count, n]`` if
    given (``flags & FLAG_SPEED``). Frame ``k`` of the chunk has index ``first_index + k``.

    Args:
        position: ``[count, n, 3]`` positions, length units.
        time: ``[count]`` simulation times, time units (float32: display only).
        speed: ``[count, n]`` speeds, velocity units, or None (not colouring by speed).
        run_id: the run the frames belong to (the browser drops a chunk of another run).
        first_index: index of the first frame (frames since the run started, as in pack_frame).

    Returns:
        ``4 * (8 + count * (1 + 3n [+ n]))`` bytes.

    Raises:
        ValueError: a shape that does not match ``[count, n, 3]`` / ``[count]`` / ``[count, n]``.
    """
    position = np.asarray(position)
    if position.ndim != 3 or position.shape[2] != 3 or position.shape[0] < 1:
        raise ValueError(f"position must have shape [count >= 1, n, 3], got {position.shape}")
    count, n = position.shape[:2]
    time = np.asarray(time).reshape(-1)
    if time.shape[0] != count:
        raise ValueError(f"time must have shape [{count}], got {time.shape}")
    parts = [
        np.array([CHUNK_MAGIC, n, FLAG_SPEED if speed is not None else 0, run_id, first_index, count, 0.0, 0.0],
                 dtype="<f4"),
        time.astype("<f4", copy=False),
        position.astype("<f4", copy=False).reshape(-1),
    ]
    if speed is not None:
        speed = np.asarray(speed)
        if speed.shape != (count, n):
            raise ValueError(f"speed must have shape [{count}, {n}], got {speed.shape}")
        parts.append(speed.astype("<f4", copy=False).reshape(-1))
    return np.concatenate(parts).tobytes()


def _unpack_chunk(words: np.ndarray) -> dict:
    n, flags, count = int(words[1]), int(words[2]), int(words[5])
    per_frame = 3 * n + n * bool(flags & FLAG_SPEED)
    expected = HEADER_WORDS + count * (1 + per_frame)
    if count < 1 or expected != words.size:
        raise ValueError(f"chunk holds {words.size} words, header says {expected}")
    offset = HEADER_WORDS + count
    times = words[HEADER_WORDS:offset]
    position = words[offset:offset + count * 3 * n].reshape(count, n, 3)
    offset += count * 3 * n
    speed = words[offset:offset + count * n].reshape(count, n) if flags & FLAG_SPEED else None
    return {
        "chunk": True, "n": n, "flags": flags, "run_id": int(words[3]), "frame_index": int(words[4]),
        "count": count, "times": times, "time": float(times[-1]), "position": position, "speed": speed,
        "mass": None, "velocity": None,
    }


def unpack_frame(data: bytes) -> dict:
    """Inverse of :func:`pack_frame` and :func:`pack_chunk` (for tests and frame-only clients).

    A single frame gives ``n, flags, run_id, frame_index, time, position [n, 3], speed,
    mass, velocity [n, 3]`` (float32; None where absent); a chunk gives ``chunk: True``,
    ``count``, ``frame_index`` (of its first frame), ``times [count]``, ``time`` (the last),
    ``position [count, n, 3]`` and ``speed [count, n]`` or None."""
    words = np.frombuffer(data, dtype="<f4")
    if words.size >= HEADER_WORDS and words[0] == CHUNK_MAGIC:
        return _unpack_chunk(words)
    if words.size < HEADER_WORDS or words[0] != MAGIC:
        raise ValueError("not an orbit-scene frame")
    n, flags = int(words[1]), int(words[2])
    offset = HEADER_WORDS + 3 * n
    expected = offset + n * (bool(flags & FLAG_SPEED) + bool(flags & FLAG_MASS) + 3 * bool(flags & FLAG_VELOCITY))
    if expected != words.size:
        raise ValueError(f"frame holds {words.size} words, header says {expected}")
    out = {
        "n": n, "flags": flags, "run_id": int(words[3]), "frame_index": int(words[4]), "time": float(words[5]),
        "position": words[HEADER_WORDS:offset].reshape(n, 3), "speed": None, "mass": None, "velocity": None,
    }
    for flag, key in ((FLAG_SPEED, "speed"), (FLAG_MASS, "mass")):
        if flags & flag:
            out[key] = words[offset:offset + n]
            offset += n
    if flags & FLAG_VELOCITY:
        out["velocity"] = words[offset:offset + 3 * n].reshape(n, 3)
    return out


class OrbitScene(BrowserReports, JSComponent):
    """Bodies and fading trails drawn on a canvas in the browser (3D camera or projections).

    Call :meth:`show_run` when a run starts (sends masses, resets trails and camera) and
    :meth:`show_frame` per frame (safe from a worker thread). The browser writes back
    ``painted`` / ``paint_rate`` (frames it actually drew), ``drawn`` (the last frame painted:
    an acknowledgement the server can wait for) and ``page_visible``.
    """

    view = param.Selector(default="3d", objects=["3d", "xy", "xz", "yz", "quad"],
                          doc="Rotatable 3D camera, one fixed projection, or all four.")
    color_by = param.Selector(default="mass", objects=["mass", "speed"], doc="Colour bodies by mass or speed.")
    size_by_mass = param.Boolean(True, doc="Draw heavier bodies larger (log-mass scale).")
    trails = param.Boolean(True, doc="Draw the recent path of each body, older parts fainter.")
    trail_length = param.Integer(200, bounds=(2, None), doc="Frames of trail kept per body (the browser keeps at most ~24,000 segments: long trails are cut at large N).")
    follow_com = param.Boolean(False, doc="Keep the centre of mass at the centre of the view.")
    distance_scale = param.Selector(
        default="linear", objects=["linear", "log"],
        doc="Distances from the view's centre drawn to scale, or on a log scale (directions kept; a "
            "point at the fitted extent stays put), so that small orbits show beside large ones: the "
            "solar system's inner planets beside Neptune. The caption says so when on.")
    refit = param.Event(doc="Re-fit the camera to the bodies (also: double-click the scene).")
    palette = param.List(list(CIVIDIS), item_type=str, doc="Continuous colour map (hex), low to high.")
    categorical = param.List(list(OKABE_ITO), item_type=str, doc="Colours of the bodies when there are this few.")
    background = param.Color(BACKGROUND, doc="Scene background colour.")
    length_unit = param.String("length units", doc="Unit of x, y, z, named in the scene's caption (AU for the solar system).")
    playing = param.Boolean(False, doc="Chunks are played while True; False freezes the playback on its last whole "
                            "frame at once (a view can link it to its Play toggle in the browser).")
    frame_rate = param.Number(30.0, bounds=(0.1, None), doc="Simulated frames per second the browser plays chunks at (the speed slider).")
    painted = param.Integer(0, doc="Frames the browser has painted (written by the browser).")
    paint_rate = param.Number(0.0, doc="Frames painted in the browser's last second (written by the browser).")
    page_visible = param.Boolean(True, doc="False while the page or the scene is hidden (written by the browser).")
    drawn = param.List([-1, -1], doc="[run id, frame index] of the frame the browser played last: the last whole frame "
                       "reached by its playback, painted (written by the browser).")
    editing = param.Boolean(False, doc="Paused for editing: velocity arrows drawn, bodies can be dragged.")
    selected = param.Integer(-1, bounds=(-1, None), doc="Index of the selected body, -1 for none (written by the browser; the server clears it).")
    predicting = param.Boolean(False, doc="Predict mode: a click on a projection places a guess (sent to on_guess).")
    predict_body = param.Integer(-1, bounds=(-1, None), doc="Body ringed as the one to predict, -1 for none.")
    predict_marks = param.Dict({}, doc="Drawn in predict mode (set by the server): guesses [[plane, a, b]], "
                               "labels [str], closest (index), path [[x, y, z]] of the revealed body.")

    _esm = Path(__file__).with_name("orbit_scene.js")

    # What the browser writes back (an acknowledgement per painted frame, counts twice a second,
    # the selection): set on a short path, marks no session busy, sends nothing back; the
    # acknowledgement and the visibility skip Panel's 50 ms debounce (see nbody_explorer.compat.param_sync
    # for what each buys, measured).
    direct_reports = frozenset({"drawn", "painted", "paint_rate", "page_visible"})
    idle_reports = ("drawn", "painted", "paint_rate", "page_visible", "selected")
    urgent_reports = ("drawn", "page_visible")

    def __init__(self, **params):
        params.setdefault("sizing_mode", "stretch_both")
        params.setdefault("min_height", 420)
        super().__init__(**params)
        self._lock = threading.Lock()
        self._run_id = 0
        self._frame_index = 0
        self._position = np.zeros((0, 3), np.float32)
        self._velocity: np.ndarray | None = None
        self._mass = np.zeros(0, np.float32)
        self._time = 0.0
        self.frames_sent = 0
        self.bytes_sent = 0
        #: Called with each ``{"type": "edit", ...}`` message the browser sends (a dict,
        #: unvalidated: see ``nbody_explorer.state.edits.validate_edit``); None ignores them.
        self.on_edit: Callable[[dict], None] | None = None
        #: Called with each ``{"type": "guess", "plane", "a", "b"}`` message (a click in
        #: predict mode; unvalidated: see ``nbody_explorer.state.predict.PredictState.add_guess``).
        self.on_guess: Callable[[dict], None] | None = None
        self.last_message = b""  # bytes of the last frame sent (see unpack_frame)

    @property
    def position(self) -> np.ndarray:
        """``[n, 3]`` positions of the last frame sent (as given, before float32 packing)."""
        return self._position

    @property
    def mass(self) -> np.ndarray:
        """``[n]`` masses of the current run (float32, as sent)."""
        return self._mass

    @property
    def last_sent(self) -> tuple[int, int]:
        """``(run id, frame index)`` of the last frame sent (compare with ``drawn``)."""
        return self._run_id, self._frame_index

    def unacknowledged(self, drawn=None) -> int | None:
        """Frames sent after the one the browser painted last (0: it has drawn the newest).

        The browser paints only the newest frame it holds at each animation frame, so one
        acknowledgement stands for every earlier frame of the run as well.

        Args:
            drawn: ``[run id, frame index]`` as written by the browser (default: ``drawn``).

        Returns:
            ``frame index sent last - frame index drawn``, or None when ``drawn`` belongs to
            another run than the last frame sent (an acknowledgement that says nothing).
        """
        run_id, index = self.last_sent
        drawn_run, drawn_index = self.drawn if drawn is None else drawn
        if drawn_run != run_id or drawn_index > index:
            return None
        return index - drawn_index

    # ------------------------------------------------------------------ frames
    def show_run(self, position: np.ndarray, mass: np.ndarray, *, velocity: np.ndarray | None = None,
                 time: float = 0.0) -> bytes:
        """Start a new run: the browser drops its trails and fits the camera.

        Args:
            position: ``[n, 3]`` positions, length units.
            mass: ``[n]`` masses, mass units.
            velocity: ``[n, 3]`` velocities (for colouring by speed), velocity units.
            time: simulation time, time units.

        Returns:
            The bytes sent.
        """
        return self._start_run(position, mass, velocity, time, keep_camera=False)

    def show_frame(self, position: np.ndarray, *, velocity: np.ndarray | None = None, time: float = 0.0) -> bytes:
        """Send one frame of the current run (positions, and speeds when colouring by speed).

        Args:
            position: ``[n, 3]`` positions, length units (same n as :meth:`show_run`).
            velocity: ``[n, 3]`` velocities, velocity units (used when ``color_by == "speed"``).
            time: simulation time, time units.

        Returns:
            The bytes sent.
        """
        with self._lock:
            if np.shape(position)[0] != self._mass.shape[0]:
                raise ValueError(f"frame has {np.shape(position)[0]} bodies, the run has {self._mass.shape[0]}: call show_run first")
            self._frame_index += 1
            self._store(position, velocity, time)
            data = self._pack(reset=False)
        self._send(data)
        return data

    def show_chunk(self, position: np.ndarray, *, velocity: np.ndarray, time: np.ndarray) -> int:
        """Send ``count`` consecutive frames of the current run as one message, to be played
        after the frames the browser already holds (:func:`pack_chunk`; safe from a worker thread).

        Args:
            position: ``[count, n, 3]`` positions, length units (same n as :meth:`show_run`).
            velocity: ``[count, n, 3]`` velocities, velocity units (speeds travel when
                ``color_by == "speed"``; the last frame's are kept for later resends).
            time: ``[count]`` simulation times, time units.

        Returns:
            The index of the chunk's first frame (its frames are ``first .. first + count - 1``).
        """
        position, velocity = np.asarray(position), np.asarray(velocity)
        with self._lock:
            if position.ndim != 3 or position.shape[1] != self._mass.shape[0]:
                raise ValueError(f"chunk has shape {position.shape}, the run has {self._mass.shape[0]} bodies")
            first = self._frame_index + 1
            self._frame_index += position.shape[0]
            self._store(position[-1], velocity[-1], float(np.asarray(time)[-1]))
            speed = np.linalg.norm(velocity, axis=2) if self.color_by == "speed" else None
            data = pack_chunk(position, time=time, speed=speed, run_id=self._run_id, first_index=first)
        self._send(data)
        return first

    def show_edit(self, position: np.ndarray, mass: np.ndarray, *, velocity: np.ndarray, time: float = 0.0) -> bytes:
        """Show an edited state: like :meth:`show_run` (trails dropped, masses sent, any N),
        but the browser keeps its camera, so the scene does not jump under the mouse.

        Args:
            position: ``[n, 3]`` positions, length units.
            mass: ``[n]`` masses, mass units.
            velocity: ``[n, 3]`` velocities, velocity units.
            time: simulation time, time units.

        Returns:
            The bytes sent.
        """
        return self._start_run(position, mass, velocity, time, keep_camera=True)

    def _start_run(self, position, mass, velocity, time: float, *, keep_camera: bool) -> bytes:
        """A new run id and masses, then the state sent with ``reset`` (trails dropped)."""
        with self._lock:
            self._run_id += 1
            self._frame_index = 0
            self._mass = np.asarray(mass, np.float32).reshape(-1)
            self._store(position, velocity, time)
            data = self._pack(reset=True, keep_camera=keep_camera)
        self._send(data)
        return data

    def _store(self, position, velocity, time) -> None:
        self._position = np.asarray(position)
        self._velocity = None if velocity is None else np.asarray(velocity)
        self._time = float(time)

    def _pack(self, *, reset: bool, keep_camera: bool = False) -> bytes:
        speed = None
        if self.color_by == "speed" and self._velocity is not None:
            speed = np.linalg.norm(self._velocity, axis=1)
        # Velocity vectors travel only while editing (the arrows): 12 bytes a body more.
        velocity = self._velocity if self.editing and self._velocity is not None else None
        return pack_frame(
            self._position, speed=speed, mass=self._mass if reset else None, time=self._time,
            run_id=self._run_id, frame_index=self._frame_index, reset=reset, velocity=velocity,
            keep_camera=keep_camera,
        )

    def _send(self, data: bytes) -> None:
        self.frames_sent += 1
        self.bytes_sent += len(data)
        self.last_message = data
        self._send_msg(data)

    def _handle_msg(self, data) -> None:
        # A view that (re)renders asks for the current frame: send it as a run start.
        if isinstance(data, dict) and data.get("type") == "ready" and self._mass.size:
            with self._lock:
                data = self._pack(reset=True)
            self._send(data)
        elif isinstance(data, dict) and data.get("type") == "edit" and self.on_edit is not None:
            self.on_edit(data)
        elif isinstance(data, dict) and data.get("type") == "guess" and self.on_guess is not None:
            self.on_guess(data)

    @param.depends("editing", watch=True)
    def _resend_for_editing(self) -> None:
        # Editing starts: the arrows need the velocities now (a frame, not a new run).
        if self.editing and self._mass.size and self._velocity is not None:
            with self._lock:
                self._frame_index += 1
                data = self._pack(reset=False)
            self._send(data)

    @param.depends("color_by", watch=True)
    def _resend_for_colour(self) -> None:
        # Speeds travel only while colouring by speed: send them at once on the switch.
        if self._mass.size and self._velocity is not None:
            with self._lock:
                self._frame_index += 1
                data = self._pack(reset=False)
            self._send(data)
