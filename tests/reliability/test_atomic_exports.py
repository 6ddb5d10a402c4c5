"""kill -9 mid-write never leaves a partial or corrupt output, and an ensemble run resumes.

A child process runs the real writer (``nbody_core.io.save_npz``, ``nbody run --out``,
``nbody ensemble --out``) with ``os.fsync`` or the file handle's ``write`` patched to send
the process SIGKILL at an exact point: after half the bytes reached the temporary file, or
after all of them but before the rename. This is deterministic, unlike racing a timer. One
more test kills a writer from outside at whatever moment its temporary file appears.
Afterwards the target must be absent or a complete, loadable earlier file, and whatever
junk the killed process left must not look like an output (hidden ``.NAME.*.tmp`` files).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nbody_core.cli import main
from nbody_core.io import load_npz, save_npz

# Runs in the child: patch the kill point, then run the action given on the command line.
CHILD = r"""
import os, signal, sys
mode, kill_at, action, *argv = sys.argv[1:]
kill_at = int(kill_at)
calls = {"n": 0}

def _due():
    calls["n"] += 1
    return calls["n"] == kill_at

if mode == "before-rename":
    real_fsync = os.fsync
    def fsync(fd):
        real_fsync(fd)
        if _due():
            os.kill(os.getpid(), signal.SIGKILL)
    os.fsync = fsync
