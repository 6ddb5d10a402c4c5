"""Provenance: what produced a file (package versions, platform, devices, time, command).

Contract: :func:`provenance` returns one JSON-ready dict that every writer stores in its
metadata (``nbody run``, ``nbody ensemble``, ``nbody infer``, the dashboard's downloads);
:func:`package_versions` is its version part alone (checkpoint fingerprints use it).
"""

from __future__ import annotations

import datetime
import platform
import sys
from importlib import metadata as importlib_metadata
from typing import Any, Sequence

__all__ = ["DISTRIBUTION", "PACKAGES", "package_version", "package_versions", "provenance"]

#: The distribution name of this project (pyproject.toml ``[project] name``).
DISTRIBUTION = "nbody-explorer"
#: Packages whose versions change results, recorded in every file.
PACKAGES = (DISTRIBUTION, "jax", "jaxlib", "numpy", "diffrax")


def package_version(name: str = DISTRIBUTION) -> str:
    """Installed version of distribution ``name``, or ``"not installed"``."""
    try:
        return importlib_metadata.version(name)
    except importlib_metadata.PackageNotFoundError:
        return "not installed"


def package_versions() -> dict[str, str]:
    """``{package: version}`` for :data:`PACKAGES` and Python itself."""
    return {"python": platform.python_version(), **{name: package_version(name) for name in PACKAGES}}


def _devices() -> dict[str, Any]:
    # Only when JAX is loaded already: a writer that never touched JAX does not pay its import.
    jax = sys.modules.get("jax")
    if jax is None:
        return {"platform": None, "count": 0, "kind": None}
    devices = jax.devices()
    return {"platform": devices[0].platform, "count": len(devices), "kind": devices[0].device_kind,
            "process_count": jax.process_count()}


def provenance(command: Sequence[str] | None = None, *, timestamp: bool = True) -> dict[str, Any]:
    """What produced a result, as one JSON-ready dict.

    Args:
        command: the command line that produced it (None: not recorded).
        timestamp: include ``created_utc``. Writers whose files must be byte-identical
            between identical runs (ensembles, which resume from checkpoints and compare
            bytes) pass False.

    Returns:
        ``{"versions": {...}, "platform": {"system", "machine", "python"}, "devices":
        {"platform", "count", "kind", "process_count"}, "command": [...] | None}`` plus
        ``"created_utc"`` (ISO 8601, seconds) when ``timestamp``.
    """
    out: dict[str, Any] = {
        "versions": package_versions(),
        "platform": {"system": platform.system(), "machine": platform.machine(),
                     "python": platform.python_implementation()},
        "devices": _devices(),
        "command": list(command) if command is not None else None,
    }
    if timestamp:
        out["created_utc"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return out
