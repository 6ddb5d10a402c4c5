"""Lessons: scripted sequences of steps read from ``app/lessons/*.toml`` (package data of ``nbody_explorer``) (no Panel).

Format (TOML, read with the standard library's ``tomllib``)::

    title = "Euler vs leapfrog: energy drift"      # required, shown in the picker
    summary = "One sentence for the picker."       # required

    [[steps]]                                       # one or more, in order
    caption = "What to look at (Markdown-free plain text)."     # required
    question = "A question for the room."          # optional
    reveal = "The answer, shown when Reveal is pressed."  # optional (needs a question)
    tab = "simulate"                                # optional: "simulate" (default) or "chaos"
    pause_at = 6.3                                  # optional: pause the run at this time (time units)
    settings = { preset = "kepler", integrator = "euler", dt = 0.01 }
        # optional; for tab = "simulate" the keys are the Simulate tab's URL keys
        # (nbody_explorer.state.simulate.URL_PARAMETERS: preset, n, seed, e, integrator, forces, precision,
        # dt, softening, steps, fps, trails, trail, view, color, size); for tab = "chaos":
        # system and delta (nbody_explorer.state.chaos).

Every value is validated when the lesson loads (unknown keys, out-of-range numbers, unknown
presets), and errors name the file and the step, so a lecturer's typo is found before class.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import param

from nbody_explorer.state.chaos import DELTAS, SYSTEMS
from nbody_explorer.state.links import URL_PARAMETERS, checked_value
from nbody_explorer.state.simulate import SimulationState

__all__ = ["LESSON_DIR", "Lesson", "LessonError", "LessonStep", "LessonPlayer", "load_lesson", "load_lessons"]

#: Where the shipped lessons live.
LESSON_DIR = Path(__file__).resolve().parents[1] / "lessons"

TABS = ("simulate", "chaos")
_STEP_KEYS = {"caption", "question", "reveal", "tab", "pause_at", "settings"}
_LESSON_KEYS = {"title", "summary", "steps"}
_URL_TO_NAME = {key: name for name, key in URL_PARAMETERS.items()}


class LessonError(ValueError):
    """A lesson file that cannot be used; the message names the file and the step."""


@dataclass(frozen=True)
class LessonStep:
    """One step: settings to apply, text to read, an optional question, pause and reveal."""

    caption: str
    question: str = ""
    reveal: str = ""
    tab: str = "simulate"
    pause_at: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Lesson:
    """A lesson: its name (the file stem, used in ``?lesson=NAME``), title, summary, steps."""

    name: str
    title: str
    summary: str
    steps: tuple[LessonStep, ...]


def _check_simulate_settings(settings: dict, where: str) -> None:
    for key, raw in settings.items():
        name = _URL_TO_NAME.get(key)
        if name is None:
            raise LessonError(f"{where}: unknown setting {key!r}; use one of {sorted(_URL_TO_NAME)}")
        parameter = SimulationState.param[name]
        try:
            # The same coercion and bounds a shared URL goes through (class-level parameters).
            checked_value(parameter, raw)
        except (ValueError, TypeError) as error:
            raise LessonError(f"{where}: setting {key} = {raw!r} is not allowed ({error})") from None


def _check_chaos_settings(settings: dict, where: str) -> None:
    for key, value in settings.items():
        if key == "system":
            if value not in SYSTEMS:
                raise LessonError(f"{where}: unknown chaos system {value!r}; use one of {sorted(SYSTEMS)}")
        elif key == "delta":
            if value not in DELTAS:
                raise LessonError(f"{where}: delta {value!r} is not offered; use one of {DELTAS}")
        else:
            raise LessonError(f"{where}: unknown chaos setting {key!r}; use system or delta")


def _text(table: dict, key: str, where: str, *, required: bool) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise LessonError(f"{where}: {key} must be text, got {type(value).__name__}")
    if required and not value.strip():
        raise LessonError(f"{where}: {key} is required")
    return value.strip()


def _step(table: Any, where: str) -> LessonStep:
    if not isinstance(table, dict):
        raise LessonError(f"{where}: a step must be a table ([[steps]])")
    unknown = set(table) - _STEP_KEYS
    if unknown:
        raise LessonError(f"{where}: unknown key(s) {sorted(unknown)}; a step has {sorted(_STEP_KEYS)}")
    tab = table.get("tab", "simulate")
    if tab not in TABS:
        raise LessonError(f"{where}: tab must be one of {TABS}, got {tab!r}")
    settings = table.get("settings", {})
    if not isinstance(settings, dict):
        raise LessonError(f"{where}: settings must be a table")
    (_check_simulate_settings if tab == "simulate" else _check_chaos_settings)(settings, where)
    pause_at = table.get("pause_at")
    if pause_at is not None:
        if isinstance(pause_at, bool) or not isinstance(pause_at, (int, float)) or not math.isfinite(pause_at) \
                or pause_at <= 0:
            raise LessonError(f"{where}: pause_at must be a positive time, got {pause_at!r}")
        if tab != "simulate":
            raise LessonError(f"{where}: pause_at only applies to the simulate tab")
        pause_at = float(pause_at)
    question = _text(table, "question", where, required=False)
    reveal = _text(table, "reveal", where, required=False)
    if reveal and not question:
        raise LessonError(f"{where}: a reveal needs a question")
    return LessonStep(_text(table, "caption", where, required=True), question, reveal, tab, pause_at, dict(settings))


def load_lesson(path: str | Path) -> Lesson:
    """Read and validate one lesson file.

    Raises:
        LessonError: naming the file (and step) for bad TOML, missing or unknown keys, or a
            setting the dashboard would refuse.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise LessonError(f"{path.name}: not valid TOML ({error})") from None
    unknown = set(data) - _LESSON_KEYS
    if unknown:
        raise LessonError(f"{path.name}: unknown key(s) {sorted(unknown)}; a lesson has {sorted(_LESSON_KEYS)}")
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps:
        raise LessonError(f"{path.name}: a lesson needs at least one [[steps]] table")
    return Lesson(
        name=path.stem,
        title=_text(data, "title", path.name, required=True),
        summary=_text(data, "summary", path.name, required=True),
        steps=tuple(_step(table, f"{path.name}, step {index + 1}") for index, table in enumerate(steps)),
    )


