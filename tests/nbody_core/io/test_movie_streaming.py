"""Movies stream: writing 300 frames holds no more than writing 30 (the writer keeps at most one
frame between calls), both formats decode to every frame at the right size, and a writer that
is stopped kills ffmpeg and leaves no file, partial or temporary."""

import tracemalloc

import imageio.v2 as imageio
import imageio_ffmpeg
import numpy as np
import pytest

from nbody_core.io.movie import GifWriter, Mp4Writer, gif_palette, open_movie, palette_indices, write_movie

WIDTH, HEIGHT = 160, 120


def _frames(count: int):
    """``count`` distinct frames: a square in one of the palette's colours moving over white."""
    palette = gif_palette()
    for k in range(count):
        frame = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
        x, y = (7 * k) % (WIDTH - 20), (3 * k) % (HEIGHT - 20)
        frame[y:y + 20, x:x + 20] = palette[1 + (k % 200)]
        yield frame


def _mp4_frames(path):
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)  # the first item is the metadata; then one bytes object per frame
    return tuple(meta["size"]), sum(1 for _ in reader)


def _write(path, count: int) -> tuple[int, int]:
    """Write ``count`` frames; (traced peak bytes while writing, most bytes the writer retained)."""
    frames = list(_frames(count))  # made before tracing: the writer's memory alone is traced
    tracemalloc.start()
    try:
        retained = 0
        with open_movie(path, fps=30, size=(WIDTH, HEIGHT)) as writer:
            for frame in frames:
                writer.append(frame)
                retained = max(retained, writer.retained_bytes)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, retained


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_writing_300_frames_holds_no_more_than_30(tmp_path, suffix):
    _write(tmp_path / f"warm{suffix}", 3)  # palette lookup, imports: built once per process
    peak_30, retained_30 = _write(tmp_path / f"short{suffix}", 30)
    peak_300, retained_300 = _write(tmp_path / f"long{suffix}", 300)
    one_frame = WIDTH * HEIGHT * 3
    # At most one frame of palette indices (GIF) or none (MP4: frames go down ffmpeg's pipe).
    assert retained_300 == retained_30 <= WIDTH * HEIGHT
    # 270 more frames: a writer that kept them would trace >= 270 * one_frame more.
    assert peak_300 - peak_30 < one_frame, (peak_30, peak_300)
    if suffix == ".gif":
        frames = imageio.mimread(tmp_path / "long.gif", format="GIF")
        assert len(frames) == 300 and frames[0].shape[:2] == (HEIGHT, WIDTH)
        expected = list(_frames(300))
        for k in (0, 1, 150, 299):  # palette colours on white: every frame decodes exactly
            assert np.array_equal(np.asarray(frames[k])[..., :3], expected[k])
    else:
        assert _mp4_frames(tmp_path / "long.mp4") == ((WIDTH, HEIGHT), 300)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}{suffix}" for n in ("warm", "short", "long"))


def test_a_repeated_frame_is_still_one_gif_frame_with_its_time(tmp_path):
    frames = list(_frames(3))
    with GifWriter(tmp_path / "r.gif", fps=30, size=(WIDTH, HEIGHT)) as writer:
        for frame in (frames[0], frames[0], frames[0], frames[1], frames[2], frames[2]):
            writer.append(frame)
    from PIL import Image

    with Image.open(tmp_path / "r.gif") as image:
        assert image.n_frames == 6
        durations = []
        for k in range(6):
            image.seek(k)
            durations.append(image.info["duration"])
    # 30 fps in whole centiseconds: 3, 3, 4, ... (sum tracks 100 cs a second).
    assert durations == [30, 40, 30, 30, 40, 30]
    decoded = imageio.mimread(tmp_path / "r.gif", format="GIF")
    assert np.array_equal(np.asarray(decoded[2])[..., :3], frames[0])
    assert np.array_equal(np.asarray(decoded[5])[..., :3], frames[2])


