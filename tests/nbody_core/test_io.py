"""CSV initial conditions (round trip and every bad-input message) and atomic npz files."""

import os

import numpy as np
import pytest

import nbody_core as nb
from nbody_core.io import (
    MAX_CSV_BYTES,
    atomic_write_bytes,
    initial_conditions_csv_text,
    load_npz,
    parse_initial_conditions_csv,
    read_initial_conditions_csv,
    save_npz,
    trajectory_npz_bytes,
)

HEADER = "m,x,y,z,vx,vy,vz\n"


def test_csv_round_trip_is_exact(key, tmp_path):
    state = nb.plummer(key, 64)
    text = initial_conditions_csv_text(state)
    back = parse_initial_conditions_csv(text)
    for a, b in zip(state[:3], back[:3]):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # repr digits: bit-exact
    path = tmp_path / "ic.csv"
    path.write_bytes(text.encode())
    np.testing.assert_array_equal(read_initial_conditions_csv(path).position, state.position)


def test_csv_comments_blank_lines_bom_case_and_float32():
    text = "\ufeff# a comment\nM, X, Y, Z, VX, VY, VZ\n\n1,0,0,0,0,0,0\n  # another\n2,1,0,0,0,1,0\n"
    state = parse_initial_conditions_csv(text.encode("utf-8"), dtype=np.float32)
    assert state.position.dtype == np.float32
    np.testing.assert_array_equal(state.mass, [1.0, 2.0])


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "CSV file is empty"),
        (b"# only a comment\n\n", "CSV file is empty"),
        (b"\xff\xfe\x00m", "CSV file is not UTF-8 text"),
        ("m,x,y,z,vx,vy\n1,0,0,0,0,0\n", "missing ['vz']"),
        ("m,x,y,z,vx,vy,vz,q\n", "unexpected ['q']"),
        ("x,m,y,z,vx,vy,vz\n", "CSV header must be exactly m,x,y,z,vx,vy,vz"),
        (HEADER, "CSV file has a header but no bodies"),
        (HEADER + "1,0,0,0,0,0,0\n1,2,3\n", "line 3: expected 7 values, got 3"),
        (HEADER + "1,0,0,0,0,0,0\n1,0,0,0,0,0,0,0\n", "line 3: expected 7 values, got 8"),
        (HEADER + "1,0,0,0,0,0,0\n1,zero,0,0,0,0,0\n", "line 3: x value 'zero' is not a number"),
        (HEADER + "1,0,0,0,0,0,0\n1,1,0,0,0,,0\n", "line 3: vy value '' is not a number"),
        (HEADER + "1,0,0,0,0,0,0\n1,1,0,0,nan,0,0\n", "line 3: vx is not finite (nan)"),
        (HEADER + "1,0,-inf,0,0,0,0\n1,1,0,0,0,0,0\n", "line 2: y is not finite (-inf)"),
        (HEADER + "1,0,0,0,0,0,0\n0,1,0,0,0,0,0\n", "mass must be positive, body 1 has mass 0.0"),
        (HEADER + "1,0,0,0,0,0,0\n-2,1,0,0,0,0,0\n", "mass must be positive, body 1 has mass -2.0"),
        (HEADER + "1,0,0,0,0,0,0\n", "an N-body system needs at least 2 bodies, got 1"),
    ],
)
def test_every_bad_csv_message(data, message):
    with pytest.raises(ValueError) as raised:
        parse_initial_conditions_csv(data)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)  # one line, fit for the CLI and a UI notification


def test_size_and_body_limits(tmp_path):
    with pytest.raises(ValueError, match="the limit is 2"):
        parse_initial_conditions_csv(HEADER + "1,0,0,0,0,0,0\n" * 3, max_bodies=2)
    with pytest.raises(ValueError, match=f"the limit is {MAX_CSV_BYTES}"):
        parse_initial_conditions_csv(b"#" * (MAX_CSV_BYTES + 1))
    big = tmp_path / "big.csv"
    with open(big, "wb") as handle:
        handle.truncate(MAX_CSV_BYTES + 1)
    with pytest.raises(ValueError, match="bytes; the limit is"):
        read_initial_conditions_csv(big)
    with pytest.raises(ValueError, match="does not exist"):
        read_initial_conditions_csv(tmp_path / "missing.csv")


def test_npz_round_trip_with_metadata(tmp_path):
    trajectory = nb.simulate(nb.figure_eight(), dt=0.01, num_steps=10, save_every=5)
    path = tmp_path / "run.npz"
    atomic_write_bytes(path, trajectory_npz_bytes(trajectory, {"seed": 3, "units": {"t": "T"}}))
    arrays, metadata = load_npz(path)
    assert {k: metadata[k] for k in ("seed", "units", "unit_system")} == {
        "seed": 3, "units": {"t": "T"}, "unit_system": "nbody"}
    # Every trajectory file says what produced it (issue 10: one provenance() for every writer).
    assert metadata["versions"]["jax"] and metadata["devices"]["count"] >= 1 and metadata["created_utc"]
    assert set(arrays) == {"t", "position", "velocity", "mass", "energy", "linear_momentum", "angular_momentum"}
    np.testing.assert_array_equal(arrays["position"], trajectory.position)
    np.testing.assert_array_equal(arrays["energy"], trajectory.energy)
    save_npz(tmp_path / "plain.npz", {"a": np.arange(3)})
    arrays, metadata = load_npz(tmp_path / "plain.npz")
    assert metadata == {} and arrays["a"].tolist() == [0, 1, 2]


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "out.npz"
    atomic_write_bytes(path, b"old")

    def failing_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)  # fail mid-write, after the bytes went out
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"  # never a partial file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz"]  # temporary removed
    with pytest.raises(OSError, match="does not exist"):
        atomic_write_bytes(tmp_path / "no" / "x.npz", b"")
