"""Reading and writing initial conditions and trajectories, safely.

CSV initial conditions have the header ``m,x,y,z,vx,vy,vz`` (one body per row, ``#``
comments allowed). Every file is written atomically: to a temporary file in the target
directory, flushed and fsync'd, then renamed over the target, so a crash or ``kill -9``
mid-write never leaves a partial or corrupt file.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from nbody_core.provenance import provenance
from nbody_core.physics.state import ParticleState, make_state

__all__ = [
    "CSV_COLUMNS",
    "MAX_CSV_BYTES",
    "parse_initial_conditions_csv",
    "read_initial_conditions_csv",
    "initial_conditions_csv_text",
    "atomic_write_bytes",
    "npz_bytes",
    "save_npz",
    "trajectory_npz_bytes",
    "load_npz",
]

CSV_COLUMNS = ("m", "x", "y", "z", "vx", "vy", "vz")
MAX_CSV_BYTES = 5_000_000  # ~50 000 bodies; larger uploads are refused before parsing


def parse_initial_conditions_csv(
    data: bytes | str, *, max_bodies: int | None = None, dtype=None, units: str = "nbody"
) -> ParticleState:
    """Parse CSV initial conditions into a validated state.

    Args:
        data: file contents (bytes must be UTF-8).
        max_bodies: optional cap on the number of rows.
        dtype: dtype of the state (float64 by default).
        units: unit system of the values (``units.UNIT_SYSTEMS``); the state carries it.

    Raises:
        ValueError: with a message naming the problem (encoding, header, row, value).
    """
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, (bytes, str)):
        raise ValueError(f"CSV data must be bytes or text, got {type(data).__name__}")
    if isinstance(data, bytes):
        if len(data) > MAX_CSV_BYTES:
            raise ValueError(f"CSV file is {len(data)} bytes; the limit is {MAX_CSV_BYTES}")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ValueError(f"CSV file is not UTF-8 text (byte {error.start})") from None
    else:
        text = data
        if len(text) > MAX_CSV_BYTES:
            raise ValueError(f"CSV text has {len(text)} characters; the limit is {MAX_CSV_BYTES}")
    lines = [
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise ValueError("CSV file is empty: expected a header m,x,y,z,vx,vy,vz and one row per body")
    header = [column.strip().lower() for column in lines[0][1].split(",")]
    if tuple(header) != CSV_COLUMNS:
        missing = [c for c in CSV_COLUMNS if c not in header]
        extra = [c for c in header if c not in CSV_COLUMNS]
        detail = []
        if missing:
            detail.append(f"missing {missing}")
        if extra:
            detail.append(f"unexpected {extra}")
        raise ValueError(
            f"CSV header must be exactly {','.join(CSV_COLUMNS)} "
            f"(got {','.join(header)!r}{'; ' + ', '.join(detail) if detail else ''})"
        )
    rows = lines[1:]
    if not rows:
        raise ValueError("CSV file has a header but no bodies")
    if max_bodies is not None and len(rows) > max_bodies:
        raise ValueError(f"CSV file has {len(rows)} bodies; the limit is {max_bodies}")
    values = np.empty((len(rows), len(CSV_COLUMNS)))
    for index, (number, line) in enumerate(rows):
        fields = line.split(",")
        if len(fields) != len(CSV_COLUMNS):
            raise ValueError(f"line {number}: expected {len(CSV_COLUMNS)} values, got {len(fields)}")
        for column, field in enumerate(fields):
            try:
                values[index, column] = float(field)
            except ValueError:
                raise ValueError(
                    f"line {number}: {CSV_COLUMNS[column]} value {field.strip()!r} is not a number"
                ) from None
    bad = ~np.isfinite(values)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ValueError(f"line {rows[row][0]}: {CSV_COLUMNS[column]} is not finite ({values[row, column]})")
    kwargs = {} if dtype is None else {"dtype": dtype}
    return make_state(values[:, 1:4], values[:, 4:7], values[:, 0], units=units, **kwargs)


def read_initial_conditions_csv(path: str | os.PathLike, **kwargs) -> ParticleState:
    """Read a CSV file of initial conditions (see :func:`parse_initial_conditions_csv`)."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"initial-conditions file {str(path)!r} does not exist")
    if not path.is_file():  # a directory, FIFO or device (/dev/zero): never opened
        kind = "a directory" if path.is_dir() else "a FIFO, socket or device"
        raise ValueError(f"initial-conditions file {str(path)!r} is not a regular file ({kind})")
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise ValueError(f"CSV file is {size} bytes; the limit is {MAX_CSV_BYTES}")
    return parse_initial_conditions_csv(path.read_bytes(), **kwargs)


