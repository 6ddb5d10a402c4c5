"""``nbody ensemble``: one loadable npz, bit-for-bit reruns, resume, one-line errors.

The two-body Kepler preset keeps compiles short; the Plummer path is covered in
tests/nbody_core/ensembles/test_ensembles.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from nbody_core.cli import main
from nbody_core.ensembles import SUMMARIES, EnsembleCancelled, EnsembleSpec, parse_sweep, run_ensemble

ARGS = ["--preset", "kepler", "--members", "6", "--sweep", "eccentricity=0.1:0.6", "--steps", "100", "--seed", "2"]


def _umask() -> int:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_progress_bar_only_on_a_terminal(capsys, tmp_path, monkeypatch):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, err = run_cli(capsys, "ensemble", *ARGS, "--out", str(tmp_path / "tty.npz"))
    assert code == 0 and "\r" in err and "ensemble 6 members" in err


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_writes_one_loadable_npz_and_reruns_bit_for_bit(capsys, tmp_path):
    out = tmp_path / "data.npz"
    code, stdout, err = run_cli(capsys, "ensemble", *ARGS, "--out", str(out))
    assert code == 0, err
    # stderr is not a terminal here: the summary line, no carriage-return progress bar.
    assert f"wrote {out}" in err and "\r" not in err
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()  # the normal mode, not 0600
    first = out.read_bytes()
    data = np.load(out)  # one line, no pickle
    assert data["parameters"].shape == (6, 4)
    assert tuple(data["parameter_names"]) == ("dt", "softening", "eccentricity", "mass_ratio")
    np.testing.assert_allclose(data["param_eccentricity"], np.linspace(0.1, 0.6, 6))
    assert data["summaries"].shape == (6, len(SUMMARIES))
    assert data["energy"].shape == data["time"].shape == (6, 21)
    assert "position" not in data.files
    metadata = json.loads(str(data["metadata"]))
    assert metadata["command"] == ["nbody", "ensemble", "--preset", "kepler", "--seed", "2", "--members", "6",
                                   "--sweep", "eccentricity=0.1:0.6", "--steps", "100", "--out", str(out)]
    assert metadata["spec"]["sweeps"] == ["eccentricity=0.1:0.6"] and metadata["seeds"]["seed"] == 2
    assert metadata["units"] == "nbody" and metadata["versions"]["jax"]
    # Same arguments (in another order, quiet) -> the same bytes.
    shuffled = ARGS[4:] + ARGS[:4]
    code, _, err = run_cli(capsys, "ensemble", *shuffled, "--out", str(out), "--quiet")
    assert code == 0 and err == ""
    assert out.read_bytes() == first
    assert not out.with_name("data.npz.chunks").exists()  # checkpoints cleaned up


def test_save_trajectories(capsys, tmp_path):
    out = tmp_path / "traj.npz"
    code, _, err = run_cli(capsys, "ensemble", *ARGS, "--save-trajectories", "--saves", "5", "--out", str(out), "--quiet")
    assert code == 0, err
    data = np.load(out)
    assert data["position"].shape == data["velocity"].shape == (6, 6, 2, 3)
    assert data["mass"].shape == (6, 2)
    # The two bodies keep m1 + m2 = 2 at mass ratio 1.
    np.testing.assert_allclose(data["mass"].sum(axis=1), 2.0)


def test_resume_reuses_checkpointed_chunks_and_writes_the_same_file(capsys, tmp_path):
    out = tmp_path / "resume.npz"
    args = ["ensemble", *ARGS, "--chunk-size", "2", "--out", str(out)]
    code, _, err = run_cli(capsys, *args, "--quiet")
    assert code == 0, err
    fresh = out.read_bytes()
    out.unlink()
    # An interrupted run of the same spec left one chunk in OUT.chunks/ (one worker: chunks in
    # turn, so the stop after the first is seen before the second starts).
    spec = EnsembleSpec(system="kepler", num_members=6, num_steps=100, seed=2,
                        sweeps=(parse_sweep("eccentricity=0.1:0.6"),))
    finished = []
    with pytest.raises(EnsembleCancelled):
        run_ensemble(spec, chunk_size=2, checkpoint_dir=tmp_path / "resume.npz.chunks", workers=1,
                     progress=lambda done, total: done and finished.append(done), should_stop=lambda: bool(finished))
    code, _, err = run_cli(capsys, *args, "--resume")
    assert code == 0, err
    assert "1 chunks resumed" in err
    assert out.read_bytes() == fresh
    assert not (tmp_path / "resume.npz.chunks").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sweep", "softening=0.1:0.01"], "empty range"),
        (["--sweep", "spin=1:2"], "unknown sweep parameter 'spin'"),
        (["--sweep", "virial_ratio=0.1:0.9"], "virial_ratio does not apply to system 'kepler'"),
        (["--members", "0"], "num_members must be at least 1"),
        (["--members", "2000000"], "exceeds the cap"),
        (["--preset", "galaxy"], "unknown preset 'galaxy'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, extra, message):
    code, _, err = run_cli(capsys, "ensemble", *ARGS, *extra, "--out", str(tmp_path / "x.npz"))
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.parametrize(
    "extra, message", [(["--steps", "abc"], "invalid int value"), (["--design", "latin"], "invalid choice")]
)
def test_bad_option_values_are_one_line(capsys, tmp_path, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["ensemble", *ARGS, *extra, "--out", str(tmp_path / "x.npz")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_bad_output_paths(capsys, tmp_path):
    code, _, err = run_cli(capsys, "ensemble", *ARGS, "--out", str(tmp_path / "missing" / "x.npz"))
    assert code == 2 and "does not exist" in err
    code, _, err = run_cli(capsys, "ensemble", *ARGS, "--out", str(tmp_path / "x.csv"))
    assert code == 2 and "must name a .npz file" in err
