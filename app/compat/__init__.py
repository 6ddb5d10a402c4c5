"""Every use of a private Bokeh, Panel or param attribute, in one place, with its tested range.

Contract: each module of this package wraps the private names it needs behind a public function
and lists them in its ``PRIVATE_USES``: what it reads, what it buys (measured), and the public
fallback taken when the library is outside :data:`TESTED_VERSIONS`. Nothing else in ``app/``
touches a private name of another library (``tests/test_architecture.py`` checks it), and
``tests/app/test_compat.py`` fails when an installed version is outside its tested range.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import NamedTuple

from packaging.version import Version  # a dependency of Bokeh's

__all__ = ["PrivateUse", "TESTED_VERSIONS", "installed_version", "version_tested", "untested_versions"]

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
    """Whether ``installed`` (default: the installed version) lies in ``TESTED_VERSIONS[library]``."""
    installed = installed_version(library) if installed is None else installed
    if installed is None:
        return False
    low, high = TESTED_VERSIONS[library]
    release = Version(installed).release  # 3.9.0rc1 -> (3, 9, 0): a pre-release of a tested line counts
    return Version(low).release <= release < Version(high).release


def untested_versions() -> dict[str, str]:
    """``{library: installed version}`` for every library installed outside its tested range."""
    return {library: str(installed_version(library)) for library in TESTED_VERSIONS if not version_tested(library)}
