"""Animation export: a saved trajectory drawn frame by frame (bodies, trails, optionally the
energy error beside) and streamed to a movie file, MP4 (H.264 through an ffmpeg pipe) or GIF.

Contract: :func:`open_movie` gives a writer that takes one RGB frame at a time and keeps at
most one frame between calls (the GIF's previous frame, to write only what changed; MP4 keeps
none: each frame goes down ffmpeg's pipe), so the memory of writing a movie does not grow with
its length. Files are written atomically: to a temporary file beside the target, renamed when
complete; a writer stopped or failed removes its temporary file (and kills ffmpeg at once).

Frames are drawn with matplotlib's Agg backend (no display needed); a GIF maps them onto one
fixed 256-colour palette (the renderer's colours blended with white) through a lookup table,
so frames stream without a global palette pass. Plotting libraries are imported inside the
functions: ``import nbody_core`` stays light.
"""

from __future__ import annotations

import functools
import io
import os
import re
import secrets
import struct
import subprocess
import tempfile
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["MOVIE_FORMATS", "GifWriter", "Mp4Writer", "MovieWriter", "frame_indices", "gif_palette", "open_movie",
           "palette_indices", "parse_size", "render_frames", "write_movie"]

MOVIE_FORMATS = (".mp4", ".gif")
MAX_SIDE = 3840  # pixels: a 4K frame at most
MAX_FRAMES = 60 * 60  # one minute at 60 fps

#: Held while matplotlib builds or draws a figure: it is not thread-safe (two recordings drawing
#: at once on the server's pool broke mathtext's parser of the log axis' labels, "ParseException
#: ... \mathdefault{10^{-8}}"). Little is lost: Agg drawing holds the GIL, two threads drawing
#: 15 frames each at 1280x720, N = 2000, took 7.2 s without the lock and 7.4 s with it.
_MATPLOTLIB_LOCK = threading.Lock()

