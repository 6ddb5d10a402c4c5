"""One heavy session does not stop the class (issue 26): the shared hostile link is refused in
words, a heavy setting that is allowed plays in bounded pieces, Pause stops it within a
second, and a light session keeps painting meanwhile."""

from __future__ import annotations

import time

from playwright.sync_api import expect

PAGE_TIMEOUT_MS = 180_000  # page load, build and compile of N = 2000 on a busy 2-core machine
LIGHT = "?preset=plummer&n=200&steps=1"
HOSTILE = "?preset=plummer&n=2000&integrator=dopri8&dt=1&steps=200"  # issue 26's shared link
HEAVY = "?preset=plummer&n=2000&integrator=yoshida4&steps=60"  # ~3 s of CPU a frame: allowed


def _open(browser, url: str, ui):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(url, timeout=PAGE_TIMEOUT_MS)
    ui.wait_for_bokeh_document(page, PAGE_TIMEOUT_MS)
    ui.wait_for_model(page, "simulate-history", PAGE_TIMEOUT_MS)
    expect(page.locator(".nbody-status").first).to_contain_text("paused", timeout=PAGE_TIMEOUT_MS)
    return context, page


def _frames(page) -> int:
    """Frames the page has drawn diagnostics for (one point per frame)."""
    return page.evaluate("() => Bokeh.documents[0].get_model_by_name('simulate-history').data.t.length")


def _wait_frames(page, more: int, timeout_ms: int) -> None:
    page.wait_for_function(
        "(n) => Bokeh.documents[0].get_model_by_name('simulate-history').data.t.length >= n",
        arg=_frames(page) + more, timeout=timeout_ms)


def test_hostile_link_refused_heavy_play_pauses_within_a_second_and_a_light_session_keeps_painting(
        browser, app_url, ui):
    pages = []
    try:
        light_context, light = _open(browser, app_url + LIGHT, ui)
        pages.append(light_context)
        light.get_by_role("button", name="▶ Play").click()
        _wait_frames(light, 5, PAGE_TIMEOUT_MS)

        # The shared link: Play is refused before any work, in words, with what to change.
        hostile_context, hostile = _open(browser, app_url + HOSTILE, ui)
        pages.append(hostile_context)
        hostile.get_by_role("button", name="▶ Play").click()
        expect(hostile.get_by_text("With dopri8, one step of 2000 bodies would need about").first).to_be_visible(
            timeout=30_000)
        expect(hostile.get_by_text("choose at most").first).to_be_visible()

        # A heavy setting that is allowed plays (a frame is ~60 pieces of ~0.1 s)...
        heavy_context, heavy = _open(browser, app_url + HEAVY, ui)
        pages.append(heavy_context)
        ui.wait_for_scene_bodies(heavy, 2000, timeout_ms=PAGE_TIMEOUT_MS)
        start = ui.scene_positions(heavy)
        heavy.get_by_role("button", name="▶ Play").click()
        heavy.wait_for_function(
            "(x0) => { const s = window.nbodyScenes && window.nbodyScenes['simulate-scene'];"
            " return s && s.positions().length && s.positions()[0][0] !== x0; }",
            arg=start[0][0], timeout=PAGE_TIMEOUT_MS)
        # ...while the light session keeps painting.
        _wait_frames(light, 30, 30_000)

        # Pause acts within one piece: the heavy frame being computed is dropped, so the scene
        # does not move once the server has taken the Pause (no frame of the stopped loop is
        # drawn) while the light one paints 30 more frames; the status line says paused after
        # one round trip of the page (measured 1-3 s here with Chromium and the server on 2
        # loaded cores: the bound is on the server's piece, not on the page's round trip).
        # A frame the server finished before the Pause reached it is not of the stopped loop
        # and may still land during that round trip (seen in CI: the scene one frame on from
        # where it was at the click); it is sent before the status that says paused, in order
        # with it, so the scene is compared from the moment the page says paused.
        clicked = time.perf_counter()
        heavy.get_by_role("button", name="Pause").click()
        expect(heavy.locator(".nbody-status").first).to_contain_text("paused", timeout=10_000)
        print(f"Pause -> 'paused' on the page: {time.perf_counter() - clicked:.2f} s")
        paused_at = ui.scene_positions(heavy)
        _wait_frames(light, 30, 30_000)
        assert ui.scene_positions(heavy) == paused_at
    finally:
        for context in pages:
            context.close()
