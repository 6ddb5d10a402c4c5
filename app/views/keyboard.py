"""Keyboard shortcuts and their help dialog for the Simulate view (space play/pause,
→ step, R reset, +/− speed, T trails, ? help; while editing bodies: Delete, Ctrl+Z, Ctrl+Shift+Z)."""

from __future__ import annotations

import panel as pn

from nbody_explorer.compat.alert import DialogBox
from nbody_explorer.components.keyboard import KeyboardShortcuts

__all__ = ["HELP_TEXT", "SimulateKeys"]

HELP_TEXT = """**Keyboard shortcuts** (press **?** again or **Esc** to close)

| Key | Does |
|---|---|
| Space | play / pause |
| → | one step (while paused) |
| R | reset the run to its start |
| + / − | faster / slower (frames per second) |
| T | trails on / off |
| Delete | remove the selected body (paused, *Edit bodies* on) |
| Ctrl+Z / Ctrl+Shift+Z | undo / redo an edit of the bodies (paused) |
| ? | this help |

While paused with *Edit bodies* on: drag a body to move it, drag its arrow tip to change its
velocity, shift-click empty space to add a body.
"""

#: The help dialog floats over the middle of the page, above everything, with a shadow.
DIALOG_STYLES = {"position": "fixed", "top": "12vh", "left": "calc(50vw - 280px)", "z-index": "2000",
                 "font-size": "1.2em", "box-shadow": "0 8px 32px rgba(0, 0, 0, 0.45)", "max-height": "76vh",
                 "overflow": "auto"}

SPEED_STEP = 5  # frames per second added or taken by + / -


class SimulateKeys(pn.viewable.Viewer):
    """``SimulateKeys(simulate_view)``: the shortcut listener and the help overlay."""

    def __init__(self, simulate, **params):
        super().__init__(**params)
        self.simulate = simulate
        # A dialog floating over the page (fixed position, closed by ? or Esc), not a box
        # inserted above the scene: that pushed the scene off a projector's screen (issue 28).
        self.help = DialogBox(HELP_TEXT, label="Keyboard shortcuts", alert_type="info", visible=False,
                              name="keyboard-help", sizing_mode="fixed", width=560, styles=DIALOG_STYLES)
        self.listener = KeyboardShortcuts(on_action=simulate.runner.locked(self.act))

    def __panel__(self):
        return pn.Column(self.listener, self.help, sizing_mode="stretch_width")

    def act(self, action: str) -> None:
        """Do one shortcut's action (also callable from tests)."""
        view, state = self.simulate, self.simulate.state
        if action == "play":
            view.playing = not view.playing
        elif action == "step":
            if not view.playing:
                view.step()
        elif action == "reset":
            view.reset()
        elif action in ("faster", "slower"):
            bounds = state.param.frame_rate.bounds
            change = SPEED_STEP if action == "faster" else -SPEED_STEP
            state.frame_rate = min(max(state.frame_rate + change, bounds[0]), bounds[1])
        elif action == "trails":
            state.trails = not state.trails
        elif action == "help":
            self.help.visible = not self.help.visible
        elif action == "close":
            self.help.visible = False
        elif action in ("remove", "undo", "redo"):
            editor = getattr(view, "editor", None)  # app/views/body_editor.py
            if editor is None or view.playing:
                return
            if action == "remove":
                if editor.editing:
                    editor.remove_selected()
            elif action == "undo":
                if editor.session.can_undo:  # a stray Ctrl+Z with nothing to undo says nothing
                    editor.undo()
            elif editor.session.can_redo:
                editor.redo()