#: Okabe-Ito palette (colour-blind safe), cycled over bodies.
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> ``(640, 480)``; both even (H.264 with yuv420p needs even sides).

    Raises:
        ValueError: in words, for anything else.
    """
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not match:
        raise ValueError(f"--movie-size must look like 640x480 (width x height in pixels), got {text!r}")
    width, height = int(match.group(1)), int(match.group(2))
    if not (16 <= width <= MAX_SIDE and 16 <= height <= MAX_SIDE) or width % 2 or height % 2:
        raise ValueError(f"movie width and height must be even numbers from 16 to {MAX_SIDE}, got {width}x{height}")
    return width, height


def frame_indices(num_snapshots: int, num_frames: int) -> np.ndarray:
    """Snapshot shown in each frame: evenly spaced over the run (repeats when frames > snapshots)."""
    return np.round(np.linspace(0, num_snapshots - 1, num_frames)).astype(int)


def render_frames(time, position, mass, energy=None, *, num_frames: int, size: tuple[int, int],
                  trail_fraction: float = 0.15, units: str = "nbody", title: str = ""):
    """Yield ``num_frames`` RGB frames ``[height, width, 3]`` uint8 of the run.

    Args:
        time: ``[S]`` snapshot times, time units.
        position: ``[S, n, 3]`` positions, length units (x, y are drawn).
        mass: ``[n]`` masses (marker area grows with mass).
        energy: ``[S]`` total energy, or None: with it, the relative energy error is drawn
            beside the orbits up to the frame's time.
        num_frames, size: frames and ``(width, height)`` in pixels.
        trail_fraction: trail length as a fraction of the run's snapshots.
        units: unit-system name written on the axes.
        title: text above the orbits.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    time = np.asarray(time, float)
    position = np.asarray(position, float)
    mass = np.asarray(mass, float)
    num_snapshots, n = position.shape[:2]
    width, height = size
    dpi = 100
    with _MATPLOTLIB_LOCK:  # matplotlib is not thread-safe (mathtext's parser, font caches)
        figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
        canvas = FigureCanvasAgg(figure)
        if energy is None:
            orbit_axes, energy_axes = figure.add_subplot(1, 1, 1), None
        else:
            orbit_axes, energy_axes = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
        finite = position[np.all(np.isfinite(position[..., :2]), axis=(1, 2))]
        low, high = (np.min(finite[..., :2], axis=(0, 1)), np.max(finite[..., :2], axis=(0, 1))) if finite.size else (
            np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
        centre, half = (low + high) / 2, max(float(np.max(high - low)) / 2, 1e-12) * 1.1
        orbit_axes.set_xlim(centre[0] - half, centre[0] + half)
        orbit_axes.set_ylim(centre[1] - half, centre[1] + half)
        orbit_axes.set_aspect("equal")
        orbit_axes.set_xlabel(f"x ({units} length)")
        orbit_axes.set_ylabel(f"y ({units} length)")
        colors = [OKABE_ITO[i % len(OKABE_ITO)] for i in range(n)]
        sizes = 20 + 80 * mass / mass.max()
        trails = [orbit_axes.plot([], [], color=colors[b], lw=1.2, alpha=0.8)[0] for b in range(min(n, 64))]
        bodies = orbit_axes.scatter(position[0, :, 0], position[0, :, 1], s=sizes, c=colors, zorder=3)
        label = orbit_axes.set_title(title)
        error_line = None
        if energy_axes is not None:
            energy = np.asarray(energy, float)
            with np.errstate(all="ignore"):
                error = np.abs(energy - energy[0]) / abs(energy[0])
            error = np.where(error > 0, error, np.nan)
            energy_axes.set_yscale("log")
            energy_axes.set_xlim(time[0], time[-1] if time[-1] > time[0] else time[0] + 1)
            good = error[np.isfinite(error)]
            if good.size:
                energy_axes.set_ylim(good.min() / 2, good.max() * 2)
            energy_axes.set_xlabel(f"t ({units} time)")
            energy_axes.set_title("|E - E0| / |E0|")
            error_line = energy_axes.plot([], [], color="#0072B2")[0]
        figure.tight_layout()
    trail = max(1, int(trail_fraction * num_snapshots))
    for index in frame_indices(num_snapshots, num_frames):
        start = max(0, index - trail)
        with _MATPLOTLIB_LOCK:
            for b, line in enumerate(trails):
                line.set_data(position[start:index + 1, b, 0], position[start:index + 1, b, 1])
            bodies.set_offsets(position[index, :, :2])
            label.set_text(f"{title}  t = {time[index]:.3g}".strip())
            if error_line is not None:
                error_line.set_data(time[:index + 1], error[:index + 1])
            canvas.draw()
            frame = np.asarray(canvas.buffer_rgba())[..., :3].copy()
        yield frame




def _temporary_beside(path: Path) -> Path:
    """A new empty file next to ``path`` (same file system: the final rename is atomic), created
    with the mode a plain ``open(path, "w")`` gives (0o666 less the umask)."""
    directory = path.parent
    if not directory.is_dir():
        raise OSError(f"cannot write {str(path)!r}: directory {str(directory)!r} does not exist")
    for _ in range(100):
        temporary = directory / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return temporary
        except FileExistsError:
            continue
    raise OSError(f"cannot write {str(path)!r}: no free temporary name in {str(directory)!r}")


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


class MovieWriter(ABC):
    """One movie being written: ``append(frame)`` per frame, then :meth:`close` (the file appears
    under its name) or :meth:`abort` (nothing is left). As a context manager it closes on success
    and aborts when the block raises (a stop request included)."""

    def __init__(self, path: str | Path, *, fps: int, size: tuple[int, int]):
        width, height = (int(side) for side in size)
        if not (16 <= width <= MAX_SIDE and 16 <= height <= MAX_SIDE) or width % 2 or height % 2:
            raise ValueError(f"movie width and height must be even numbers from 16 to {MAX_SIDE}, got {width}x{height}")
        self.path = Path(path)
        self.fps = int(fps)
        self.size = (width, height)
        self.frames_written = 0
        self._temporary = _temporary_beside(self.path)
        self._open = True

    @property
    def retained_bytes(self) -> int:
        """Bytes of frame data this writer holds between :meth:`append` calls (its memory that
        could grow with the movie's length; bounded by one frame)."""
        return 0

    def append(self, frame) -> None:
        """Add one frame: ``[height, width, 3]`` uint8 RGB of this writer's size."""
        frame = np.asarray(frame)
        width, height = self.size
        if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"a frame must be a [{height}, {width}, 3] uint8 RGB array, "
                             f"got {frame.shape} {frame.dtype}")
        if not self._open:
            raise ValueError("this movie is already closed")
        self._append(np.ascontiguousarray(frame))
        self.frames_written += 1

    def close(self) -> Path:
        """Finish the file and give it its name (atomic rename); returns the path."""
        if not self._open:
            return self.path
        try:
            self._finish()
            os.replace(self._temporary, self.path)
        except BaseException:
            self.abort()
            raise
        self._open = False
        return self.path

    def abort(self) -> None:
        """Stop now: no more encoding, the temporary file removed, the target untouched."""
        self._open = False
        try:
            self._discard()
        finally:
            _remove(self._temporary)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    @abstractmethod
    def _append(self, frame: np.ndarray) -> None:
        """Encode one frame (uint8, ``(height, width, 3)``)."""

    @abstractmethod
    def _finish(self) -> None:
        """Complete the temporary file (the caller renames it onto the target)."""

    @abstractmethod
    def _discard(self) -> None:
        """Stop encoding at once (the caller removes the temporary file)."""


