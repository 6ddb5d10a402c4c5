"""Entry point of ``panel serve app``: the only module with side effects.

Turns on float64 (``nbody_core.enable_float64()``: runs are float64 unless a student picks
float32) and JAX's persistent compilation cache (so a restarted server reuses compiled frame
functions, capped on disk), and serves one dashboard per browser session, up to the session
cap (``NBODY_MAX_SESSIONS``, ``nbody serve --max-sessions``; past it a browser gets a short
"full" page). Tabs other than the first are built when first opened.
"""

import os
from pathlib import Path

import jax

import nbody_core

nbody_core.enable_float64()

_CACHE_DIR = os.environ.get(
    "NBODY_JAX_CACHE_DIR", str(Path.home() / ".cache" / "nbody-explorer" / "jax")
)
if _CACHE_DIR:
    try:
        Path(_CACHE_DIR).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", _CACHE_DIR)
        # Cache every compiled frame function: they are small and compile in under a second.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    except OSError:
        pass  # read-only home (some containers): run without the persistent cache

from app.dashboard import serve_session  # noqa: E402  (after the cache is configured)

serve_session()
