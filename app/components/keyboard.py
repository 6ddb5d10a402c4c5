"""Keyboard shortcuts for a view: a tiny ``JSComponent`` that listens on ``document`` keydown
and sends the action to Python. Keys typed into inputs, selects, text areas and editable
elements are ignored (so typing "r" in a number box never resets), and so are keys with
Ctrl/Alt/Meta except the few in :data:`CTRL_KEYMAP` (Ctrl or Cmd + Z: undo, + Shift: redo). Only a component that is shown on the page answers (a view in a hidden tab
does not), so two views with shortcuts in one page do not both act.
"""

from __future__ import annotations

import json
from typing import Callable

import param
from panel.custom import JSComponent

__all__ = ["CTRL_KEYMAP", "KEYMAP", "KeyboardShortcuts"]

#: key (``KeyboardEvent.key``) -> action sent to Python.
KEYMAP = {
    " ": "play", "ArrowRight": "step", "r": "reset", "R": "reset", "+": "faster", "=": "faster",
    "-": "slower", "_": "slower", "t": "trails", "T": "trails", "?": "help", "Escape": "close",
    "Delete": "remove",
}
#: key with Ctrl (or Cmd) held -> action (Shift makes the key upper case: Ctrl+Shift+Z is "Z").
CTRL_KEYMAP = {"z": "undo", "Z": "redo", "y": "redo"}

_ESM = """
const KEYMAP = %s;
const CTRL_KEYMAP = %s;
const TYPING = ["INPUT", "TEXTAREA", "SELECT"];
export function render({ model, el }) {
  el.style.cssText = "width:1px;height:1px;overflow:hidden;";
  const handler = (event) => {
    if (event.altKey || event.defaultPrevented) return;
    const ctrl = event.ctrlKey || event.metaKey;
    // Only a component on screen answers (the active tab's).
    if (!el.isConnected || el.getClientRects().length === 0) return;
    const target = event.composedPath ? event.composedPath()[0] : event.target;
    if (target && (target.isContentEditable || TYPING.includes(target.tagName))) return;
    // Space or Enter on a focused button presses that button: leave it alone.
    if (target && target.tagName === "BUTTON" && (event.key === " " || event.key === "Enter")) return;
    const action = ctrl ? CTRL_KEYMAP[event.key] : KEYMAP[event.key];
    if (!action) return;
    event.preventDefault();
    model.send_msg({ action: action });
  };
  document.addEventListener("keydown", handler);
  model.on("remove", () => document.removeEventListener("keydown", handler));
}
"""


class KeyboardShortcuts(JSComponent):
    """Sends ``{"action": name}`` for each shortcut; ``on_action(name)`` is called with it."""

    last_action = param.String(default="", doc="The most recent action received (for tests).")

    _esm = _ESM % (json.dumps(KEYMAP), json.dumps(CTRL_KEYMAP))

    def __init__(self, on_action: Callable[[str], None] | None = None, **params):
        super().__init__(**params)
        self._on_action = on_action

    def _handle_msg(self, data) -> None:
        action = data.get("action") if isinstance(data, dict) else None
        if action not in {*KEYMAP.values(), *CTRL_KEYMAP.values()}:
            return  # only the known actions: a page cannot make Python call anything else
        self.last_action = action
        if self._on_action is not None:
            self._on_action(action)
