"""Predict, then reveal, in headless Chromium: guesses clicked on the live scene, the true path
drawn after Reveal, the distances shown equal to the server's, and each session's own guesses.

The Simulate view is served alone, in-process (``pn.serve(..., threaded=True)``), so the test
can read each session's server-side state (``view.predictor.game``) beside what its page shows.
"""

from __future__ import annotations

import re
import time

import numpy as np
import panel as pn
import pytest
from playwright.sync_api import expect

from app.components.orbit_scene import BACKGROUND
from app.views.simulate import SimulateView

from .conftest import free_port

SCENE = "window.nbodyScenes['simulate-scene']"
BG = tuple(int(BACKGROUND[k:k + 2], 16) for k in (1, 3, 5))
TIMEOUT_MS = 90_000  # first compile of the figure-eight under a loaded machine


@pytest.fixture(scope="module")
def predict_server():
    """``(url, views)``: every session shows one SimulateView; ``views`` in opening order."""
    views: list[SimulateView] = []

    def factory():
        view = SimulateView(sync_url=False)
        views.append(view)
        return view

    port = free_port()
    server = pn.serve(factory, port=port, address="127.0.0.1", threaded=True, show=False,
                      websocket_origin=[f"127.0.0.1:{port}"])
    try:
        yield f"http://127.0.0.1:{port}/", views
    finally:
        server.stop()


def _open(page, predict_server):
    url, views = predict_server
    count = len(views)
    page.goto(url, timeout=TIMEOUT_MS)
    page.wait_for_function(f"() => window.nbodyScenes && {SCENE} && {SCENE}.numBodies() === 3", timeout=TIMEOUT_MS)
    expect(page.get_by_text("paused", exact=True)).to_be_visible(timeout=TIMEOUT_MS)  # compiled
    deadline = time.monotonic() + 10
    while len(views) <= count and time.monotonic() < deadline:
        time.sleep(0.05)  # polls the server-side session list (no fixed wait)
    return views[-1]


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


def _wait_until(condition, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)  # polls a server-side condition (no fixed wait)
    assert condition()


def test_guesses_are_clicked_the_true_path_is_revealed_and_sessions_keep_their_own(page, predict_server, ui):
    view = _open(page, predict_server)
    page.get_by_role("button", name="Step").click()
    expect(page.locator(".nbody-status")).to_contain_text("t = 0.01 ")
    t0, x0 = view.state.time, view.state.position.copy()

    page.get_by_role("button", name="Predict").click()
    page.wait_for_function(f"() => {SCENE}.predicting() && {SCENE}.camera().yaw !== undefined", timeout=15_000)
    _wait_until(lambda: view.scene.view == "xy")
    page.wait_for_function(f"() => {SCENE}.bodyPixel(0) !== null && !{SCENE}.pending()", timeout=15_000)
    width, height = page.evaluate(f"() => [{SCENE}.canvas.clientWidth, {SCENE}.canvas.clientHeight]")
    clicks = [(0.3 * width, 0.35 * height), (0.65 * width, 0.7 * height)]  # inside, clear of the labels
    ox, oy = _canvas_origin(page)
    for x, y in clicks:
        page.mouse.click(ox + x, oy + y)
    page.wait_for_function(f"() => ({SCENE}.predictMarks().guesses || []).length === 2", timeout=15_000)
    _wait_drawn(page)
    # The server keeps the guesses, at the world points under the clicked pixels.
    guesses = view.predictor.game.guesses
    assert [g.plane for g in guesses] == ["xy", "xy"]
    for guess, (x, y) in zip(guesses, clicks):
        a, b = page.evaluate(f"([x, y]) => {SCENE}.planePoint(x, y)", [x, y])
        # Chromium carries a click's coordinates in single precision (~1e-5 px here, measured
        # 8e-8 length units at this zoom of ~250 px per unit): 1e-6 is 0.00025 px.
        assert (guess.a, guess.b) == pytest.approx((a, b), abs=1e-6)
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
    inside = [ok for (x, y), ok in zip(path, changed) if 0 < x < 5000 and 0 < y < 5000]
    # Every path point is under the new 3-px line; a few may land on a body or trail drawn in a
    # similar colour before. 90 % is far above chance (the line covers < 2 % of the canvas).
    assert len(path) == 241 and sum(inside) >= 0.9 * len(inside)
    result = view.predictor.game.result
    assert result is not None and view.state.time == t0 and np.array_equal(view.state.position, x0)
    assert result.body == 0 and np.allclose(result.path[0], x0[0])  # the default body
    # The distances shown are the server's (printed to 4 significant digits).
    cells = page.locator(".predict-distance")
    expect(cells).to_have_count(2)
    shown = [float(re.match(r"[-+0-9.e]+", text).group()) for text in cells.all_inner_texts()]
    assert shown == pytest.approx(list(result.distances), rel=5e-4)
    summary = page.locator(".markdown").filter(has_text="Closest: guess")
    expect(summary.first).to_contain_text(f"Closest: guess {result.closest + 1}")
    page.screenshot(path=str(ui.results_dir / "predict-reveal.png"))

    # A second session starts with no guesses; its guess does not appear in the first.
    other_page = page.context.new_page()
    other = _open(other_page, predict_server)
    assert other is not view
    assert other_page.evaluate(f"() => ({SCENE}.predictMarks().guesses || []).length") == 0
    other_page.get_by_role("button", name="Predict").click()
    other_page.wait_for_function(f"() => {SCENE}.predicting() && !{SCENE}.pending()", timeout=15_000)
    ox2, oy2 = _canvas_origin(other_page)
    other_page.mouse.click(ox2 + 100, oy2 + 100)
    other_page.wait_for_function(f"() => ({SCENE}.predictMarks().guesses || []).length === 1", timeout=15_000)
    assert len(other.predictor.game.guesses) == 1 and len(view.predictor.game.guesses) == 2
    assert page.evaluate(f"() => {SCENE}.predictMarks().guesses.length") == 2
    assert page.evaluate(f"() => {SCENE}.predictMarks().guesses") == [[g.plane, g.a, g.b] for g in guesses]
    other_page.close()


def _near(rgb, reference, tolerance=6):
    # 6/255 per channel: anti-aliasing noise of an empty canvas is 0; allow slight blending.
    return all(abs(a - b) <= tolerance for a, b in zip(rgb, reference))
