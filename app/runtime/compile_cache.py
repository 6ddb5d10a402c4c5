"""JAX's persistent compilation cache for the server: where it lives, and its bound on disk.

Contract: :func:`configure_compilation_cache` points JAX at the cache directory
(``NBODY_JAX_CACHE_DIR``; empty turns it off) with a size bound (``NBODY_JAX_CACHE_MAX_MB``,
default :data:`DEFAULT_CACHE_MAX_MB`), first pruning the least recently used entries past the
bound (:func:`prune_compilation_cache`). While the server runs, JAX's own LRU eviction
(``jax_compilation_cache_max_size``, which needs the ``filelock`` package) keeps the bound;
without ``filelock`` the bound is applied at start and whenever the last session closes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping, NamedTuple

__all__ = [
    "CacheSettings",
    "DEFAULT_CACHE_DIR",
    "DEFAULT_CACHE_MAX_MB",
    "cache_settings_from_environment",
    "compilation_cache_bytes",
    "configure_compilation_cache",
    "prune_compilation_cache",
    "prune_configured_cache",
]

_LOG = logging.getLogger(__name__)

#: Where compiled frame functions are kept across restarts unless NBODY_JAX_CACHE_DIR says.
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "nbody-explorer" / "jax"
#: Default bound of the cache on disk, MiB: every preset x integrator x precision of the Simulate
#: tab writes 3.9 MiB in 450 entries (benchmarks/results/compile_cache.md), so this leaves room
#: for ~65 times that (other N, force methods, the other tabs) and is small on any disk.
DEFAULT_CACHE_MAX_MB = 256
_CACHE_MAX_MB_CEILING = 1_000_000
# JAX's file names (jax._src.lru_cache): an entry is KEY-cache, its last access KEY-atime
# (8 bytes, nanoseconds since the epoch, little-endian; written only with eviction on).
_CACHE_SUFFIX, _ATIME_SUFFIX = "-cache", "-atime"
#: What :func:`configure_compilation_cache` applied in this process (None before).
_applied: CacheSettings | None = None


class CacheSettings(NamedTuple):
    """Attributes:
        directory: the cache directory, or None when the cache is off.
        max_bytes: the bound on the entries' total size, bytes.
    """

    directory: Path | None
    max_bytes: int


def cache_settings_from_environment(environ: Mapping[str, str] | None = None) -> CacheSettings:
    """``NBODY_JAX_CACHE_DIR`` (empty: no cache; unset: :data:`DEFAULT_CACHE_DIR`) and
    ``NBODY_JAX_CACHE_MAX_MB`` (a whole number of MiB, at least 1; unset: :data:`DEFAULT_CACHE_MAX_MB`).

    Raises:
        ValueError: naming the variable, if ``NBODY_JAX_CACHE_MAX_MB`` is not a whole number
            in [1, 1 000 000].
    """
    environ = os.environ if environ is None else environ
    directory = environ.get("NBODY_JAX_CACHE_DIR", str(DEFAULT_CACHE_DIR))
    text = environ.get("NBODY_JAX_CACHE_MAX_MB", "").strip()
    max_mb = DEFAULT_CACHE_MAX_MB
    if text:
        cleaned = text.replace("_", "")
        if not cleaned.isdigit() or not 1 <= int(cleaned) <= _CACHE_MAX_MB_CEILING:
            raise ValueError(
                f"environment variable NBODY_JAX_CACHE_MAX_MB={text!r} must be a whole number of MiB "
                f"in [1, {_CACHE_MAX_MB_CEILING}]"
            )
        max_mb = int(cleaned)
    return CacheSettings(Path(directory) if directory else None, max_mb * 2**20)


def _entries(directory: Path) -> list[tuple[int, Path, int]]:
    """``(last access ns, entry path, size)`` of every entry."""
    entries = []
    for path in directory.glob(f"*{_CACHE_SUFFIX}"):
        try:
            size = path.stat().st_size
            atime_path = path.with_name(path.name[: -len(_CACHE_SUFFIX)] + _ATIME_SUFFIX)
            try:
                accessed = int.from_bytes(atime_path.read_bytes(), "little")
            except OSError:  # written with eviction off: its modification time, and an atime file now
                accessed = path.stat().st_mtime_ns
                atime_path.write_bytes(accessed.to_bytes(8, "little"))  # JAX's eviction reads it
        except OSError:
            continue  # removed meanwhile (another process evicting)
        entries.append((accessed, path, size))
    return entries


def compilation_cache_bytes(directory: str | os.PathLike) -> int:
    """Total size of the cache's entries, bytes (0 for a missing directory)."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    return sum(path.stat().st_size for path in directory.glob(f"*{_CACHE_SUFFIX}") if path.is_file())


def prune_compilation_cache(directory: str | os.PathLike, max_bytes: int) -> tuple[int, int]:
    """Remove the least recently used entries until their total size is at most ``max_bytes``.

    Entries JAX wrote with eviction off (no ``-atime`` file) are dated by their modification
    time and get an ``-atime`` file, so JAX's own eviction can read them later.

    Returns:
        ``(entries removed, bytes left)``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return 0, 0
    entries = sorted(_entries(directory))
    total = sum(size for _, _, size in entries)
    removed = 0
    for _, path, size in entries:
        if total <= max_bytes:
            break
        for victim in (path, path.with_name(path.name[: -len(_CACHE_SUFFIX)] + _ATIME_SUFFIX)):
            try:
                victim.unlink()
            except FileNotFoundError:
                pass
        total -= size
        removed += 1
    return removed, total


def _jax_can_evict() -> bool:
    try:
        import filelock  # noqa: F401 - JAX's LRU eviction locks the directory with it
    except ImportError:
        return False
    return True


def configure_compilation_cache(config, environ: Mapping[str, str] | None = None) -> CacheSettings:
    """Turn on JAX's persistent compilation cache within its bound (call before compiling).

    Every compiled function is cached (frame functions are small and compile in under a
    second). The entries past the bound are pruned first; JAX then evicts as it writes when
    ``filelock`` is installed. A directory that cannot be created (read-only home in some
    containers) leaves the cache off.

    Args:
        config: ``jax.config`` (passed in: the runtime layer does not import JAX).
        environ: the variables to read (``os.environ`` by default).

    Returns:
        The settings applied (``directory`` None when the cache is off).

    Raises:
        ValueError: a malformed ``NBODY_JAX_CACHE_MAX_MB`` (the server fails at start).
    """
    settings = cache_settings_from_environment(environ)
    if settings.directory is None:
        return settings
    try:
        settings.directory.mkdir(parents=True, exist_ok=True)
        removed, left = prune_compilation_cache(settings.directory, settings.max_bytes)
    except OSError:
        return CacheSettings(None, settings.max_bytes)  # read-only home: run without the cache
    if removed:
        _LOG.info("compilation cache: removed %d least recently used entries (%.1f MiB left)", removed, left / 2**20)
    config.update("jax_compilation_cache_dir", str(settings.directory))
    config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    if _jax_can_evict():
        config.update("jax_compilation_cache_max_size", settings.max_bytes)
    else:
        _LOG.info("compilation cache: no filelock package, so bounded at start and when the last session closes")
    global _applied
    _applied = settings
    return settings


def prune_configured_cache() -> tuple[int, int]:
    """:func:`prune_compilation_cache` on the cache this process configured (``(0, 0)`` when
    none): the bound without ``filelock``, applied when the last session closes."""
    if _applied is None or _applied.directory is None:
        return 0, 0
    try:
        return prune_compilation_cache(_applied.directory, _applied.max_bytes)
    except OSError:
        return 0, 0
