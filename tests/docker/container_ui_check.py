"""The dashboard served from the Docker container renders in a real browser.

Not collected by the main suite (the file name does not match ``test_*.py``):
``scripts/ci_docker.sh`` builds and starts the container, then runs this file with
``NBODY_CONTAINER_URL`` pointing at it.
"""

from pathlib import Path

import pytest

pytestmark = pytest.mark.ui

# Generous: the first session in a fresh container imports JAX and compiles the first frame.
LOAD_TIMEOUT_MS = 90_000

SCREENSHOT = Path("test-results") / "docker-dashboard.png"


def test_simulate_tab_renders_from_container(page, container_url):
    console_errors = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)

    response = page.goto(container_url, wait_until="domcontentloaded")
    assert response is not None and response.status == 200, response and response.status

    # The Bokeh document only exists once the websocket connected, which the server refuses
    # unless the page's origin is in NBODY_WEBSOCKET_ORIGINS.
    page.wait_for_function(
        "() => window.Bokeh !== undefined && Bokeh.documents.length > 0"
        " && Bokeh.documents[0].roots().length > 0",
        timeout=LOAD_TIMEOUT_MS,
    )
    simulate_tab = page.get_by_text("Simulate", exact=True).first
    simulate_tab.wait_for(state="visible", timeout=LOAD_TIMEOUT_MS)
    # A Bokeh plot of the Simulate tab has drawn on its canvas.
    page.locator(".bk-Canvas, canvas").first.wait_for(state="visible", timeout=LOAD_TIMEOUT_MS)

    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    websocket_refusals = [e for e in console_errors if "websocket" in e.lower() or "1006" in e]
    assert not websocket_refusals, websocket_refusals
