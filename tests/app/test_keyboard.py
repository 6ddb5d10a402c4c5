"""Keyboard shortcut actions on the Simulate view (app logic; the browser test presses keys)."""

from nbody_explorer.components.keyboard import CTRL_KEYMAP, KEYMAP
from nbody_explorer.views.simulate import SimulateView


def test_shortcut_actions():
    view = SimulateView(sync_url=False)
    keys = view.keys
    keys.listener._handle_msg({"action": "step"})
    assert view.state.time > 0
    keys.act("reset")
    assert view.state.time == 0
    rate = view.state.frame_rate
    keys.act("faster")
    assert view.state.frame_rate == min(rate + 5, 60)
    keys.act("slower")
    assert view.state.frame_rate == rate
    trails = view.state.trails
    keys.act("trails")
    assert view.state.trails is (not trails)
    keys.act("help")
    assert keys.help.visible and keys.help.styles["position"] == "fixed"  # over the page, never pushing the scene
    keys.act("close")
    assert not keys.help.visible
    keys.act("play")
    assert view.playing
    keys.act("play")
    assert not view.playing


def test_unknown_messages_are_ignored():
    view = SimulateView(sync_url=False)
    view.keys.listener._handle_msg({"action": "__del__"})
    view.keys.listener._handle_msg("reset")
    assert view.keys.listener.last_action == ""
    assert set(KEYMAP.values()) == {"play", "step", "reset", "faster", "slower", "trails", "help", "close", "remove"}
    assert set(CTRL_KEYMAP.values()) == {"undo", "redo"}
