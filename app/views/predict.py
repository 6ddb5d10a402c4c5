"""Predict, then reveal, on the Simulate tab's live scene (thin view over app/state/predict.py).

``PredictPanel(simulate_view)``: a Predict toggle (pauses the run; a 3D view switches to the
x-y projection), the body and the horizon Δt, Reveal, Clear and Continue. Clicks on a
projection arrive as ``guess`` messages from the scene (``OrbitScene.on_guess``); the guesses
and, after a reveal, the true path are drawn by the scene from ``OrbitScene.predict_marks``.
The reveal runs a copy of the paused state forward on the session runner's worker pool (never
the event loop); the live run is not advanced unless Continue is pressed. Each session has its
own :class:`~nbody_explorer.state.predict.PredictState`. A shared link may choose the body and horizon
(``?predict_body=1&predict_dt=2``): the lecturer's default for every student who opens it.
"""

from __future__ import annotations

import html

import panel as pn

from nbody_explorer.runtime.messages import escape_markdown
from nbody_explorer.runtime.view import SessionView
from nbody_explorer.state.predict import PredictState, check_reveal, unit_words
from nbody_explorer.state.simulate import STATIC_SETTINGS
from nbody_explorer.state.validation import Refused, checked_value

__all__ = ["PredictPanel", "LINK_KEYS"]

#: URL keys a lecturer's link may set: the body to predict and the horizon (time units).
LINK_KEYS = ("predict_body", "predict_dt")

_TABLE_CSS = """
table { border-collapse: collapse; font-size: 0.95rem; }
td { padding: 1px 10px 1px 0; }
.closest { color: #007a5a; font-weight: 700; }
"""


