"""Simulate tab in headless Chromium against the real served app."""

import re

from playwright.sync_api import expect

BAD_CSV = b"m,x,y,z,vx,vy,vz\n1,0,0,0,0,0,0\n0,1,0,0,0,0,0\n"


def _history_length(page, ui):
    return ui.source_length(page, "simulate-history", "t")


def _ready(page, ui):
    ui.wait_for_model(page, "simulate-history")
    expect(page.get_by_text("paused", exact=True)).to_be_visible(timeout=60_000)  # compiled


def test_play_grows_the_orbit_and_energy_curve(open_app, ui):
    page = open_app()
    _ready(page, ui)
    ui.wait_for_scene_bodies(page, 3)
    x0 = ui.scene_positions(page)
    assert _history_length(page, ui) == 0
    page.get_by_role("button", name="▶ Play").click()
    page.wait_for_function(
        "() => Bokeh.documents[0].get_model_by_name('simulate-history').data.t.length >= 20", timeout=30_000
    )
    expect(page.get_by_text("playing", exact=False).first).to_be_visible()
    trail = page.evaluate("() => window.nbodyScenes['simulate-scene'].trailCount()")  # kept by the browser
    x1 = ui.scene_positions(page)
    energy = page.evaluate(
        "() => Array.from(Bokeh.documents[0].get_model_by_name('simulate-history').data.energy_error)"
    )
    assert trail >= 2 and x1 != x0
    # Leapfrog, dt = 1e-3 on the figure-eight: |dE/E| stays below 1e-6 (see tests/app).
    assert 0 < max(energy) < 1e-6
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_text("paused", exact=True)).to_be_visible()
    expect(page.locator(".nbody-status")).to_contain_text(re.compile(r"t = (0\.0*[1-9]|[1-9])"))
    page.screenshot(path=str(ui.results_dir / "simulate-playing.png"))


def test_moving_the_dt_slider_changes_the_step_and_the_url(open_app, ui):
    page = open_app()
    _ready(page, ui)
    handle = page.locator(".nbody-dt-slider .noUi-handle")
    handle.focus()
    page.keyboard.press("ArrowRight")  # 1e-3 -> 2e-3 on the 1-2-5 ladder
    expect(page.locator(".nbody-status")).to_contain_text("dt = 0.002")
    page.wait_for_function("() => window.location.search.includes('dt=0.002')")
    page.get_by_role("button", name="Step").click()  # 10 steps of 0.002
    expect(page.locator(".nbody-status")).to_contain_text("t = 0.02 ")
    assert _history_length(page, ui) == 1


def test_bad_csv_upload_shows_a_message_and_keeps_running(open_app, ui):
    page = open_app()
    _ready(page, ui)
    page.locator("input[type=file]").set_input_files(
        files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": BAD_CSV}]
    )
    expect(page.get_by_text("Could not load bad.csv").first).to_be_visible(timeout=20_000)
    expect(page.get_by_text("mass must be positive").first).to_be_visible()
    ui.wait_for_scene_bodies(page, 3)  # the figure-eight is kept
    page.get_by_role("button", name="Step").click()
    page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('simulate-history').data.t.length == 1")


def test_shared_url_opens_the_same_setup_and_tampered_values_are_ignored(open_app, ui):
    page = open_app("?preset=cold_collapse&n=48&integrator=rk4&dt=0.0005&view=xz&steps=abc&forces=evil")
    _ready(page, ui)
    ui.wait_for_scene_bodies(page, 48)
    status = page.locator(".nbody-status")
    expect(status).to_contain_text("rk4")
    expect(status).to_contain_text("dt = 0.0005")
    expect(status).to_contain_text("N = 48")
    expect(page.get_by_text("Ignored invalid link settings").first).to_be_visible()
    expect(page.get_by_text("steps=abc").first).to_be_visible()
    # The URL now holds the settings actually in use, the tampered ones replaced.
    page.wait_for_function("() => window.location.search.includes('steps=10')")
    assert "forces=auto" in page.evaluate("() => window.location.search")  # the default kernel choice
    page.screenshot(path=str(ui.results_dir / "simulate-shared-url.png"))


def test_fps_alone_in_a_link_sets_the_speed_slider_and_stays_in_the_rewritten_url(open_app, ui):
    # Issue 21 item 5: "?fps=60 alone leaves the speed slider at 30" and "the URL the app
    # rewrites drops fps" (each URL key alone is covered without a browser in tests/app/test_links.py).
    page = open_app("?fps=60")
    _ready(page, ui)
    speed = page.evaluate(
        "() => Array.from(Bokeh.documents[0].all_models).filter((m) => String(m.title || '').startsWith('Speed'))"
        ".map((m) => m.value)"
    )
    assert speed == [60], speed
    page.wait_for_function("() => window.location.search.includes('preset=figure_eight')")  # rewritten
    query = page.evaluate("() => window.location.search")
    assert "fps=60" in query and "steps=10" in query, query