def test_palette_maps_its_own_colours_exactly():
    palette = gif_palette()
    used = palette[:249]  # white + 8 colours (Okabe-Ito, black among them) x 31 blends with white
    assert len({tuple(int(v) for v in c) for c in used}) == 249
    decoded = palette[palette_indices(used[None])[0]].astype(int)
    # Within the lookup's 4-level cubes everywhere; exact for white and the pure colours bodies,
    # lines and text are drawn in (entries 1, 32, 63, ...: each colour's first blend step).
    assert np.abs(decoded - used).max() <= 4
    pure = [0, *range(1, 249, 31)]
    assert np.array_equal(decoded[pure], used[pure])
    assert {tuple(int(v) for v in used[k]) for k in pure} >= {(255, 255, 255), (0, 0, 0), (230, 159, 0)}


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_an_aborted_writer_leaves_nothing(tmp_path, suffix):
    (tmp_path / f"old{suffix}").write_bytes(b"an earlier movie")
    writer = open_movie(tmp_path / f"old{suffix}", fps=10, size=(WIDTH, HEIGHT))
    for frame in _frames(5):
        writer.append(frame)
    writer.abort()
    if isinstance(writer, Mp4Writer):
        assert writer._process.poll() is not None  # ffmpeg killed, not left encoding
    # The target keeps its old content; no temporary file is left beside it.
    assert [p.name for p in tmp_path.iterdir()] == [f"old{suffix}"]
    assert (tmp_path / f"old{suffix}").read_bytes() == b"an earlier movie"


@pytest.mark.parametrize("name, size, fps, message", [
    ("x.gif", (15, 16), 10, "even numbers"),
    ("x.mp4", (16, 8), 10, "even numbers"),
    ("x.gif", (16, 16), 0, "whole number from 1 to 60"),
    ("x.avi", (16, 16), 10, "must end in .mp4 or .gif"),
])
def test_bad_writer_options_are_refused_before_any_file(tmp_path, name, size, fps, message):
    with pytest.raises(ValueError, match=message):
        open_movie(tmp_path / name, fps=fps, size=size)
    assert list(tmp_path.iterdir()) == []


class Stop(Exception):
    pass


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_write_movie_stopped_mid_way_leaves_no_partial_file(tmp_path, suffix):
    """A stop request (an exception from ``progress``) ends the work after the frame in hand."""
    time = np.linspace(0, 1, 50)
    position = np.zeros((50, 2, 3))
    position[:, 0, 0], position[:, 1, 0] = np.cos(time), -np.cos(time)
    seen = []

    def progress(done, total):
        seen.append(done)
        if done == 4:
            raise Stop()

    with pytest.raises(Stop):
        write_movie(tmp_path / f"m{suffix}", time, position, np.ones(2), fps=10, seconds=3, size=(WIDTH, HEIGHT),
                    progress=progress)
    assert seen == [0, 1, 2, 3, 4]  # not one frame drawn after the stop
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_write_movie_memory_does_not_grow_with_length(tmp_path):
    """The process's RSS while drawing a 300-frame GIF at 320x240 exceeds that of 30 frames by
    far less than the frames themselves (300 x 230 kB = 66 MiB; the GIF writer before streaming
    kept every frame until it closed, 3.75 MiB a frame at 1280x720 in issue 26). RSS, not
    tracemalloc: Pillow's buffers are not traced. (MP4 frames always went down ffmpeg's pipe;
    its writer is held to one frame above.)"""

    def rss_mib() -> float:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024

    time = np.linspace(0, 1, 400)
    position = np.zeros((400, 3, 3))
    for b in range(3):
        position[:, b, 0], position[:, b, 1] = np.cos(time * 6 + b), np.sin(time * 6 + b)

    def peak(frames: int) -> float:
        most = [rss_mib()]
        write_movie(tmp_path / f"m{frames}.gif", time, position, np.ones(3), fps=30, seconds=frames / 30,
                    size=(320, 240), progress=lambda done, total: most.append(rss_mib()))
        return max(most)

    peak(30)  # warm: matplotlib, the palette lookup
    short = peak(30)
    growth = peak(300) - short
    # 20 MiB is under a third of what the 300 frames occupy; allocator noise is a few MiB.
    assert growth < 20, growth


def test_movies_drawn_at_once_on_several_threads(tmp_path):
    """The server draws sessions' recordings on its pool threads at once; matplotlib is not
    thread-safe (without a lock, two recordings failed in mathtext's parser of the log axis'
    labels, "ParseException ... \\mathdefault{10^{-8}}")."""
    import threading

    time = np.linspace(0, 1, 60)
    position = np.zeros((60, 3, 3))
    for b in range(3):
        position[:, b, 0], position[:, b, 1] = np.cos(time * 6 + b), np.sin(time * 6 + b)
    errors, barrier = [], threading.Barrier(4)

    def record(k):
        # Each its own energy scale: tick labels (10^{-5} ... 10^{-12}) none of the others parse.
        energy = -1 + 10.0 ** -(5 + 2 * k) * np.sin(time * 50)
        try:
            barrier.wait()
            write_movie(tmp_path / f"m{k}.gif", time, position, np.ones(3), energy, fps=10, seconds=1,
                        size=(WIDTH, HEIGHT))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=record, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for k in range(4):
        assert len(imageio.mimread(tmp_path / f"m{k}.gif", format="GIF")) == 10