class Mp4Writer(MovieWriter):
    """H.264 MP4 (yuv420p) through a pipe to imageio-ffmpeg's ffmpeg: each frame is written to
    the pipe at once and nothing is kept in this process; :meth:`abort` kills ffmpeg.

    ffmpeg is a separate process, held small: one thread (a recording uses one scheduler slot
    plus at most one encoder core), x264's ``veryfast`` preset tuned for ``zerolatency`` (no
    look-ahead queue of frames). Measured at 1280x720, 120 frames (2-core dev machine, loaded):
    ffmpeg's peak RSS 109 MiB and 3.1 s, against 258 MiB and 7.0 s with x264's defaults; the
    file is ~20 % larger. ``crf`` 15: imageio's ``quality=7`` for libx264
    (``int((1 - 7 / 10) * 51)``), this module's setting before frames were streamed.
    """

    crf = 15

    def __init__(self, path: str | Path, *, fps: int, size: tuple[int, int]):
        import imageio_ffmpeg

        super().__init__(path, fps=fps, size=size)
        width, height = self.size
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-hide_banner",
            "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{width}x{height}", "-pix_fmt", "rgb24",
            "-r", str(self.fps), "-i", "-", "-an", "-vcodec", "libx264", "-pix_fmt", "yuv420p",
            "-crf", str(self.crf), "-preset", "veryfast", "-tune", "zerolatency", "-threads", "1",
            "-f", "mp4", str(self._temporary),
        ]
        self._log = tempfile.TemporaryFile()
        try:
            # close_fds=False lets Python start ffmpeg with posix_spawn (no fork of a process
            # that runs JAX's threads; Python's own descriptors are not inherited, PEP 446).
            self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                             stderr=self._log, close_fds=False)
        except BaseException:
            self._log.close()
            _remove(self._temporary)
            raise

    def _append(self, frame: np.ndarray) -> None:
        try:
            self._process.stdin.write(memoryview(frame).cast("B"))
        except (BrokenPipeError, OSError):
            raise OSError(f"ffmpeg stopped while writing {str(self.path)!r}: {self._error_text()}") from None

    def _finish(self) -> None:
        try:
            self._process.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        code = self._process.wait()
        if code != 0:
            raise OSError(f"ffmpeg could not write {str(self.path)!r} (exit status {code}): {self._error_text()}")
        self._log.close()
        with open(self._temporary, "rb+") as written:  # on disk before the rename, as every file here
            os.fsync(written.fileno())

    def _discard(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        try:
            self._process.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        self._log.close()

    def _error_text(self) -> str:
        try:
            self._log.seek(0)
            text = self._log.read()[-2000:].decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            text = ""
        return text or "no message"


def _hex_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


@functools.lru_cache(maxsize=1)
def gif_palette() -> np.ndarray:
    """``[256, 3]`` uint8: the GIF palette. White, then each of the renderer's colours
    (:data:`OKABE_ITO`, black for axes and text among them) blended with the white background
    in as many steps as fit (31 for 8 colours: antialiased edges and alpha trails land on
    them); unused entries are black."""
    bases = list(dict.fromkeys((*OKABE_ITO, "#000000")))
    steps = (256 - 1) // len(bases)
    colors = [(255, 255, 255)]
    for color in bases:
        rgb = np.array(_hex_rgb(color), float)
        for alpha in np.linspace(1, 0, steps + 1)[:-1]:  # 1 .. 1/steps; alpha 0 is white
            colors.append(tuple(int(round(v)) for v in alpha * rgb + (1 - alpha) * 255))
    unique = list(dict.fromkeys(colors))
    palette = np.zeros((256, 3), np.uint8)
    palette[: len(unique)] = unique
    return palette


@functools.lru_cache(maxsize=1)
def _palette_lookup() -> np.ndarray:
    """``[64**3]`` uint8: the nearest :func:`gif_palette` entry to the centre of each 4x4x4 cube
    of RGB (6 bits a channel; the palette's steps are >= 8 levels apart along each blend, so a
    cube seldom holds two). Built once per process (~1 s on the 2-core dev machine, 256 KiB)."""
    palette = gif_palette().astype(np.float32)
    norm = (palette ** 2).sum(axis=1)
    centres = np.arange(64, dtype=np.float32) * 4 + 1.5
    grid = np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), axis=-1).reshape(-1, 3)
    lookup = np.empty(len(grid), np.uint8)
    for start in range(0, len(grid), 8192):
        block = grid[start:start + 8192]
        # |c - p|^2 = |c|^2 - 2 c.p + |p|^2; |c|^2 is the same for every p.
        lookup[start:start + 8192] = np.argmin(norm - 2 * block @ palette.T, axis=1)
    # A colour of the palette owns its cube (the renderer's pure colours and white come out
    # exact; two pale blues share a cube and differ by <= 4 levels).
    lookup[_cube_codes(gif_palette())[::-1]] = np.arange(256)[::-1]
    return lookup


