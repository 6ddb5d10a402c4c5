"""Entry point of ``panel serve app``: the only module with side effects.

Turns on JAX's persistent compilation cache (so a restarted server reuses compiled frame
functions, capped on disk) and serves one dashboard per browser session, up to the session
cap (``NBODY_MAX_SESSIONS``, ``nbody serve --max-sessions``; past it a browser gets a short
"full" page). Tabs other than the first are built when first opened.
"""

import os
from pathlib import Path

import jax

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

import panel as pn  # noqa: E402

from app.dashboard import build_dashboard, session_count_readout, session_full_page  # noqa: E402
from app.limits import max_sessions_from_environment  # noqa: E402
from app.reliability import (  # noqa: E402
    SESSIONS,
    install_query_guard,
    install_session_guards,
    oversized_query_values,
    plain_markdown,
)

install_query_guard()  # a 4301-digit query value must not blank the page
_CAP = max_sessions_from_environment()
_context = pn.state.curdoc.session_context if pn.state.curdoc is not None else None
_session_id = getattr(_context, "id", None) or str(id(pn.state.curdoc))

if not SESSIONS.admit(_session_id, _CAP):
    session_full_page(SESSIONS.live, _CAP).servable(title="N-body Explorer")
else:
    if _context is not None:
        pn.state.on_session_destroyed(lambda _ctx, sid=_session_id: SESSIONS.release(sid))
    dashboard = build_dashboard()
    message_box = install_session_guards(dashboard)  # a widget callback's exception becomes a message
    dashboard.header.append(session_count_readout(lambda: SESSIONS.live, _CAP))
    _arguments = getattr(getattr(_context, "request", None), "arguments", None) or {}
    _dropped = [key for key, values in _arguments.items() if oversized_query_values(values)]
    if _dropped:
        message_box.object = plain_markdown(
            "Ignored link values with more digits than a number may have (4300): " + ", ".join(map(str, _dropped))
        )
        message_box.visible = True
    dashboard.servable(title="N-body Explorer")
