"""Editing bodies on the Simulate tab in headless Chromium: mouse drags on the live scene
change the run on the server.

The Simulate view is served in-process (``pn.serve(..., threaded=True)``) so the test can read
the server-side state (``view.state``) the edits land in; the page is driven with the mouse and
keyboard only, and the canvas is sampled through ``window.nbodyScenes['simulate-scene']``.
"""

from __future__ import annotations

import time

import numpy as np
import panel as pn
import pytest
from playwright.sync_api import expect

from nbody_explorer.components.orbit_scene import BACKGROUND
from nbody_explorer.state import edits
from nbody_explorer.state.simulate import SimulationState
from nbody_explorer.views.simulate import SimulateView

from .conftest import RESULTS_DIR, free_port

SCENE = "window.nbodyScenes['simulate-scene']"
BG = tuple(int(BACKGROUND[k:k + 2], 16) for k in (1, 3, 5))
TIMEOUT_MS = 60_000  # 8 helpers share 2 cores: compiles and pages are slow (NOTES.md)
# The page holds float32 positions (relative 6e-8) and the mouse lands on whole pixels; the
# figure-eight spans ~2 length units over ~400 px. 1e-4 length units is ~0.02 px.
PAGE_ROUND_OFF = 1e-4


@pytest.fixture(scope="module")
def served_views():
    """``(url, views)``: every session shows one SimulateView (figure-eight, xy projection)."""
    views: list[SimulateView] = []

    def factory():
        view = SimulateView(SimulationState(preset="figure_eight", projection="xy", trails=False), sync_url=False)
        views.append(view)
        return view

    port = free_port()
    server = pn.serve(factory, port=port, address="127.0.0.1", threaded=True, show=False,
                      websocket_origin=[f"127.0.0.1:{port}"])
    try:
        yield f"http://127.0.0.1:{port}/", views
    finally:
        server.stop()


def _poll(condition, what: str, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)  # polls server-side state (no fixed wait)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def editing_page(page, served_views):
    """The page with the run paused and compiled, "Edit bodies" on; returns (page, view)."""
    url, views = served_views
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    count = len(views)
    page.goto(url, timeout=TIMEOUT_MS)
    _poll(lambda: len(views) > count, "the session")
    view = views[-1]
    expect(page.get_by_text("paused", exact=True)).to_be_visible(timeout=TIMEOUT_MS)
    page.wait_for_function(f"() => window.nbodyScenes && {SCENE} && {SCENE}.numBodies() === 3", timeout=TIMEOUT_MS)
    page.get_by_role("button", name="✎ Edit bodies").click()
    page.wait_for_function(f"() => {SCENE}.editing() && {SCENE}.velocities() !== null && {SCENE}.arrowScale() > 0"
                           f" && !{SCENE}.pending()", timeout=TIMEOUT_MS)
    expect(page.locator(".bk-panel-models-markup-HTML, div").get_by_text("E = ", exact=False).first).to_be_visible(
        timeout=TIMEOUT_MS)
    yield page, view
    assert errors == []


def _box(page):
    return page.evaluate(f"() => {{ const r = {SCENE}.canvas.getBoundingClientRect(); return [r.x, r.y] }}")


def _body_pixel(page, i):
    return page.evaluate(f"(i) => {SCENE}.bodyPixel(i, 0)", i)


def _pixel(page, x, y):
    return tuple(page.evaluate(
        f"""([x, y]) => {{ const c = {SCENE}.canvas, dpr = window.devicePixelRatio || 1
        const d = c.getContext('2d').getImageData(Math.round(x * dpr), Math.round(y * dpr), 1, 1).data
        return [d[0], d[1], d[2]] }}""", [x, y]))


def _is_background(rgb, tolerance=6):
    return all(abs(a - b) <= tolerance for a, b in zip(rgb, BG))


def _drag(page, start, end):
    box = _box(page)
    page.mouse.move(box[0] + start[0], box[1] + start[1])
    page.mouse.down()
    page.mouse.move(box[0] + end[0], box[1] + end[1], steps=8)
    page.mouse.up()


def _world_at(page, x, y, i):
    return np.array(page.evaluate(f"([x, y, i]) => {SCENE}.worldAt(x, y, 0, i)", [x, y, i]))


def _settled(page, view, generation):
    """Wait until the server applied an edit (new generation) and the page drew its answer."""
    _poll(lambda: view.state.generation > generation, "the edit on the server")
    n = view.state.current.num_bodies
    page.wait_for_function(f"(n) => {SCENE}.numBodies() === n && !{SCENE}.pending()", arg=n, timeout=TIMEOUT_MS)
    page.wait_for_function(
        f"(run) => {SCENE}.runId() === run && !{SCENE}.pending()", arg=view.scene.last_sent[0], timeout=TIMEOUT_MS)


