"""The Simulate tab's body editor: drag bodies and velocity arrows while the run is paused.

``BodyEditor(simulate_view)`` owns the "Edit bodies" card (edit toggle, keep-centre-of-mass
checkbox, Undo / Redo / Remove body, the energy and momentum readout) and the scene's edit
messages. The scene is in edit mode while the toggle is on and the run is paused; each edit
is validated and applied by :class:`~nbody_explorer.state.edit_session.EditSession` (numpy only), the
edited state is drawn at once (:meth:`OrbitScene.show_edit`: the camera stays), and energy
and momenta are recomputed on the session's worker pool, never on the event loop.
"""

from __future__ import annotations

import html

import panel as pn
import param

from nbody_explorer.runtime.view import SessionView
from nbody_explorer.state.edit_session import EditSession, Readout

__all__ = ["BodyEditor", "EDIT_HELP"]

EDIT_HELP = (
    "Drag a body to move it (in the view's plane), drag the "
    "tip of its arrow to change its velocity (alt-drag a body to draw one from it), shift-click "
    "empty space to add a body (median mass, at rest in the centre-of-mass frame), click a body "
    "and press **Delete** or *Remove body*. **Ctrl+Z** / **Ctrl+Shift+Z** undo and redo; + marks the "
    "centre of mass. Play continues from the edited state; an edit restarts the conservation plots."
)

_READOUT_CSS = """
:host { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.95rem; }
.stale { color: #64748b; }
"""


