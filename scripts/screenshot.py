"""Regenerate assets/screenshot.png (and one screenshot per feature) from the real served dashboard.

Starts ``python -m panel serve app`` on a free loopback port, opens it in headless Chromium
(Debian's /usr/bin/chromium via Playwright), presses Play on the figure-eight, waits until
the energy-error curve has data, takes a screenshot and stops the server by its PID. Then,
unless ``--no-features``, one screenshot per feature beside it (``FEATURES``): the keyboard
help overlay, Simulate in projector mode, the Record card, the Chaos tab after a twin run
and the Lessons tab.

    python scripts/screenshot.py [--output assets/screenshot.png] [--query "?preset=plummer"]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(port: int) -> subprocess.Popen:
    """Start the app server; the caller stops it with :func:`stop`."""
    return subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", "app", "--port", str(port), "--address", "127.0.0.1",
         "--allow-websocket-origin", f"127.0.0.1:{port}", "--liveness"],
        cwd=REPO_ROOT, env={**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def wait_live(url: str, process: subprocess.Popen, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"panel serve exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/liveness", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError(f"{url}/liveness did not answer within {timeout_s} s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


#: ``screenshot-<name>.png`` written beside the main screenshot, in this order.
FEATURES = ("keyboard-help", "projector", "edit-bodies", "predict", "record", "chaos", "lessons")


def _open_tab(page, title: str) -> None:
    page.get_by_role("tab", name=title).click()
    page.get_by_text(f"Opening the {title} tab").wait_for(state="detached", timeout=120_000)


def feature_screenshots(page, folder: Path) -> list[Path]:
    """One screenshot per entry of :data:`FEATURES`, from a page on the paused Simulate tab."""
    written = []

    def shot(name: str) -> None:
        path = folder / f"screenshot-{name}.png"
        page.screenshot(path=str(path))
        written.append(path)

    page.keyboard.press("?")  # the focus is on no text box: the shortcut opens the help
    page.get_by_text("Keyboard shortcuts").first.wait_for(timeout=30_000)
    shot("keyboard-help")
    page.keyboard.press("Escape")
    page.get_by_text("Keyboard shortcuts").first.wait_for(state="hidden", timeout=30_000)

    page.get_by_role("button", name="Projector mode").click()
    page.wait_for_function("() => document.body.classList.contains('nbody-projector')")
    page.wait_for_timeout(500)  # one layout pass at the larger font (a picture, not a test)
    shot("projector")
    page.get_by_role("button", name="Projector mode").click()
    page.wait_for_function("() => !document.body.classList.contains('nbody-projector')")

    scene = "window.nbodyScenes['simulate-scene']"
    page.get_by_role("button", name="✎ Edit bodies").click()  # paused: velocity arrows drawn
    page.wait_for_function(f"() => {scene}.tipPixel(0, 0) !== null && !{scene}.pending()", timeout=30_000)
    shot("edit-bodies")
    page.get_by_role("button", name="✎ Edit bodies").click()

    page.get_by_role("button", name="Predict").click()
    page.wait_for_function(f"() => {scene}.predicting() && !{scene}.pending()", timeout=30_000)
    page.wait_for_function(f"() => {scene}.planePoint(10, 10) !== null && !{scene}.pending()", timeout=30_000)
    box = page.evaluate(f"() => {{ const r = {scene}.canvas.getBoundingClientRect(); return [r.x, r.y, r.width, r.height] }}")
    for fx, fy in ((0.3, 0.35), (0.62, 0.66)):  # two students' guesses, clear of the labels
        page.mouse.click(box[0] + fx * box[2], box[1] + fy * box[3])
    page.wait_for_function(f"() => ({scene}.predictMarks().guesses || []).length === 2", timeout=30_000)
    page.get_by_role("button", name="Reveal").click()
    page.wait_for_function(f"() => ({scene}.predictMarks().path || []).length > 1 && !{scene}.pending()",
                           timeout=120_000)
    page.locator(".predict-distance").first.wait_for(timeout=30_000)
    shot("predict")
    page.get_by_role("button", name="Clear guesses").click()
    page.get_by_role("button", name="Predict").click()

    header = page.get_by_text("Record a movie", exact=True).first
    header.scroll_into_view_if_needed()
    header.click()
    page.get_by_role("button", name="● Record").wait_for(timeout=30_000)
    page.get_by_role("button", name="● Record").scroll_into_view_if_needed()
    shot("record")

    _open_tab(page, "Chaos")
    page.get_by_role("button", name="Run twins").click()
    page.wait_for_function(
        "() => { const m = Bokeh.documents[0].get_model_by_name('chaos-separation');"
        " return m !== null && m.data.t.length > 10; }", timeout=180_000)
    page.wait_for_timeout(500)
    shot("chaos")

    _open_tab(page, "Lessons")
    page.get_by_role("button", name="Next ▶").wait_for(timeout=120_000)
    shot("lessons")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "assets" / "screenshot.png")
    parser.add_argument("--query", default="?preset=figure_eight&steps=10", help="URL query (settings)")
    parser.add_argument("--points", type=int, default=120, help="energy points to wait for before the shot")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--no-features", action="store_true", help="only the main screenshot")
    args = parser.parse_args(argv)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = serve(port)
    try:
        wait_live(url, process)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                                 args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": args.width, "height": args.height}, device_scale_factor=1)
            page.goto(f"{url}/app{args.query}", timeout=90_000)
            page.wait_for_function(
                "() => window.Bokeh && Bokeh.documents.length > 0"
                " && Bokeh.documents[0].get_model_by_name('simulate-history') !== null", timeout=90_000)
            page.get_by_text("paused", exact=True).first.wait_for(timeout=90_000)  # compiled and ready
            page.get_by_role("button", name="▶ Play").click()
            page.wait_for_function(
                "(n) => Bokeh.documents[0].get_model_by_name('simulate-history').data.t.length >= n",
                arg=args.points, timeout=90_000)
            page.get_by_role("button", name="Pause").click()
            page.get_by_text("paused", exact=True).first.wait_for()
            args.output.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.output))
            written = [args.output]
            if not args.no_features:
                written += feature_screenshots(page, args.output.parent)
            browser.close()
    finally:
        stop(process)
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
