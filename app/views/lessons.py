"""Lessons tab: a lesson picker, the current step's caption and question, Reveal, Previous
and Next, above the Simulate or Chaos view the step drives.

``?lesson=NAME&step=K`` (K counted from 1) opens a lesson at a step. The lesson logic lives
in :mod:`nbody_explorer.state.lessons`; this view only shows it.
"""

from __future__ import annotations

import html

import panel as pn

from nbody_explorer.runtime.messages import escape_markdown
from nbody_explorer.runtime.periodic import Periodic
from nbody_explorer.runtime.view import SessionView
from nbody_explorer.state.chaos import ChaosState
from nbody_explorer.state.lessons import Lesson, LessonError, LessonPlayer, load_lessons
from nbody_explorer.views.chaos import ChaosView
from nbody_explorer.views.simulate import SimulateView

__all__ = ["LessonsView"]

_PAUSE_POLL_MS = 200  # how often a playing lesson step looks at the simulation time


class LessonsView(SessionView):
    """Run the lessons of ``app/lessons`` step by step."""

    def __init__(self, lessons: dict[str, Lesson] | None = None, **params):
        super().__init__(label="Lessons", **params)
        self.player = LessonPlayer()
        self.message = pn.pane.Alert("", alert_type="warning", visible=False, name="lesson-message")
        try:
            self.lessons = load_lessons() if lessons is None else lessons
        except LessonError as error:
            self.lessons = {}
            self.notify(f"The lessons could not be read: {error}", level="warning")
        self.picker = pn.widgets.Select(
            label="Lesson", options={lesson.title: name for name, lesson in self.lessons.items()}, width=420,
        )
        self.previous_button = pn.widgets.Button(label="◀ Previous", width=120)
        self.next_button = pn.widgets.Button(label="Next ▶", color="primary", width=120)
        self.reveal_button = pn.widgets.Button(label="Reveal", color="success", width=120)
        self.position = pn.pane.Markdown("", name="lesson-position")
        self.caption = pn.pane.Markdown("", name="lesson-caption", styles={"font-size": "1.25em"})
        self.question = pn.pane.Markdown("", name="lesson-question", styles={"font-size": "1.25em"})
        self.answer = pn.pane.Markdown("", name="lesson-answer", visible=False, styles={"font-size": "1.25em"})
        self.simulate = SimulateView(sync_url=False)
        self.chaos = ChaosView(ChaosState())
        self.showing = "simulate"  # which view the stage shows: "simulate" or "chaos"
        # stretch_both, as its child is: Panel overrides a stretch_width parent to it anyway, with a
        # WARNING:param.Column line in the server log each time.
        self.stage = pn.Column(self.simulate, sizing_mode="stretch_both")
        self._picking = False
        self.picker.param.watch(lambda event: None if self._picking else self.open(event.new), "value")
        self.previous_button.on_click(self.runner.locked(lambda _: self.go(-1)))
        self.next_button.on_click(self.runner.locked(lambda _: self.go(+1)))
        self.reveal_button.on_click(self.runner.locked(lambda _: self.reveal()))
        # One Reveal at a time: while the class predicts, Predict's Reveal is the one shown.
        self.simulate.predictor.toggle.param.watch(self._on_predicting, "value")
        self._layout = pn.Column(
            self.message,
            pn.Row(self.picker, self.previous_button, self.next_button, self.reveal_button, self.position),
            self.caption, self.question, self.answer, self.stage,
            sizing_mode="stretch_both",
        )
        self._poll = Periodic(self.check_pause, period_ms=_PAUSE_POLL_MS, runner=self.runner)
        if self.served:
            self._poll.start()
        name, step = self._url_request()
        if name is not None:
            self.open(name, step)
        elif self.lessons:
            self.open(next(iter(self.lessons)))

    def __panel__(self):
        return self._layout

    @staticmethod
    def _url_request() -> tuple[str | None, int]:
        args = getattr(pn.state, "session_args", None) or {}
        names = args.get("lesson")
        if not names:
            return None, 0
        name = names[0].decode("utf-8", "replace") if isinstance(names[0], bytes) else str(names[0])
        raw_step = args.get("step", [b"1"])[0]
        raw_step = raw_step.decode("utf-8", "replace") if isinstance(raw_step, bytes) else str(raw_step)
        try:
            step = int(raw_step) - 1
        except ValueError:
            step = 0
        return name, step

    def open(self, name: str, step: int = 0) -> None:
        """Open lesson ``name`` at ``step`` (0-based; clamped)."""
        lesson = self.lessons.get(name)
        if lesson is None:
            self.notify(f"There is no lesson called “{name}”. Pick one from the list: {', '.join(self.lessons)}.",
                        level="warning")
            return
        self.message.visible = False
        self.player.open(lesson, step)
        if self.picker.value != name:
            self._picking = True  # the picker's watcher must not reopen the lesson at step 1
            try:
                self.picker.value = name
            finally:
                self._picking = False
        self._show()

    def go(self, offset: int) -> None:
        """Move ``offset`` steps (Previous: -1, Next: +1) and apply the new step."""
        (self.player.next if offset > 0 else self.player.previous)()
        self._show()

    def _on_predicting(self, event) -> None:
        self.reveal_button.visible = not event.new

    def reveal(self) -> None:
        self.player.reveal()
        self.answer.visible = bool(self.player.current and self.player.current.reveal)

    def check_pause(self) -> None:
        """Pause the Simulate run once it reaches the step's ``pause_at`` time."""
        step = self.player.current
        if step is None or step.pause_at is None or not self.simulate.playing:
            return
        if self.simulate.state.time >= step.pause_at:
            self.simulate.playing = False

    def _show(self) -> None:
        step = self.player.current
        lesson = self.player.lesson
        self.simulate.playing = False
        self.position.object = f"Step {self.player.step + 1} of {len(lesson.steps)}"
        self.caption.object = escape_markdown(step.caption)
        self.question.object = ("**Question:** " + escape_markdown(step.question)) if step.question else ""
        self.answer.object = ("**Answer:** " + escape_markdown(step.reveal)) if step.reveal else ""
        self.answer.visible = False
        self.reveal_button.disabled = not step.reveal
        self.previous_button.disabled = self.player.at_start
        self.next_button.disabled = self.player.at_end
        rejected = self.player.apply(self.simulate.state, self.chaos.state)
        if rejected:
            self.notify("Some settings of this step were not applied: " + "; ".join(rejected), level="warning")
        if self.showing != step.tab:
            self.showing = step.tab
            self.stage.objects = [self.chaos if step.tab == "chaos" else self.simulate]
        if step.tab == "chaos":
            if self.chaos.system.value != self.chaos.state.system:
                self.chaos.system.value = self.chaos.state.system
            if self.chaos.delta.value != self.chaos.state.delta:
                self.chaos.delta.value = self.chaos.state.delta
            self.chaos.run()
        pause = f" The run pauses at t = {step.pause_at:g}." if step.pause_at else ""
        self.position.object += html.escape(pause)