class BodyEditor(SessionView):
    """Edit controls of one :class:`~nbody_explorer.views.simulate.SimulateView` (pass the view; on its
    session runner)."""

    editing = param.Boolean(False, doc="The scene is in edit mode (toggle on and paused).")

    def __init__(self, simulate, **params):
        super().__init__(runner=simulate.runner, **params)
        self.simulate = simulate
        self.scene = simulate.scene
        self.session = EditSession(simulate.state)
        self.last_readout: Readout | None = None
        self.edit_toggle = pn.widgets.Toggle(
            label="✎ Edit bodies", value=False, color="primary", width=130, height=38,
        )
        self.keep_com = pn.widgets.Checkbox.from_param(
            self.session.param.keep_center_of_mass, name="Keep centre-of-mass frame")
        self.undo_button = pn.widgets.Button(label="↶ Undo", width=80, disabled=True, description="Undo the last edit (Ctrl+Z)")
        self.redo_button = pn.widgets.Button(label="↷ Redo", width=80, disabled=True, description="Redo (Ctrl+Shift+Z)")
        self.remove_button = pn.widgets.Button(label="Remove body", color="danger", variant="outline", width=120,
                                               disabled=True, description="Remove the selected body (Delete)")
        self.readout = pn.pane.HTML("", name="simulate-edit-readout", stylesheets=[_READOUT_CSS],
                                    sizing_mode="stretch_width")
        self.help = pn.pane.Markdown(EDIT_HELP, sizing_mode="stretch_width", margin=(0, 10), visible=False)
        locked = self.runner.locked
        self.undo_button.on_click(locked(lambda _: self.undo()))
        self.redo_button.on_click(locked(lambda _: self.redo()))
        self.remove_button.on_click(locked(lambda _: self.remove_selected()))
        self.edit_toggle.param.watch(locked(self._update_mode), "value")
        simulate.param.watch(locked(self._update_mode), ["playing"])
        self.session.param.watch(self._update_buttons, ["can_undo", "can_redo"])
        self.scene.param.watch(self._update_buttons, ["selected", "editing"])
        self.session.param.watch(locked(self._on_keep_com), ["keep_center_of_mass"])
        self.scene.on_edit = locked(self.handle_message)

    def __panel__(self):
        # Rows that fit the 330 px sidebar's card (~300 px inside): the check box and the Remove
        # button were cut off at its right edge (issue 14, 1280 px screens).
        return pn.Column(
            pn.Row(self.edit_toggle, self.remove_button),
            pn.Row(self.undo_button, self.redo_button),
            self.keep_com,
            self.readout, self.help, sizing_mode="stretch_width",
        )

    # ------------------------------------------------------------------ mode
    def _update_mode(self, *_events) -> None:
        editing = bool(self.edit_toggle.value) and not self.simulate.playing
        self.editing = editing
        self.scene.editing = editing
        self.help.visible = editing  # the gestures, while they work
        if editing:
            self.request_readout()
        self._update_buttons()

    def _update_buttons(self, *_events) -> None:
        paused = not self.simulate.playing
        self.undo_button.disabled = not (paused and self.session.can_undo)
        self.redo_button.disabled = not (paused and self.session.can_redo)
        self.remove_button.disabled = not (self.scene.editing and 0 <= self.scene.selected < self._num_bodies())

    def _on_keep_com(self, *_events) -> None:
        self._show_readout_text()

    def _num_bodies(self) -> int:
        return self.simulate.state.body_count  # no JAX: the run may not be built yet

    def refresh(self) -> None:
        """After a reset or rebuild of the run: history cleared, selection dropped."""
        self.session.sync()
        self.scene.selected = -1
        self.last_readout = None
        if self.editing:
            self.request_readout()
        else:
            self.readout.object = ""
        self._update_buttons()

    # ------------------------------------------------------------------ edits
    def handle_message(self, message) -> bool:
        """An edit message from the scene (or a test): validate, apply, redraw.

        Args:
            message: ``{"action": "move" | "velocity" | "add" | "remove", "index": int,
                "vector": [x, y, z]}``, the vector in simulation units (length for move/add,
                length / time for velocity); see :func:`nbody_explorer.state.edits.validate_edit`.

        Returns:
            True when it was applied; a refused edit is explained in the tab's message box.
        """
        if not self.scene.editing:
            self.simulate.notify("Pause the run and turn on “Edit bodies” to edit.", level="info")
            return False
        before = self._num_bodies()
        try:
            self.session.apply(message)
        except ValueError as error:
            self.simulate.notify(f"Edit refused: {error}")
            # The page already shows the drag: send the unchanged state back so it snaps back.
            state = self.simulate.state
            self.scene.show_edit(state.position, state.mass, velocity=state.velocity, time=state.time)
            return False
        action = message.get("action") if isinstance(message, dict) else None
        selected = self.scene.selected
        if action == "add":
            selected = before  # the new body, ready for its arrow
        elif action == "remove":
            selected = -1
        self._show_edited(selected)
        return True

    def remove_selected(self) -> bool:
        """Remove the selected body (the Remove button and the Delete key)."""
        index = self.scene.selected
        if not self.scene.editing:
            self.simulate.notify("Pause the run and turn on “Edit bodies” to remove a body.", level="info")
            return False
        if not 0 <= index < self._num_bodies():
            self.simulate.notify("Click a body to select it, then remove it.", level="info")
            return False
        return self.handle_message({"action": "remove", "index": index})

    def undo(self) -> bool:
        """Undo the last edit (the Undo button and Ctrl+Z); False, explained, when refused."""
        return self._step_history(self.session.undo)

    def redo(self) -> bool:
        """Redo the last undone edit (Redo and Ctrl+Shift+Z); False, explained, when refused."""
        return self._step_history(self.session.redo)

    def _step_history(self, move) -> bool:
        if self.simulate.playing:
            self.simulate.notify("Pause the run to undo or redo edits.", level="info")
            return False
        try:
            move()
        except ValueError as error:
            self.simulate.notify(str(error).capitalize() + ".", level="info")
            return False
        selected = self.scene.selected
        self._show_edited(selected if selected < self._num_bodies() else -1)
        return True

    def _show_edited(self, selected: int) -> None:
        """Draw the edited state (camera kept), restart the plots from it, recompute the
        readout on the worker and prepare the run (a new N compiles there too)."""
        view, state = self.simulate, self.simulate.state
        view.clear_message()
        with view.batch():
            self.scene.show_edit(state.position, state.mass, velocity=state.velocity, time=state.time)
            view.shown(state.generation)  # drawn here: once prepared, not redrawn (keeps the selection)
            self.scene.selected = selected
            view.plots.replace(state.history)
            state.take_new_history()
            view.update_status(force=True)
        self._update_buttons()
        self.request_readout()
        view.ensure_ready()

    # ------------------------------------------------------------------ readout
    def request_readout(self) -> None:
        """Recompute energy and momenta of the current state on the worker pool."""
        self.cancel_job("readout")  # an older state's readout is not wanted any more
        self._show_readout_text(stale=True)

        def done(readout: Readout) -> None:
            if readout.generation == self.simulate.state.generation:
                self.last_readout = readout
                self._show_readout_text()

        def failed(error: BaseException) -> None:
            self.readout.object = f"Energy could not be computed: {html.escape(str(error))}"

        self.run_job("readout", lambda job: self.session.readout(), done=done, failed=failed, report_position=False)

    def _show_readout_text(self, stale: bool = False) -> None:
        readout = self.last_readout
        if readout is None:
            self.readout.object = '<span class="stale">computing energy and momentum…</span>'
            return
        frame = " (centre-of-mass frame kept)" if self.session.keep_center_of_mass else ""
        css = ' class="stale"' if stale else ""
        self.readout.object = f"<span{css}>{html.escape(readout.text())}{frame}</span>"