elif mode == "half-written":
    real_fdopen = os.fdopen
    class HalfWriter:
        def __init__(self, handle):
            self.handle = handle
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self.handle.close()
        def write(self, data):
            if _due():
                self.handle.write(data[: len(data) // 2])
                self.handle.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return self.handle.write(data)
        def __getattr__(self, name):
            return getattr(self.handle, name)
    os.fdopen = lambda *a, **k: HalfWriter(real_fdopen(*a, **k))

if action == "save_npz":
    import numpy as np
    from nbody_core.io import save_npz
    path, version = argv
    data = np.random.default_rng(int(version)).standard_normal(200_000)
    save_npz(path, {"data": data}, {"version": int(version)})
else:
    from nbody_core.cli import main
    sys.exit(main(argv))
"""


def _child(mode: str, kill_at: int, action: str, *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(kill_at), action, *argv],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )


def _assert_killed(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == -signal.SIGKILL, (result.returncode, result.stderr[-2000:])


def _outputs(directory: Path) -> list[str]:
    """What a user (or a glob in a training script) would take for outputs."""
    return sorted(p.name for p in directory.glob("*.npz") if p.is_file())


def _junk(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("mode", ["half-written", "before-rename"])
def test_save_npz_killed_mid_write_keeps_the_previous_file(tmp_path, mode):
    target = tmp_path / "data.npz"
    save_npz(target, {"data": np.random.default_rng(1).standard_normal(200_000)}, {"version": 1})
    previous = target.read_bytes()

    _assert_killed(_child(mode, 1, "save_npz", str(target), "2", cwd=tmp_path))

    assert target.read_bytes() == previous  # untouched, not half of version 2
    arrays, metadata = load_npz(target)
    assert metadata == {"version": 1}
    np.testing.assert_array_equal(arrays["data"], np.random.default_rng(1).standard_normal(200_000))
    # The killed process could not clean up: its temp file is there, hidden, and it is
    # really the interrupted write (a partial or unrenamed copy), not an output.
    junk = _junk(tmp_path)
    assert len(junk) == 1 and junk[0].name.startswith(".data.npz.")
    assert _outputs(tmp_path) == ["data.npz"]
    if mode == "half-written":
        with pytest.raises(ValueError, match="not a readable npz file"):
            load_npz(junk[0])


def test_save_npz_killed_mid_write_leaves_no_target_when_there_was_none(tmp_path):
    target = tmp_path / "fresh.npz"
    _assert_killed(_child("half-written", 1, "save_npz", str(target), "1", cwd=tmp_path))
    assert not target.exists()
    assert _outputs(tmp_path) == []


def test_writer_killed_from_outside_while_its_temp_file_exists(tmp_path):
    # The realistic case: `kill -9` from another process at an arbitrary moment. The child
    # rewrites a ~12 MB file in a loop; we kill it as soon as a temp file is seen.
    target = tmp_path / "loop.npz"
    script = (
        "import hashlib, sys, numpy as np\n"
        "from nbody_core.io import save_npz\n"
        "data = np.random.default_rng(0).standard_normal(1_500_000)\n"
        "for version in range(1, 10_000):\n"
        "    data[0] = version\n"
        "    save_npz(sys.argv[1], {'data': data}, {'version': version,\n"
        "             'sha256': hashlib.sha256(data.tobytes()).hexdigest()})\n"
        "    print(version, flush=True)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(target)], cwd=tmp_path, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    try:
        assert process.stdout.readline().strip() == "1"  # a complete version exists
        deadline = time.monotonic() + 60
        while not _junk(tmp_path):
            assert time.monotonic() < deadline, "the writer never started a second write"
            assert process.poll() is None
        os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    arrays, metadata = load_npz(target)
    assert metadata["version"] >= 1
    assert hashlib.sha256(arrays["data"].tobytes()).hexdigest() == metadata["sha256"]  # complete, consistent
    assert _outputs(tmp_path) == ["loop.npz"]


RUN = ["run", "--preset", "figure_eight", "--steps", "50", "--out", "orbit.npz"]


def test_nbody_run_killed_while_writing_keeps_the_previous_output(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(RUN + ["--dt", "1e-3"]) == 0
    previous = (tmp_path / "orbit.npz").read_bytes()
    _assert_killed(_child("half-written", 1, "cli", *RUN, "--dt", "2e-3", cwd=tmp_path))
    assert (tmp_path / "orbit.npz").read_bytes() == previous
    _, metadata = load_npz(tmp_path / "orbit.npz")
    assert metadata["dt"] == 1e-3
    assert _outputs(tmp_path) == ["orbit.npz"]


# 16 members in 4 chunks of 4; every finished chunk is checkpointed with save_npz, so the
# 3rd fsync is the 3rd chunk: two chunks are complete when the process dies.
ENSEMBLE = [
    "ensemble", "--preset", "plummer", "--n", "8", "--members", "16", "--chunk-size", "4",
    "--sweep", "softening=0.01:0.1:log", "--steps", "40", "--seed", "3", "--out", "train.npz",
]


def test_nbody_ensemble_killed_mid_run_resumes_to_the_same_bytes(tmp_path, monkeypatch, capsys):
    interrupted, clean = tmp_path / "interrupted", tmp_path / "clean"
    interrupted.mkdir()
    clean.mkdir()

    _assert_killed(_child("before-rename", 3, "cli", *ENSEMBLE, "--quiet", cwd=interrupted))
    assert _outputs(interrupted) == []  # no training file until the whole ensemble is done
    checkpoints = interrupted / "train.npz.chunks"
    saved = sorted(checkpoints.glob("chunk-*.npz"))
    assert len(saved) == 2
    # Damage one checkpoint after the fact (a disk error, a user's editor): it must be
    # recomputed, never trusted; the other one is reused.
    saved[0].write_bytes(saved[0].read_bytes()[:100])

    monkeypatch.chdir(interrupted)
    assert main(ENSEMBLE + ["--resume"]) == 0
    assert "1 chunks resumed" in capsys.readouterr().err

    monkeypatch.chdir(clean)
    assert main(ENSEMBLE + ["--quiet"]) == 0
    assert (interrupted / "train.npz").read_bytes() == (clean / "train.npz").read_bytes()
    assert _outputs(interrupted) == ["train.npz"]
    assert not checkpoints.exists()  # checkpoints and the killed write's temp file are cleaned up