def _cube_codes(rgb: np.ndarray) -> np.ndarray:
    """Index of each ``[..., 3]`` uint8 colour's 4x4x4 cube in :func:`_palette_lookup`."""
    code = (rgb[..., 0] >> 2).astype(np.uint32) << 12
    code |= (rgb[..., 1] >> 2).astype(np.uint32) << 6
    code |= rgb[..., 2] >> 2
    return code


def palette_indices(frame: np.ndarray) -> np.ndarray:
    """``[h, w]`` uint8 :func:`gif_palette` indices of an ``[h, w, 3]`` uint8 RGB frame."""
    return _palette_lookup().take(_cube_codes(frame))


def _gif_image_block(indices: np.ndarray, *, left: int, top: int) -> bytes:
    """The image descriptor and LZW data of ``indices`` (``[h, w]`` uint8 :func:`gif_palette`
    indices) placed at ``(left, top)``: Pillow saves it as a one-frame GIF (its public ``save``)
    and the block is cut out of that file by the GIF89a layout (header, global colour table,
    extensions, then the ``,`` image descriptor; ``;`` ends the file)."""
    from PIL import Image

    image = Image.fromarray(indices)
    image.putpalette(gif_palette().tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format="GIF", optimize=False)
    data = buffer.getbuffer()
    position = 13  # "GIF89a" + logical screen descriptor
    if data[10] & 0x80:
        position += 3 << ((data[10] & 7) + 1)  # global colour table
    while data[position] == 0x21:  # an extension: introducer, label, then sub-blocks up to a 0
        position += 2
        while data[position]:
            position += data[position] + 1
        position += 1
    if data[position] != 0x2C or data[position + 9] & 0x80 or data[-1] != 0x3B:
        raise ValueError("unexpected GIF layout from Pillow: no plain image block")
    block = bytearray(data[position:-1])
    block[1:5] = struct.pack("<HH", left, top)
    return bytes(block)


