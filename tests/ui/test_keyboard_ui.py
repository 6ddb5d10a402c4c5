"""Keyboard-only operation of the Simulate tab in headless Chromium: ? help, → step, space
play and pause, R reset; a key typed into a number box is not a shortcut."""

import re

from playwright.sync_api import expect


# The status line reads "t = <b>0</b>&nbsp;·": JavaScript's \s matches the no-break space.
AT_ZERO = re.compile(r"t = 0\s")
AFTER_ZERO = re.compile(r"t = (0\.\d*[1-9]|[1-9])")
SCENE_TOP = "() => window.nbodyScenes['simulate-scene'].canvas.getBoundingClientRect().top"


def test_keyboard_only_play_step_reset(open_app, ui):
    page = open_app()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    ui.wait_for_scene_bodies(page, 3)
    status = page.locator(".nbody-status").first
    expect(status).to_contain_text("paused", timeout=60_000)
    scene_top = page.evaluate(SCENE_TOP)
    page.keyboard.press("?")
    # A dialog over the page (issue 28): the help box was inserted above the scene and pushed it
    # off a projector's screen.
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(dialog).to_be_visible(timeout=30_000)
    expect(dialog).to_contain_text("play / pause")
    assert page.evaluate(SCENE_TOP) == scene_top
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden(timeout=30_000)
    page.keyboard.press("ArrowRight")
    expect(status).to_contain_text(AFTER_ZERO, timeout=60_000)
    page.keyboard.press(" ")
    expect(status).to_contain_text("playing", timeout=60_000)
    page.keyboard.press(" ")
    expect(status).to_contain_text("paused", timeout=60_000)
    page.keyboard.press("r")
    expect(status).to_contain_text(AT_ZERO, timeout=60_000)
    # Typing into a number box is typing, not a shortcut: "r" there does not reset or step.
    page.keyboard.press("ArrowRight")
    expect(status).to_contain_text(AFTER_ZERO, timeout=60_000)
    seed = page.locator("input.bk-input[type=text]:not([disabled])").first
    seed.focus()  # focus, not click: the seed box may sit under the scene at 1280 px (issue 14)
    seed.press("ArrowRight")
    seed.press("r")
    expect(status).to_contain_text(AFTER_ZERO)
    assert errors == []