def test_dragging_a_body_moves_it_on_the_server_and_on_the_canvas(editing_page):
    page, view = editing_page
    before = view.state.bodies()
    readout_before = _poll(lambda: view.editor.last_readout, "the first readout")
    x0, y0 = _body_pixel(page, 0)
    old_look = _pixel(page, x0, y0)
    assert not _is_background(old_look)
    target = (x0 + 50, y0 - 40)
    drop = _world_at(page, *target, 0)  # where the page puts body 0 at that pixel
    generation = view.state.generation
    _drag(page, (x0, y0), target)
    _settled(page, view, generation)
    # The server holds the dropped position, shifted with every other body to the centre-of-
    # mass frame (keep centre-of-mass frame is on by default).
    expected = edits.apply_edit(before, edits.Edit("move", 0, drop), keep_center_of_mass=True)
    np.testing.assert_allclose(view.state.position, expected.position, atol=PAGE_ROUND_OFF)
    assert np.linalg.norm(view.state.position[0] - before.position[0]) > 0.1
    # The canvas shows body 0 at its new place and no longer at its old one.
    x1, y1 = _body_pixel(page, 0)
    assert np.hypot(x1 - x0, y1 - y0) > 30
    assert not _is_background(_pixel(page, x1, y1))
    assert _pixel(page, x0, y0) != old_look
    assert view.scene.selected == 0
    # The energy readout follows: computed on the worker for the edited state, then shown.
    readout = _poll(lambda: view.editor.last_readout if view.editor.last_readout
                    and view.editor.last_readout.generation == view.state.generation else None, "the readout")
    assert readout.energy != pytest.approx(readout_before.energy, rel=1e-6)
    expect(page.get_by_text(readout.text(), exact=False)).to_be_visible(timeout=TIMEOUT_MS)
    RESULTS_DIR.mkdir(exist_ok=True)
    page.screenshot(path=str(RESULTS_DIR / "simulate-edit-bodies.png"))


def test_dragging_an_arrow_tip_changes_the_velocity_on_the_server(editing_page):
    page, view = editing_page
    before = view.state.bodies()
    tip = page.evaluate(f"() => {SCENE}.tipPixel(1, 0)")
    k = page.evaluate(f"() => {SCENE}.arrowScale()")
    body = before.position[1]
    target = (tip[0] - 30, tip[1] + 35)
    new_velocity = (_world_at(page, *target, -1) - body) / k  # xy view: z of the tip is body's z
    new_velocity[2] = before.velocity[1, 2]
    generation = view.state.generation
    _drag(page, tip, target)
    _settled(page, view, generation)
    expected = edits.apply_edit(before, edits.Edit("velocity", 1, new_velocity), keep_center_of_mass=True)
    # The page computes the tip from float32 positions and velocities: 1e-4 of the arrow
    # scale's inverse covers it (k ~ 0.3 here).
    np.testing.assert_allclose(view.state.velocity, expected.velocity, atol=PAGE_ROUND_OFF / k + 1e-5)
    assert np.linalg.norm(view.state.velocity[1] - before.velocity[1]) > 0.05
    # Momentum stays zero: the centre-of-mass frame is kept (float64 on the server).
    assert np.abs(view.state.mass @ view.state.velocity).max() < 1e-12


def test_add_remove_undo_and_play_from_the_edited_state(editing_page):
    page, view = editing_page
    box = _box(page)
    x_mid = page.evaluate(f"() => {SCENE}.canvas.clientWidth") / 2
    y_low = page.evaluate(f"() => {SCENE}.canvas.clientHeight") - 60
    generation = view.state.generation
    page.keyboard.down("Shift")
    page.mouse.click(box[0] + x_mid, box[1] + y_low)  # empty space below the figure-eight
    page.keyboard.up("Shift")
    _settled(page, view, generation)
    assert view.state.current.num_bodies == 4 and view.scene.selected == 3
    assert view.state.mass[3] == pytest.approx(float(np.median(view.state.mass[:3])))
    expect(page.get_by_text("N = 4", exact=False).first).to_be_visible(timeout=TIMEOUT_MS)

    generation = view.state.generation
    page.keyboard.press("Delete")  # removes the selected (new) body
    _settled(page, view, generation)
    assert view.state.current.num_bodies == 3
    # The server cleared the selection, and the page knows it (no ring on a body that is gone).
    page.wait_for_function(f"() => {SCENE}.selected() === -1", timeout=TIMEOUT_MS)

    generation = view.state.generation
    page.get_by_role("button", name="↶ Undo").click()
    _settled(page, view, generation)
    assert view.state.current.num_bodies == 4

    generation = view.state.generation
    page.keyboard.press("Control+Shift+Z")  # redo: the removal again
    _settled(page, view, generation)
    assert view.state.current.num_bodies == 3
    generation = view.state.generation
    page.keyboard.press("Control+z")  # undo
    _settled(page, view, generation)
    assert view.state.current.num_bodies == 4
    edited = view.state.bodies()

    page.get_by_role("button", name="▶ Play").click()
    _poll(lambda: view.state.time > edited.time + 0.05, "the run to play on")
    page.get_by_role("button", name="Pause").click()
    _poll(lambda: not view.playing, "the pause")
    # Played on from the edited state: still four bodies, and the page draws them.
    assert view.state.current.num_bodies == 4
    page.wait_for_function(f"() => {SCENE}.numBodies() === 4", timeout=TIMEOUT_MS)
    assert np.isfinite(view.state.position).all()
