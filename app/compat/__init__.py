"""Every use of a private Bokeh, Panel or param attribute, in one place, with its tested range.

Contract: each module of this package wraps the private names it needs behind a public function
and lists them in its ``PRIVATE_USES``: what it reads, what it buys (measured), and the public
fallback taken when the library is outside :data:`TESTED_VERSIONS`. Nothing else in ``app/``
touches a private name of another library (``tests/test_architecture.py`` checks it), and
``tests/app/test_compat.py`` fails when an installed version is outside its tested range.

Modules (:data:`MODULES`): ``param_sync`` (the orbit scene's per-frame browser reports),
``query`` (Panel's query-string parsing), ``upload`` (the upload size guard in the browser),
``accessibility`` (ARIA roles, names and keys on BokehJS widget views), ``alert`` (message boxes
announced to screen readers), ``model_defs`` (a component definition received twice, without a
console warning), ``patch_guard`` (page values checked before Bokeh applies them); the session runner's
uses live in ``session``. :func:`private_uses` lists every record.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import NamedTuple

from packaging.version import InvalidVersion, Version  # a dependency of Bokeh's

__all__ = ["MODULES", "PrivateUse", "TESTED_VERSIONS", "installed_version", "private_uses", "version_tested",
           "untested_versions"]

#: The modules of this package that hold private uses (each has a ``PRIVATE_USES`` tuple).
MODULES = ("accessibility", "alert", "model_defs", "param_sync", "patch_guard", "query", "session", "upload")

#: ``library -> (lowest tested, first untested)``: the versions this app's tests ran on. The
#: same bounds stand in pyproject.toml's dependencies.
TESTED_VERSIONS: dict[str, tuple[str, str]] = {
    "bokeh": ("3.9", "3.10"),
    "panel": ("1.9", "1.10"),
    "param": ("2.4", "2.5"),
}


class PrivateUse(NamedTuple):
    """One private name of another library that the app relies on.

    Attributes:
        library: the distribution (``"bokeh"``, ``"panel"``, ``"param"``).
        name: the private name as used (``"Document.callbacks._change_callbacks"``).
        buys: what it gives the app, measured where it matters.
        fallback: what the app does instead outside the tested range.
    """

    library: str
    name: str
    buys: str
    fallback: str


def installed_version(library: str) -> str | None:
    """The installed version of ``library``, or None when it is not installed."""
    try:
        return version(library)
    except PackageNotFoundError:
        return None


def version_tested(library: str, installed: str | None = None) -> bool:
    """Whether ``installed`` (default: the installed version) lies in ``TESTED_VERSIONS[library]``.

    A pre-release or post-release of a tested line counts as that line (``3.9.0rc1`` and
    ``3.9.2.post1`` are 3.9); a development or pre-release of the first untested line does not
    (``3.10.0.dev1`` is 3.10). A version that is not installed or cannot be parsed is not tested.

    Raises:
        ValueError: ``library`` is not in :data:`TESTED_VERSIONS`.
    """
    if library not in TESTED_VERSIONS:
        raise ValueError(f"no tested range for {library!r}; TESTED_VERSIONS has {sorted(TESTED_VERSIONS)}")
    installed = installed_version(library) if installed is None else installed
    if installed is None:
        return False
    try:
        release = Version(installed).release  # 3.9.0rc1 -> (3, 9, 0)
    except InvalidVersion:
        return False
    low, high = TESTED_VERSIONS[library]
    return Version(low).release <= release < Version(high).release


def untested_versions() -> dict[str, str]:
    """``{library: installed version}`` for every library installed outside its tested range."""
    return {library: str(installed_version(library)) for library in TESTED_VERSIONS if not version_tested(library)}


def private_uses() -> dict[str, tuple[PrivateUse, ...]]:
    """``{module name: its PRIVATE_USES}`` for every module of :data:`MODULES` present here
    (importing them imports Panel and Bokeh)."""
    import importlib
    import importlib.util

    out = {}
    for name in MODULES:
        if importlib.util.find_spec(f"{__name__}.{name}") is not None:
            out[name] = tuple(importlib.import_module(f"{__name__}.{name}").PRIVATE_USES)
    return out