def load_lessons(directory: str | Path = LESSON_DIR) -> dict[str, Lesson]:
    """Every ``*.toml`` lesson in ``directory``, by name, in file-name order."""
    return {lesson.name: lesson for lesson in (load_lesson(p) for p in sorted(Path(directory).glob("*.toml")))}


class LessonPlayer(param.Parameterized):
    """Where the class is in a lesson: the step, and whether its answer is revealed."""

    lesson = param.Parameter(default=None, doc="The current Lesson (None: none chosen).")
    step = param.Integer(default=0, bounds=(0, None), doc="Index of the current step (0-based).")
    revealed = param.Boolean(default=False, doc="Whether the current step's answer is shown.")

    def open(self, lesson: Lesson, step: int = 0) -> None:
        """Open ``lesson`` at ``step`` (clamped into range)."""
        self.param.update(lesson=lesson, step=min(max(int(step), 0), len(lesson.steps) - 1), revealed=False)

    @property
    def current(self) -> LessonStep | None:
        return None if self.lesson is None else self.lesson.steps[self.step]

    @property
    def at_start(self) -> bool:
        return self.step == 0

    @property
    def at_end(self) -> bool:
        return self.lesson is None or self.step == len(self.lesson.steps) - 1

    def next(self) -> None:
        if not self.at_end:
            self.param.update(step=self.step + 1, revealed=False)

    def previous(self) -> None:
        if self.lesson is not None and not self.at_start:
            self.param.update(step=self.step - 1, revealed=False)

    def reveal(self) -> None:
        self.revealed = True

    def apply(self, simulation: SimulationState | None = None, chaos=None) -> list[str]:
        """Apply the current step's settings to the Simulate state or the Chaos state.

        Returns:
            Messages for settings that were refused (empty when all applied).
        """
        step = self.current
        if step is None or not step.settings:
            return []
        if step.tab == "chaos":
            if chaos is not None:
                chaos.param.update(**step.settings)
            return []
        if simulation is None:
            return []
        return simulation.apply_settings({key: value for key, value in step.settings.items()})
