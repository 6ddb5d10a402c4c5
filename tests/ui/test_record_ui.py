"""Record card in headless Chromium against the real served app: a 3-second movie made from the
browser downloads as a GIF and an MP4 that decode to the expected frame count and size; Stop
ends a long recording."""

import imageio.v2 as imageio
import imageio_ffmpeg
import numpy as np
from playwright.sync_api import expect

SECONDS, FPS = 3, 15  # the card's defaults: 45 frames
WIDTH, HEIGHT = 480, 360


def _mp4_frames(path):
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)  # the first item is the metadata; then one bytes object per frame
    return tuple(meta["size"]), sum(1 for _ in reader)


def _choose(page, option_text: str):
    """Pick the <select> option whose label is ``option_text`` (Panel renders Select as <select>)."""
    select = page.locator("select").filter(has=page.locator("option", has_text=option_text)).first
    select.select_option(label=option_text)


def _record_and_download(page, tmp_path, name: str):
    page.get_by_role("button", name="● Record").click()
    # Record hides the previous movie's download at once; it comes back with the new movie
    # (45 frames take seconds to draw, so the hidden state is there to be seen).
    expect(page.get_by_role("button", name="Download movie")).to_be_hidden(timeout=60_000)
    status = page.locator(".markdown").filter(has_text="Movie ready")
    expect(status.first).to_be_visible(timeout=180_000)  # ~10-15 s on a quiet machine, minutes under load
    expect(status.first).to_contain_text(f"{SECONDS * FPS} frames")
    with page.expect_download(timeout=60_000) as download_info:
        page.get_by_role("button", name="Download movie").click()
    download = download_info.value
    assert download.suggested_filename == name
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    return path


def test_record_card_makes_a_three_second_gif_and_mp4(open_app, ui, tmp_path):
    page = open_app()
    ui.wait_for_model(page, "simulate-history")
    expect(page.get_by_text("paused", exact=True)).to_be_visible(timeout=60_000)  # compiled
    # More recorded frames than movie frames: a GIF merges identical consecutive frames (see
    # tests/app/test_record.py), so the run must show motion in every one of the 45.
    page.get_by_role("button", name="▶ Play").click()
    page.wait_for_function(
        "() => Bokeh.documents[0].get_model_by_name('simulate-history').data.t.length >= 60", timeout=90_000)
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_text("paused", exact=True)).to_be_visible()

    page.get_by_text("Record a movie").first.click()  # the card starts collapsed
    expect(page.get_by_role("button", name="● Record")).to_be_visible()
    _choose(page, "GIF (animated image)")
    _choose(page, f"{WIDTH}×{HEIGHT}")
    gif = _record_and_download(page, tmp_path, "nbody-figure_eight.gif")
    frames = imageio.mimread(gif, format="GIF")
    assert len(frames) == SECONDS * FPS
    assert frames[0].shape[:2] == (HEIGHT, WIDTH)
    assert not np.array_equal(frames[0], frames[-1])  # the bodies move

    _choose(page, "MP4 (video)")
    mp4 = _record_and_download(page, tmp_path, "nbody-figure_eight.mp4")
    assert _mp4_frames(mp4) == ((WIDTH, HEIGHT), SECONDS * FPS)
    page.screenshot(path=str(ui.results_dir / "record-card.png"))


def test_stop_ends_a_long_recording_in_the_served_app(open_app, ui):
    """The served path (the recording waits for and runs on the pool; Stop cancels it there):
    a 20 s 1280x720 GIF stopped after a few frames says so, offers nothing to download and can
    be recorded again."""
    page = open_app()
    ui.wait_for_model(page, "simulate-history")
    expect(page.get_by_text("paused", exact=True)).to_be_visible(timeout=60_000)  # compiled
    page.get_by_role("button", name="▶ Play").click()
    page.wait_for_function(
        "() => Bokeh.documents[0].get_model_by_name('simulate-history').data.t.length >= 10", timeout=90_000)
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_text("paused", exact=True)).to_be_visible()

    page.get_by_text("Record a movie").first.click()  # the card starts collapsed
    length = page.get_by_role("textbox", name="Movie length (s)", exact=True)
    length.fill("20")
    length.press("Enter")
    _choose(page, "GIF (animated image)")
    _choose(page, "1280×720")
    page.get_by_role("button", name="● Record").click()
    status = page.locator(".markdown").filter(has_text="Recording")
    expect(status.first).to_contain_text("/ 300 frames", timeout=60_000)  # 20 s x 15 fps
    page.get_by_role("button", name="■ Stop recording").click()
    stopped = page.locator(".markdown").filter(has_text="Recording stopped")
    expect(stopped.first).to_be_visible(timeout=30_000)
    expect(page.get_by_role("button", name="■ Stop recording")).to_be_hidden()
    expect(page.get_by_role("button", name="Download movie")).to_be_hidden()
    expect(page.get_by_role("button", name="● Record")).to_be_enabled()
