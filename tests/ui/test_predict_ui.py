"""Predict, then reveal, in headless Chromium against the real served app: guesses clicked on
the live scene, the true path drawn after Reveal, the distances shown equal to the answer
recomputed here with the same core functions, and each session's own guesses.
"""

from __future__ import annotations

import math
import re

import jax
import numpy as np
import pytest
from playwright.sync_api import expect

from nbody_explorer.components.orbit_scene import BACKGROUND
from nbody_explorer.state.predict import true_path
from nbody_core import get_preset
from nbody_core.integrate.simulate import advance
from nbody_core.physics.state import PhysicsParams

SCENE = "window.nbodyScenes['simulate-scene']"
BG = tuple(int(BACKGROUND[k:k + 2], 16) for k in (1, 3, 5))
TIMEOUT_MS = 120_000  # first compile of the figure-eight (seconds; a minute or more under load)


def _open(open_app, ui):
    page = open_app()
    ui.wait_for_scene_bodies(page, 3)
    expect(page.locator(".nbody-status")).to_contain_text("paused", timeout=TIMEOUT_MS)  # compiled
    return page


def _figure_eight_answer(steps_before: int, horizon: float):
    """The paused state after ``steps_before`` leapfrog steps of dt = 1e-3 and body 0's true
    position ``horizon`` later: what the server computes (app/state/predict.py, same core)."""
    state = get_preset("figure_eight").build(jax.random.key(0), None)
    params, options = PhysicsParams(), dict(dt=1e-3, params=PhysicsParams(), integrator="leapfrog", forces="analytic")
    state = advance(state, steps_before, **options)
    _, path, _, _ = true_path(state, body=0, horizon=horizon, dt=1e-3, params=params, integrator="leapfrog",
                              forces="analytic")
    return np.asarray(state.position), path


def _canvas_origin(page):
    return page.evaluate(f"() => {{ const r = {SCENE}.canvas.getBoundingClientRect(); return [r.x, r.y] }}")


def _pixels(page, points, radius=1):
    """Brightest RGB in a small square around each CSS point (x, y) of the scene's canvas."""
    return page.evaluate(
        """([points, r]) => {
          const c = window.nbodyScenes['simulate-scene'].canvas, dpr = window.devicePixelRatio || 1
          const g = c.getContext('2d')
          return points.map(([x, y]) => {
            const d = g.getImageData(Math.round(x * dpr) - r, Math.round(y * dpr) - r, 2 * r + 1, 2 * r + 1).data
            let best = [0, 0, 0], bestSum = -1
            for (let k = 0; k < d.length; k += 4) {
              const s = d[k] + d[k + 1] + d[k + 2]
              if (s > bestSum) { bestSum = s; best = [d[k], d[k + 1], d[k + 2]] }
            }
            return best })
        }""", [points, radius])


def _wait_drawn(page):
    page.wait_for_function(f"() => !{SCENE}.pending()", timeout=15_000)