def initial_conditions_csv_text(state: ParticleState) -> str:
    """The state as CSV text in the same format, exact to float64 round-trip (repr digits)."""
    table = np.column_stack(
        [np.asarray(state.mass, np.float64), np.asarray(state.position, np.float64), np.asarray(state.velocity, np.float64)]
    )
    out = io.StringIO()
    out.write(",".join(CSV_COLUMNS) + "\n")
    for row in table:
        out.write(",".join(repr(float(v)) for v in row) + "\n")
    return out.getvalue()


def _current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: the classic read-and-restore
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename).

    The file gets the mode a plain ``open(path, "w")`` would give: an existing file keeps
    its mode, a new one gets ``0o666`` minus the umask (``mkstemp`` alone would give 0600).
    A symlink is written *through*: the file it points to is replaced atomically and the
    link itself stays a link (as the shell's ``>`` does).

    Raises:
        OSError: with the path named, if the directory is missing or not writable.
    """
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise OSError(f"cannot write {str(path)!r}: directory {str(directory)!r} does not exist")
    if target.is_dir():
        raise OSError(f"cannot write {str(path)!r}: it is a directory")
    try:
        mode = target.stat().st_mode & 0o7777 if target.is_file() else 0o666 & ~_current_umask()
    except OSError:
        mode = 0o666 & ~_current_umask()
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as error:
        raise OSError(f"cannot write {str(path)!r}: {error.strerror or error}") from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    return path


def npz_bytes(arrays: dict[str, Any], metadata: dict[str, Any] | None = None) -> bytes:
    """Compressed npz bytes of ``arrays`` plus, if given, ``metadata`` as one JSON string
    entry (keys sorted: the same inputs give the same bytes)."""
    buffer = io.BytesIO()
    payload = {name: np.asarray(value) for name, value in arrays.items()}
    if metadata is not None:
        payload["metadata"] = np.array(json.dumps(metadata, sort_keys=True, default=str))
    # numpy's stub lets **payload fill the allow_pickle: bool keyword; the keys are array names.
    np.savez_compressed(buffer, **payload)  # type: ignore[arg-type]
    return buffer.getvalue()


def save_npz(path: str | os.PathLike, arrays: dict[str, Any], metadata: dict[str, Any] | None = None) -> Path:
    """Atomically write ``arrays`` (plus a JSON ``metadata`` entry) as a compressed npz."""
    return atomic_write_bytes(path, npz_bytes(arrays, metadata))


def trajectory_npz_bytes(trajectory, metadata: dict[str, Any] | None = None) -> bytes:
    """npz bytes with ``t [T]``, ``position [T,N,3]``, ``velocity [T,N,3]``, ``mass [N]``,
    ``energy [T]``, ``linear_momentum [T,3]``, ``angular_momentum [T,3]`` and ``metadata``.

    ``metadata`` gains the trajectory's ``unit_system`` and, unless it records ``versions``
    already, :func:`~nbody_core.provenance.provenance` (versions, platform, devices, UTC time),
    so every trajectory file says what produced it.
    """
    metadata = dict(metadata or {})
    metadata.setdefault("unit_system", getattr(trajectory, "units", "nbody"))
    if "versions" not in metadata:
        metadata.update(provenance(metadata.get("command")))
    return npz_bytes(
        {
            "t": trajectory.time,
            "position": trajectory.position,
            "velocity": trajectory.velocity,
            "mass": trajectory.mass,
            "energy": trajectory.energy,
            "linear_momentum": trajectory.linear_momentum,
            "angular_momentum": trajectory.angular_momentum,
        },
        metadata,
    )


def load_npz(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load an npz written here: ``(arrays, metadata)`` (metadata decoded from JSON)."""
    path = Path(path)
    if not path.is_file():
        raise OSError(f"cannot read {str(path)!r}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files if name != "metadata"}
            metadata = json.loads(str(data["metadata"])) if "metadata" in data.files else {}
    except (ValueError, EOFError, zipfile.BadZipFile, json.JSONDecodeError, KeyError):
        raise ValueError(f"{str(path)!r} is not a readable npz file (truncated or corrupt?)") from None
    return arrays, metadata
