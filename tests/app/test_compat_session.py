"""The Bokeh server internals of the session runtime, on real Bokeh objects (app/compat/session.py)."""

from __future__ import annotations

from types import SimpleNamespace

import bokeh.io.doc
import pytest
from bokeh.document import Document
from bokeh.io.doc import curdoc, patch_curdoc
from bokeh.server.connection import ServerConnection
from bokeh.server.session import ServerSession

from nbody_explorer.compat import TESTED_VERSIONS, PrivateUse
from nbody_explorer.compat.session import PRIVATE_USES, forget_curdoc_patch, set_websocket_nodelay


class _Socket:
    def __init__(self, *, fail: bool = False):
        self.nodelay, self.fail = None, fail

    def set_nodelay(self, value: bool) -> None:
        if self.fail:
            raise OSError("closed")  # what a socket closed meanwhile does
        self.nodelay = value


def _served(*sockets):
    """A document whose session context holds a real Bokeh ServerSession with a real
    ServerConnection per socket (the websocket handler replaced by ``_Socket``)."""
    doc = Document()
    session = ServerSession("compat-test", doc)
    for socket in sockets:
        ServerConnection(protocol=None, socket=socket, application_context=None, session=session)
    context = SimpleNamespace(session=session)
    doc._session_context = lambda: context
    return doc, session


def test_every_private_use_is_documented():
    assert PRIVATE_USES and all(isinstance(use, PrivateUse) for use in PRIVATE_USES)
    for use in PRIVATE_USES:
        assert use.library in TESTED_VERSIONS and use.name and use.buys and use.fallback


def test_nodelay_is_set_on_every_websocket_of_the_session():
    good, closed = _Socket(), _Socket(fail=True)
    doc, session = _served(good, closed)
    assert session.connection_count == 2
    assert set_websocket_nodelay(doc, tested=True)
    assert good.nodelay is True  # the closed one was skipped, not fatal


def test_nodelay_falls_back_to_nothing():
    socket = _Socket()
    doc, _session = _served(socket)
    assert not set_websocket_nodelay(doc, tested=False)  # outside the tested Bokeh range
    assert socket.nodelay is None
    assert not set_websocket_nodelay(_served()[0], tested=True)  # no connection yet (page loading)
    assert not set_websocket_nodelay(Document(), tested=True)  # not served
    assert not set_websocket_nodelay(_served(_Socket(fail=True))[0], tested=True)


def _leak(doc) -> None:
    """What Bokeh does when a callback is scheduled on a document destroyed meanwhile: the
    call raises inside ``patch_curdoc``, which then never pops its entry."""
    with pytest.raises(AttributeError):
        with patch_curdoc(doc):
            raise AttributeError("_change_callbacks")


def test_a_leaked_curdoc_patch_is_taken_off():
    before = curdoc()
    destroyed = Document()
    _leak(destroyed)
    assert curdoc() is destroyed  # the leak this guards against
    assert forget_curdoc_patch(destroyed, tested=True)
    assert curdoc() is before and not forget_curdoc_patch(destroyed, tested=True)


def test_only_the_failed_documents_patch_is_taken_off():
    destroyed, other = Document(), Document()
    depth = len(bokeh.io.doc._PATCHED_CURDOCS)
    _leak(destroyed)
    with patch_curdoc(other):  # another thread's callback, running meanwhile
        assert forget_curdoc_patch(destroyed, tested=True)
        assert curdoc() is other
    assert len(bokeh.io.doc._PATCHED_CURDOCS) == depth


def test_a_leaked_curdoc_patch_stays_outside_the_tested_range():
    destroyed = Document()
    _leak(destroyed)
    try:
        assert not forget_curdoc_patch(destroyed, tested=False)
        assert curdoc() is destroyed
    finally:
        assert forget_curdoc_patch(destroyed, tested=True)