def test_guesses_are_clicked_the_true_path_is_revealed_and_sessions_keep_their_own(open_app, ui):
    page = _open(open_app, ui)
    page.get_by_role("button", name="Step").click()  # 10 steps of dt = 1e-3
    status = page.locator(".nbody-status")
    expect(status).to_contain_text("t = 0.01 ")
    x0, truth_path = _figure_eight_answer(10, 1.0)

    page.get_by_role("button", name="Predict").click()
    page.wait_for_function(f"() => {SCENE}.predicting() && {SCENE}.camera() && !{SCENE}.pending()", timeout=15_000)
    expect(page.get_by_role("button", name="xy", exact=True)).to_have_class(re.compile("active"))
    page.wait_for_function(f"() => {SCENE}.planePoint(10, 10) !== null && !{SCENE}.pending()", timeout=15_000)  # drawn in x-y
    width, height = page.evaluate(f"() => [{SCENE}.canvas.clientWidth, {SCENE}.canvas.clientHeight]")
    clicks = [(0.3 * width, 0.35 * height), (0.65 * width, 0.7 * height)]  # inside, clear of the labels
    ox, oy = _canvas_origin(page)
    for x, y in clicks:
        page.mouse.click(ox + x, oy + y)
    page.wait_for_function(f"() => ({SCENE}.predictMarks().guesses || []).length === 2", timeout=15_000)
    _wait_drawn(page)
    # The server's guesses (sent back for drawing) are the world points under the clicked pixels.
    guesses = page.evaluate(f"() => {SCENE}.predictMarks().guesses")
    assert [g[0] for g in guesses] == ["xy", "xy"]
    for guess, (x, y) in zip(guesses, clicks):
        a, b = page.evaluate(f"([x, y]) => {SCENE}.planePoint(x, y)", [x, y])
        # Chromium carries a click's coordinates in single precision (~1e-5 px, measured 8e-8
        # length units at this zoom of ~250 px per unit): 1e-6 is 0.00025 px.
        assert (guess[1], guess[2]) == pytest.approx((a, b), abs=1e-6)
    # ... and the page draws a cross where each click was.
    drawn = page.evaluate(f"() => {SCENE}.predictGuessPixels(0)")
    assert np.allclose(drawn, clicks, atol=1.0)  # 1 CSS px: rounding of the click position
    assert all(not _near(rgb, BG) for rgb in _pixels(page, clicks, radius=2))

    # Reveal: pixels along the true path change; the live run stays where it was paused.
    page.evaluate(f"""() => {{ const c = {SCENE}.canvas
        window.__beforeReveal = c.getContext('2d').getImageData(0, 0, c.width, c.height) }}""")
    page.get_by_role("button", name="Reveal").click()
    page.wait_for_function(f"() => ({SCENE}.predictMarks().path || []).length > 1", timeout=60_000)
    _wait_drawn(page)
    path = page.evaluate(f"() => {SCENE}.predictPathPixels(0)")
    changed = page.evaluate(
        """(points) => {
          const c = window.nbodyScenes['simulate-scene'].canvas, dpr = window.devicePixelRatio || 1
          const now = c.getContext('2d').getImageData(0, 0, c.width, c.height), before = window.__beforeReveal
          return points.map(([x, y]) => {
            const k = 4 * (Math.round(y * dpr) * c.width + Math.round(x * dpr))
            return Math.abs(now.data[k] - before.data[k]) + Math.abs(now.data[k + 1] - before.data[k + 1])
              + Math.abs(now.data[k + 2] - before.data[k + 2]) > 30 })
        }""", path)
    # Every path point is under the new 3-px line; a few may land on a body or trail drawn in a
    # similar colour before. 90 % is far above chance (the line covers < 2 % of the canvas).
    assert len(path) == 241 and sum(changed) >= 0.9 * len(changed)
    marks = page.evaluate(f"() => {SCENE}.predictMarks()")
    # The path starts at body 0 (the default) where the run was paused and ends at the answer
    # recomputed here (force kernels differ at round-off only: 1e-9 is far above it).
    assert np.allclose(marks["path"][0], x0[0], atol=1e-9)
    assert np.allclose(marks["path"][-1], truth_path[-1], atol=1e-9)
    expect(status).to_contain_text("t = 0.01 ")  # not advanced by the reveal
    # The distances shown (4 significant digits) are those of the clicked guesses to the answer.
    expected = [math.hypot(truth_path[-1][0] - g[1], truth_path[-1][1] - g[2]) for g in guesses]
    cells = page.locator(".predict-distance")
    expect(cells).to_have_count(2)
    shown = [float(re.match(r"[-+0-9.e]+", text).group()) for text in cells.all_inner_texts()]
    assert shown == pytest.approx(expected, rel=5e-4)
    closest = int(np.argmin(expected))
    assert marks["closest"] == closest
    expect(page.locator(".markdown").filter(has_text="Closest: guess").first).to_contain_text(
        f"Closest: guess {closest + 1}")
    page.screenshot(path=str(ui.results_dir / "predict-reveal.png"))

    # A second session starts with no guesses; its guess does not appear in the first.
    other = page.context.new_page()
    other.bring_to_front()  # a background tab gets no animation frames: the scene would not paint
    other.goto(page.url + "&predict_body=1&predict_dt=0.5", timeout=TIMEOUT_MS)  # the lecturer's choice
    ui.wait_for_bokeh_document(other)
    ui.wait_for_scene_bodies(other, 3)
    expect(other.locator(".nbody-status")).to_contain_text("paused", timeout=TIMEOUT_MS)
    assert other.evaluate(f"() => ({SCENE}.predictMarks().guesses || []).length") == 0
    # The link carries view=xy (the first session's URL): the scene opens in that projection.
    other.wait_for_function(f"() => {SCENE}.planePoint(10, 10) !== null", timeout=15_000)
    other.get_by_role("button", name="Predict").click()
    # Body and horizon show while predicting (issue 28: one Reveal at a time), with the link's values.
    expect(other.get_by_role("textbox", name="Body")).to_have_value("1")
    expect(other.get_by_role("textbox", name=re.compile("after Δt"))).to_have_value("0.5")
    other.wait_for_function(f"() => {SCENE}.predicting() && {SCENE}.planePoint(10, 10) !== null && !{SCENE}.pending()",
                            timeout=15_000)
    ox2, oy2 = _canvas_origin(other)
    other.mouse.click(ox2 + 100, oy2 + 100)
    other.wait_for_function(f"() => ({SCENE}.predictMarks().guesses || []).length === 1", timeout=15_000)
    assert other.evaluate(f"() => {SCENE}.predictMarks().path.length") == 0
    page.bring_to_front()
    assert page.evaluate(f"() => {SCENE}.predictMarks().guesses") == guesses
    assert page.evaluate(f"() => {SCENE}.predictMarks().path.length") == 241
    other.close()


def _near(rgb, reference, tolerance=6):
    # 6/255 per channel: anti-aliasing noise of an empty canvas is 0; allow slight blending.
    return all(abs(a - b) <= tolerance for a, b in zip(rgb, reference))
