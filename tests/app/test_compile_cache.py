"""The persistent compilation cache's bound (app/runtime/compile_cache.py, issue 26 item 6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nbody_explorer.runtime.compile_cache import (
    DEFAULT_CACHE_MAX_MB,
    cache_settings_from_environment,
    compilation_cache_bytes,
    prune_compilation_cache,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _entry(directory: Path, key: str, size: int, *, accessed_s_ago: float, atime_file: bool) -> Path:
    """A cache entry as JAX writes it: KEY-cache, and KEY-atime (ns, little-endian) when eviction is on."""
    path = directory / f"{key}-cache"
    path.write_bytes(b"x" * size)
    when = time.time() - accessed_s_ago
    if atime_file:
        (directory / f"{key}-atime").write_bytes(int(when * 1e9).to_bytes(8, "little"))
    else:
        os.utime(path, (when, when))
    return path


def test_pruning_removes_the_least_recently_used_entries_first(tmp_path):
    _entry(tmp_path, "oldest", 100, accessed_s_ago=300, atime_file=True)
    _entry(tmp_path, "legacy", 100, accessed_s_ago=200, atime_file=False)  # written with eviction off
    _entry(tmp_path, "recent", 100, accessed_s_ago=100, atime_file=True)
    _entry(tmp_path, "legacy-recent", 100, accessed_s_ago=50, atime_file=False)
    assert compilation_cache_bytes(tmp_path) == 400
    assert prune_compilation_cache(tmp_path, 250) == (2, 200)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "legacy-recent-atime", "legacy-recent-cache", "recent-atime", "recent-cache"]  # an atime file for JAX
    assert prune_compilation_cache(tmp_path, 250) == (0, 200)
    assert prune_compilation_cache(tmp_path / "missing", 1) == (0, 0)


def test_cache_settings_come_from_the_environment_with_the_variable_named_when_wrong(tmp_path):
    settings = cache_settings_from_environment({"NBODY_JAX_CACHE_DIR": str(tmp_path)})
    assert settings == (tmp_path, DEFAULT_CACHE_MAX_MB * 2**20)
    assert cache_settings_from_environment({"NBODY_JAX_CACHE_DIR": "", "NBODY_JAX_CACHE_MAX_MB": "64"}) == (None, 64 * 2**20)
    for bad in ("0", "-1", "1.5", "abc", "10000000"):
        with pytest.raises(ValueError, match="NBODY_JAX_CACHE_MAX_MB"):
            cache_settings_from_environment({"NBODY_JAX_CACHE_MAX_MB": bad})


_CHILD = """
import json, sys
import jax, jax.numpy as jnp
from nbody_explorer.runtime.compile_cache import configure_compilation_cache, compilation_cache_bytes
settings = configure_compilation_cache(jax.config)
pruned = sorted(p.name for p in settings.directory.glob("*-cache"))
for n in range(2, 8):  # a few real entries, each written through JAX's cache
    jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((n, n))).block_until_ready()
print(json.dumps({"max_size": jax.config.jax_compilation_cache_max_size, "after_start": pruned,
                  "after_compiles": sorted(p.name for p in settings.directory.glob("*-cache")),
                  "bytes": compilation_cache_bytes(settings.directory)}))
"""


def test_the_server_cache_is_bounded_at_start_and_jax_evicts_as_it_writes(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    for index, age in enumerate((400, 300, 200)):  # 3 x 512 KiB from an unbounded cache, oldest first
        _entry(cache, f"old{index}", 2**19, accessed_s_ago=age, atime_file=False)
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "NBODY_JAX_CACHE_DIR": str(cache), "NBODY_JAX_CACHE_MAX_MB": "1"}
    child = subprocess.run([sys.executable, "-c", _CHILD], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                           timeout=300)
    assert child.returncode == 0, child.stderr[-2000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report["max_size"] == 2**20
    assert report["after_start"] == ["old1-cache", "old2-cache"]  # pruned to 1 MiB, the oldest first
    real = [name for name in report["after_compiles"] if not name.startswith("old")]
    assert real and "old1-cache" not in report["after_compiles"]  # JAX evicted the least recent
    assert report["bytes"] <= 2**20