class GifWriter(MovieWriter):
    """Animated GIF written frame by frame: one global palette (:func:`gif_palette`), then per
    frame only the rectangle that changed since the previous frame (disposal "leave in place"),
    LZW-encoded by Pillow and written at once. A frame equal to the
    previous one is written as a 1x1 unchanged frame, so the file holds exactly one image per
    appended frame. Between calls it keeps the previous frame's indices (``width * height``
    bytes); nothing else grows with the frame count.

    Frame delays are whole centiseconds (GIF's unit), spread so that their sum tracks
    ``frames / fps`` (30 fps: 3, 3, 4, ...); browsers slow delays under 2 cs down, so 2 is the least.
    """

    def __init__(self, path: str | Path, *, fps: int, size: tuple[int, int]):
        super().__init__(path, fps=fps, size=size)
        self._file = open(self._temporary, "wb")
        self._previous: np.ndarray | None = None
        self._elapsed_cs = 0
        width, height = self.size
        try:
            self._file.write(b"GIF89a" + struct.pack("<HHBBB", width, height, 0xF7, 0, 0))  # 256-colour global table
            self._file.write(gif_palette().tobytes())
            self._file.write(b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00")  # loop forever
        except BaseException:
            self.abort()
            raise

    @property
    def retained_bytes(self) -> int:
        return 0 if self._previous is None else self._previous.nbytes

    def _append(self, frame: np.ndarray) -> None:
        indices = palette_indices(frame)
        if self._previous is None:
            top, left, patch = 0, 0, indices
        else:
            changed = indices != self._previous
            rows, columns = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
            if rows.size:
                top, left = int(rows[0]), int(columns[0])
                patch = indices[top:rows[-1] + 1, left:columns[-1] + 1]
            else:
                top, left, patch = 0, 0, indices[:1, :1]
        self._previous = indices
        end_cs = max(self._elapsed_cs + 2, round((self.frames_written + 1) * 100 / self.fps))
        delay_cs, self._elapsed_cs = end_cs - self._elapsed_cs, end_cs
        # Graphic control extension: disposal 1 (leave the frame in place), the delay, no transparency.
        self._file.write(b"!\xf9\x04\x04" + struct.pack("<H", delay_cs) + b"\x00\x00")
        self._file.write(_gif_image_block(np.ascontiguousarray(patch), left=left, top=top))

    def _finish(self) -> None:
        self._file.write(b";")  # trailer
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._previous = None

    def _discard(self) -> None:
        self._file.close()
        self._previous = None


def open_movie(path: str | Path, *, fps: int, size: tuple[int, int]) -> MovieWriter:
    """A writer for ``path`` by its extension: :class:`Mp4Writer` (``.mp4``) or
    :class:`GifWriter` (``.gif``). Use it as a context manager, or call ``close()`` /
    ``abort()``.

    Raises:
        ValueError: for another extension or fps outside 1-60.
        OSError: when the directory is missing.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MOVIE_FORMATS:
        raise ValueError(f"a movie must end in .mp4 or .gif, got {path.name!r}")
    if not (1 <= int(fps) <= 60) or int(fps) != fps:
        raise ValueError(f"--movie-fps must be a whole number from 1 to 60, got {fps!r}")
    writer = Mp4Writer if suffix == ".mp4" else GifWriter
    return writer(path, fps=int(fps), size=size)


def write_movie(path: str | Path, time, position, mass, energy=None, *, fps: int = 30, seconds: float = 3.0,
                size: tuple[int, int] = (640, 480), units: str = "nbody", title: str = "",
                progress: Callable[[int, int], None] | None = None) -> int:
    """Write the run as ``path`` (``.mp4`` or ``.gif``); returns the number of frames.

    ``fps * seconds`` frames (rounded) sample the snapshots evenly (a snapshot repeats when
    there are fewer snapshots than frames). Frames are drawn and streamed one at a time: memory
    is the run's arrays, the figure and about three frames (``width * height * 4`` bytes
    each), whatever the length. ``progress(done, total)`` is called once before the first frame
    (``done`` 0) and after each frame; an exception it raises (a stop request) ends the work at
    once: ffmpeg is killed, no partial file is left and the exception propagates.

    Raises:
        ValueError: for an unknown extension, fps outside 1-60, or a duration giving no frame
            or more than :data:`MAX_FRAMES`.
        OSError: when the file cannot be written (directory missing, ffmpeg failed).
    """
    path = Path(path)
    if path.suffix.lower() not in MOVIE_FORMATS:
        raise ValueError(f"a movie must end in .mp4 or .gif, got {path.name!r}")
    if not (1 <= int(fps) <= 60) or int(fps) != fps:
        raise ValueError(f"--movie-fps must be a whole number from 1 to 60, got {fps!r}")
    num_frames = int(round(fps * seconds))
    if not (1 <= num_frames <= MAX_FRAMES):
        raise ValueError(f"{fps} fps x {seconds} s gives {num_frames} frames; allowed 1 to {MAX_FRAMES}")
    if progress is not None:
        progress(0, num_frames)
    with open_movie(path, fps=fps, size=size) as writer:
        frames = render_frames(time, position, mass, energy, num_frames=num_frames, size=size, units=units,
                               title=title)
        try:
            for done, frame in enumerate(frames, start=1):
                writer.append(frame)
                del frame
                if progress is not None:
                    progress(done, num_frames)
        finally:
            frames.close()
    return num_frames
