"""Lessons: every shipped lesson loads and steps through (app logic, no server); the loader's
errors name the file and step."""

import pytest

from nbody_explorer.state.lessons import LESSON_DIR, LessonError, LessonPlayer, load_lesson, load_lessons
from nbody_explorer.views.lessons import LessonsView

REQUIRED = {"euler_vs_leapfrog", "why_dt_matters", "figure_eight", "pythagorean_chaos"}


def test_the_four_lessons_load():
    lessons = load_lessons()
    assert REQUIRED <= set(lessons)
    for lesson in lessons.values():
        assert lesson.title and lesson.summary and len(lesson.steps) >= 2


@pytest.fixture(scope="module")
def view():
    return LessonsView()


def test_every_lesson_steps_through_without_error(view):
    for name, lesson in view.lessons.items():
        view.open(name)
        seen = []
        while True:
            step = view.player.current
            assert not view.message.visible, view.message.object  # every setting applied
            assert view.caption.object
            if step.tab == "simulate":
                for key, value in step.settings.items():
                    if key == "preset":
                        assert view.simulate.state.preset == value
                    if key == "dt":
                        assert view.simulate.state.dt == pytest.approx(value)
                assert view.showing == "simulate"
            else:
                assert view.showing == "chaos"
                assert view.chaos.state.result is not None and not view.chaos.state.error
            if step.reveal:
                assert not view.answer.visible
                view.reveal()
                assert view.answer.visible and "Answer" in view.answer.object
            seen.append(view.player.step)
            if view.player.at_end:
                break
            view.go(+1)
        assert seen == list(range(len(lesson.steps)))
        assert view.next_button.disabled and not view.previous_button.disabled
        view.go(-1)
        assert view.player.step == len(lesson.steps) - 2


def test_pause_at_stops_the_run(view):
    view.open("euler_vs_leapfrog")
    view.simulate.state._time = 30.0  # past pause_at = 22.2 (the state's own clock)
    view.simulate.playing = True
    view.check_pause()
    assert not view.simulate.playing


def test_unknown_lesson_is_explained_in_words(view):
    view.open("no_such<b>lesson")
    assert view.message.visible
    assert "There is no lesson called" in view.message.object and "<b>" not in view.message.object


def test_open_at_a_step_keeps_the_step(view):
    view.open("figure_eight")
    view.open("pythagorean_chaos", 1)  # the picker changes too; it must not reset the step
    assert view.player.step == 1 and view.picker.value == "pythagorean_chaos"
    assert "Step 2 of 3" in view.position.object


def test_player_clamps_steps():
    lesson = load_lesson(LESSON_DIR / "figure_eight.toml")
    player = LessonPlayer()
    player.open(lesson, 99)
    assert player.step == len(lesson.steps) - 1 and player.at_end
    player.next()
    assert player.step == len(lesson.steps) - 1


@pytest.mark.parametrize(
    "text, match",
    [
        ('title = "t"\nsummary = "s"\n', "at least one"),
        ('title = "t"\nsummary = "s"\n[[steps]]\nquestion = "q"\n', "step 1: caption is required"),
        ('title = "t"\nsummary = "s"\n[[steps]]\ncaption = "c"\nsettings = { dt = 0 }\n', "setting dt = 0 is not allowed"),
        ('title = "t"\nsummary = "s"\n[[steps]]\ncaption = "c"\nsettings = { preset = "moon" }\n', "preset"),
        ('title = "t"\nsummary = "s"\n[[steps]]\ncaption = "c"\nsettings = { speed = 2 }\n', "unknown setting 'speed'"),
        ('title = "t"\nsummary = "s"\n[[steps]]\ncaption = "c"\ntab = "chaos"\nsettings = { delta = 3.0 }\n', "not offered"),
        ('title = "t"\nsummary = "s"\n[[steps]]\ncaption = "c"\npause_at = -1\n', "positive time"),
        ('title = "t"\nsummary = "s"\n[[steps]]\ncaption = "c"\nreveal = "r"\n', "needs a question"),
        ('title = "t"\nsummary = "s"\n[[steps]]\ncaption = "c"\nwhen = 1\n', "unknown key"),
        ('title = \n', "not valid TOML"),
    ],
)
def test_loader_errors_name_file_and_step(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(LessonError, match=match) as info:
        load_lesson(path)
    assert str(info.value).startswith("bad.toml")
