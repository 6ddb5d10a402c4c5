"""Entry point of ``panel serve app``: the only module with side effects.

Turns on float64 (``nbody_core.enable_float64()``: runs are float64 unless a student picks
float32) and JAX's persistent compilation cache (so a restarted server reuses compiled frame
functions; ``NBODY_JAX_CACHE_DIR``, bounded on disk to ``NBODY_JAX_CACHE_MAX_MB``, least
recently used entries evicted: ``nbody_explorer.runtime.compile_cache``), and serves one dashboard per
browser session, up to the session caps (``NBODY_MAX_SESSIONS``, ``nbody serve
--max-sessions``, and per client address; past them a browser gets a short "full" page).
Tabs other than the first are built when first opened.
"""

import jax

import nbody_core
from nbody_explorer.runtime.compile_cache import configure_compilation_cache

nbody_core.enable_float64()
configure_compilation_cache(jax.config)  # before anything compiles

from nbody_explorer.dashboard import serve_session  # noqa: E402  (after the cache is configured)

serve_session()