class PredictPanel(SessionView):
    """``PredictPanel(simulate_view)``: the predict-then-reveal controls of one session (on the
    Simulate view's session runner; its messages go to the Simulate view's box)."""

    def __init__(self, simulate, **params):
        super().__init__(runner=simulate.runner, **params)
        self.simulate = simulate
        self.scene = simulate.scene
        self.game = PredictState()
        self.toggle = pn.widgets.Toggle(label="Predict", color="primary", width=100, height=38)
        self.body_input = pn.widgets.IntInput(label="Body", value=0, start=0, end=max(0, self._num_bodies() - 1),
                                              width=90, description="Which body (ringed in the scene)")
        self.horizon_input = pn.widgets.FloatInput(label=self._horizon_label(), value=1.0, start=1e-6, step=0.5,
                                                   width=170)
        self.reveal_button = pn.widgets.Button(label="Reveal", color="success", width=90, height=38, disabled=True)
        self.clear_button = pn.widgets.Button(label="Clear guesses", color="primary", variant="outline",
                                              width=120, height=38, disabled=True)
        self.continue_button = pn.widgets.Button(
            label="Continue from the answer", color="warning", variant="outline", width=200, height=38,
            visible=False, description="Move the live run on to the revealed moment (otherwise it stays paused where it was)")
        self.summary = pn.pane.Markdown("", name="predict-summary", sizing_mode="stretch_width", margin=(0, 10))
        self.table = pn.pane.HTML("", name="predict-result", stylesheets=[_TABLE_CSS], margin=(0, 10))
        self._apply_link()
        self.toggle.param.watch(self.runner.locked(self._on_toggle), "value")
        self.body_input.param.watch(self.runner.locked(self._on_body), "value")
        self.horizon_input.param.watch(self.runner.locked(self._on_horizon), "value")
        self.reveal_button.on_click(self.runner.locked(lambda _: self.reveal()))
        self.clear_button.on_click(self.runner.locked(lambda _: self.clear()))
        self.continue_button.on_click(self.runner.locked(lambda _: self.continue_run()))
        self.scene.on_guess = self.runner.locked(self.add_guess)
        simulate.param.watch(self.runner.locked(self._on_playing), "playing")
        simulate.state.param.watch(self.runner.locked(self._on_rebuilt), list(STATIC_SETTINGS))
        self._layout = pn.Column(
            pn.Row(self.toggle, self.body_input, self.horizon_input, self.reveal_button, self.clear_button,
                   self.continue_button, sizing_mode="stretch_width"),
            pn.Row(self.summary, self.table, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
        self._refresh()

    def __panel__(self):
        return self._layout

    # ------------------------------------------------------------------ helpers
    def _num_bodies(self) -> int:
        return self.simulate.state.body_count  # no JAX: the run may not be built yet

    def _units(self) -> str:
        return self.simulate.state.units

    def _horizon_label(self) -> str:
        return f"after Δt ({unit_words(self._units())[0]})"

    def _apply_link(self) -> None:
        """A shared link's ``predict_body`` / ``predict_dt``: the lecturer's defaults."""
        if not self.runner.served:
            return
        args = {key: values[-1] for key, values in (pn.state.session_args or {}).items() if values}
        refused = []
        for key in LINK_KEYS:
            if key not in args:
                continue
            raw = args[key].decode("utf-8", "replace") if isinstance(args[key], bytes) else str(args[key])
            try:
                if key == "predict_body":
                    self.game.body = self.body_input.value = self._checked_body(raw)
                else:
                    self.game.horizon = self.horizon_input.value = self._checked_horizon(raw)
            except Refused as error:
                refused.append(f"{key}={raw[:40]}: {error}")
        if refused:
            self.simulate.notify("Ignored invalid link settings (kept defaults): " + "; ".join(refused))

    def _checked_body(self, raw):
        """The one validation boundary (app/state/validation.py) for the Body field and link key."""
        return checked_value(self.game.param.body, raw, label="Body", kept=self.game.body,
                             high=self._num_bodies() - 1)

    def _checked_horizon(self, raw):
        label = self._horizon_label()  # "after Δt (time units)", the field's label
        return checked_value(self.game.param.horizon, raw, label=label[:1].upper() + label[1:], kept=self.game.horizon)

    def _refuse(self, widget, error: Refused, kept) -> None:
        """Say why in the tab's message box and show the kept value again in the field."""
        self.simulate.notify(str(error))
        widget.value = kept

    def _moment(self) -> None:
        """Tie the guesses to the run's current moment (a step or a new run clears them)."""
        state = self.simulate.state
        if self.game.anchor(state.generation, state.time, self._num_bodies()):
            self.continue_button.visible = False

    # ------------------------------------------------------------------ actions
    def _on_toggle(self, event) -> None:
        if event.new:
            self.simulate.playing = False  # guesses are about the paused moment
            if self.scene.view not in ("xy", "xz", "yz", "quad"):
                state = self.simulate.state
                plane = state.projection if state.projection in ("xy", "xz", "yz") else "xy"
                state.projection = plane  # guesses are clicked in a plane (the widget and link follow)
                self.scene.view = plane
            self.game.active = True
            self.game.body = min(int(self.body_input.value or 0), self._num_bodies() - 1)
            self._moment()
        else:
            self.game.active = False
            self.game.clear()
            self.continue_button.visible = False
        self._refresh()

    def _on_playing(self, event) -> None:
        if event.new and self.toggle.value:
            self.toggle.value = False  # Play ends the round (the watcher clears the marks)

    def _on_rebuilt(self, *events) -> None:
        self.body_input.end = max(0, self._num_bodies() - 1)
        if self.body_input.value > self.body_input.end:
            self.body_input.value = 0
        self.horizon_input.name = self._horizon_label()
        self._moment()
        self._refresh()

    def _on_body(self, event) -> None:
        if event.new is None or event.new == self.game.body:
            return
        try:
            body = self._checked_body(event.new)
        except Refused as error:
            self._refuse(self.body_input, error, self.game.body)
            return
        self.game.body = body
        self.game.result = None  # the answer was about another body
        self.continue_button.visible = False
        self._refresh()

    def _on_horizon(self, event) -> None:
        if event.new is None or event.new == self.game.horizon:
            return
        try:
            horizon = self._checked_horizon(event.new)
        except Refused as error:  # NaN, -1, 0 or inf typed (or sent): said, and the box shows the kept value
            self._refuse(self.horizon_input, error, self.game.horizon)
            return
        self.game.horizon = horizon
        self.game.result = None
        self.continue_button.visible = False
        self._refresh()

    def add_guess(self, data: dict) -> None:
        """A click in predict mode (the scene's ``{"type": "guess", "plane", "a", "b"}``
        message, ``a``/``b`` in length units): keep it and draw it, or say why not."""
        if not self.game.active:
            return
        self._moment()
        try:
            self.game.add_guess_message(data)
        except ValueError as error:
            self.simulate.notify(f"Guess not placed: {error}", level="warning")
            return
        self.continue_button.visible = False
        self._refresh()

    def clear(self) -> None:
        """Forget the guesses and the answer (the Clear button)."""
        self.game.clear()
        self.continue_button.visible = False
        self._refresh()

    def reveal(self) -> None:
        """Run a copy of the paused state forward by Δt on the pool and show the answer."""
        if self.job_running("answer"):
            return
        self.simulate.playing = False
        self._moment()
        if not self.game.guesses:
            self.simulate.notify("Click a projection first: place at least one guess, then Reveal.", level="info")
            return
        game, simulation = self.game, self.simulate.state
        try:  # refused in words before any work starts (too far ahead, over the CPU budget)
            check_reveal(horizon=float(game.horizon), dt=float(simulation.dt), integrator=simulation.integrator,
                         num_bodies=simulation.body_count)
        except ValueError as error:
            self.simulate.notify(f"No reveal: {error}.")
            return
        self.reveal_button.disabled = True
        self.summary.object = escape_markdown(f"Revealing: running a copy {self.game.horizon:g} ahead …")

        def done(result):
            if game.accept(result):
                self.continue_button.visible = True
            self._refresh()

        def failed(error):
            self.simulate.notify(f"No reveal: {error}")
            self._refresh()

        self.run_job("answer", lambda job: game.compute(simulation, job.checkpoint), done=done, failed=failed)

    def continue_run(self) -> None:
        """Move the live run on to the revealed state (the only way a reveal changes it)."""
        result = self.game.result
        if result is None or self.job_running("answer"):
            return
        simulation = self.simulate.state
        self.continue_button.disabled = True

        def done(moved):
            self.continue_button.disabled = False
            if not moved:
                self.simulate.notify("The run changed since the reveal: nothing to continue from.", level="warning")
                return
            frame = simulation.live_frame()
            # A jump, not a frame: trails dropped (no line across the gap), the camera kept.
            self.scene.show_edit(frame["position"], simulation.mass, velocity=frame["velocity"], time=frame["time"])
            self.simulate.plots.queue(frame["history"])
            self.simulate.plots.flush()
            self.simulate.update_status(force=True)
            self._moment()  # a new moment: a new round of guesses
            self._refresh()

        def failed(error):
            self.continue_button.disabled = False
            self.simulate.notify(f"Could not continue: {error}")

        self.run_job("answer", lambda job: simulation.continue_from(
            result.end_state, steps=result.steps, generation=result.generation), done=done, failed=failed)

    # ------------------------------------------------------------------ drawing
    def _refresh(self) -> None:
        game, units = self.game, self._units()
        # Body, horizon, Reveal and Clear only while predicting: one Reveal on screen at a time
        # (the Lessons tab has its own), and a shorter row on a projector (issue 28).
        for widget in (self.body_input, self.horizon_input, self.reveal_button, self.clear_button):
            widget.visible = game.active
        self.reveal_button.disabled = not (game.active and game.guesses) or game.result is not None
        self.clear_button.disabled = not (game.guesses or game.result is not None)
        self.summary.object = escape_markdown(game.summary(units))
        rows = game.rows(units)
        self.table.object = "<table>" + "".join(
            f'<tr class="{"closest" if closest else ""}"><td>{html.escape(label)}</td>'
            f'<td class="predict-distance">{html.escape(distance)}</td><td>{"closest" if closest else ""}</td></tr>'
            for label, distance, closest in rows) + "</table>" if rows else ""
        self.scene.param.update(
            predicting=game.active, predict_body=game.body if game.active else -1,
            predict_marks=game.scene_marks(units) if game.active else {},
        )
