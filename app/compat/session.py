"""The Bokeh server internals the session runtime relies on, each behind a public function.

Contract: ``app/runtime/`` reaches Bokeh's server objects only through these functions; every
private name they read is listed in :data:`PRIVATE_USES`, and outside the tested Bokeh range
(:func:`nbody_explorer.compat.version_tested`) each function takes its public fallback instead.

What the runtime needed and found public (so it is not here): whether a document is destroyed
(``Document.session_context`` is None: Bokeh and Panel clear it before taking the document
apart), the server session and its connection count (``session_context.session``,
``ServerSession.connection_count`` / ``destroyed``), Bokeh's current document
(``curstate().document``) and ``pn.state.on_session_destroyed``.
"""

from __future__ import annotations

from functools import cache

import bokeh.io.doc

from nbody_explorer.compat import PrivateUse, version_tested

__all__ = ["PRIVATE_USES", "forget_curdoc_patch", "set_websocket_nodelay"]

#: The private names of this module, what each buys and what happens without it.
PRIVATE_USES = (
    PrivateUse(
        library="bokeh",
        name="ServerSession._subscribed_connections, ServerConnection._socket",
        buys=(
            "TCP_NODELAY on a session's websocket: Bokeh writes one message as several websocket "
            "frames, and with Nagle's algorithm on the later ones wait for the delayed TCP "
            "acknowledgement of the first (~40 ms); measured ~85 ms from sending a frame to its "
            "acknowledgement, capping a Simulate session at ~11 frames/s with the server idle"
        ),
        fallback="Nagle's algorithm stays on: the live view runs at ~11 frames/s per session",
    ),
    PrivateUse(
        library="bokeh",
        name="bokeh.io.doc._PATCHED_CURDOCS",
        buys=(
            "a callback scheduled on a document Bokeh destroyed meanwhile raises inside Bokeh's "
            "patch_curdoc, which has no try/finally: the destroyed document stayed on the "
            "process-wide stack that curdoc() reads first (every thread then got it, and a "
            "RuntimeError once it was collected); its entry is taken off again"
        ),
        fallback="the stale entry stays (as before this was found): curdoc() outside a session callback is wrong",
    ),
)


def set_websocket_nodelay(doc, *, tested: bool | None = None) -> bool:
    """Turn Nagle's algorithm off on the websocket(s) of ``doc``'s server session.

    Args:
        doc: a served session's document (anything else: nothing to tune).
        tested: whether the installed Bokeh is in its tested range
            (default: :func:`nbody_explorer.compat.version_tested`, read once); False takes the fallback.

    Returns:
        True when it was set on at least one connection; False when there is none yet (page
        still loading), a socket closed meanwhile, or outside the tested range.
    """
    if not (_bokeh_tested() if tested is None else tested):
        return False
    session = getattr(getattr(doc, "session_context", None), "session", None)
    try:
        connections = list(session._subscribed_connections)
    except (AttributeError, TypeError):  # no session yet (page loading), or not Bokeh's
        return False
    done = False
    for connection in connections:
        try:
            connection._socket.set_nodelay(True)
        except Exception:  # noqa: BLE001 - closed meanwhile, or not a TCP socket: nothing to tune
            continue
        done = True
    return done


def forget_curdoc_patch(doc, *, tested: bool | None = None) -> bool:
    """Take ``doc`` off Bokeh's stack of patched current documents, where a Bokeh call that
    raised inside ``patch_curdoc(doc)`` left it (the most recent entry for ``doc`` only;
    entries of other documents, pushed by other threads meanwhile, stay).

    Args:
        doc: the document a failed Bokeh call was made on.
        tested: whether the installed Bokeh is in its tested range
            (default: :func:`nbody_explorer.compat.version_tested`, read once); False takes the fallback.

    Returns:
        True when an entry for ``doc`` was found and removed; False when there was none, or
        outside the tested range.
    """
    if not (_bokeh_tested() if tested is None else tested):
        return False
    stack = bokeh.io.doc._PATCHED_CURDOCS
    for index in range(len(stack) - 1, -1, -1):
        if stack[index]() is doc:
            del stack[index]
            return True
    return False


@cache
def _bokeh_tested() -> bool:
    # Read once: the installed version does not change while the server runs, and reading the
    # package metadata costs ~1.7 ms (measured), too much to repeat on the frame path.
    return version_tested("bokeh")
