"""Animation export: `nbody run ... --movie` writes MP4 and GIF that decode to the expected
frame count and size; bad options are refused in words before any work."""

import imageio.v2 as imageio
import imageio_ffmpeg
import numpy as np
import pytest

from nbody_core.cli import main
from nbody_core.io.movie import frame_indices, parse_size

RUN = ["run", "--preset", "figure_eight", "--t-end", "1.0", "--dt", "0.01", "--progress", "never"]


def _mp4_frames(path):
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)  # the first item is the metadata; then one bytes object per frame
    return meta["size"], sum(1 for _ in reader)


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_three_second_movie_has_expected_frames_and_size(tmp_path, suffix, capsys):
    path = tmp_path / f"out{suffix}"
    code = main([*RUN, "--movie", str(path), "--movie-fps", "10", "--movie-seconds", "3", "--movie-size", "320x240"])
    assert code == 0
    captured = capsys.readouterr()
    assert f"wrote {path}" in captured.out
    assert captured.err == ""  # no progress bar: stderr is not a terminal here
    if suffix == ".mp4":
        size, frames = _mp4_frames(path)
        assert tuple(size) == (320, 240)
        assert frames == 30  # 10 fps x 3 s
    else:
        frames = imageio.mimread(path)
        assert len(frames) == 30
        assert frames[0].shape[:2] == (240, 320)
        # Not one frame repeated: the bodies move.
        assert not np.array_equal(frames[0], frames[-1])


def test_orbits_only_movie(tmp_path):
    path = tmp_path / "orbits.gif"
    assert main([*RUN, "--movie", str(path), "--movie-fps", "4", "--movie-seconds", "1", "--movie-size",
                 "200x200", "--movie-no-energy"]) == 0
    assert len(imageio.mimread(path)) == 4


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--movie", "x.avi"], "must end in .mp4 or .gif"),
        (["--movie", "x.gif", "--movie-size", "big"], "must look like 640x480"),
        (["--movie", "x.gif", "--movie-size", "321x240"], "even numbers"),
        (["--movie", "x.gif", "--movie-fps", "0"], "--movie-fps"),
        (["--movie", "x.gif", "--movie-seconds", "0"], "--movie-seconds"),
        (["--movie", "/no/such/dir/x.gif"], "does not exist"),
    ],
)
def test_bad_movie_options_are_refused(tmp_path, monkeypatch, capsys, extra, message):
    monkeypatch.chdir(tmp_path)
    assert main([*RUN, *extra]) != 0
    assert message in capsys.readouterr().err


def test_helpers():
    assert parse_size("640x480") == (640, 480)
    assert list(frame_indices(5, 3)) == [0, 2, 4]
    assert list(frame_indices(2, 4)) == [0, 0, 1, 1]
