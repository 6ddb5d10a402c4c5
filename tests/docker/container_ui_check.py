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
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))

    response = page.goto(container_url, wait_until="domcontentloaded", timeout=LOAD_TIMEOUT_MS)
    assert response is not None and response.status == 200, response and response.status

    # The Bokeh document only exists once the websocket connected, which the server refuses
    # unless the page's origin is in NBODY_WEBSOCKET_ORIGINS.
    page.wait_for_function(
        "() => window.Bokeh !== undefined && Bokeh.documents.length > 0"
        " && Bokeh.documents[0].roots().length > 0",
        timeout=LOAD_TIMEOUT_MS,
    )
    # Bokeh's tab headers carry no ARIA role; the Simulate tab is the active one on load.
    simulate_tab = page.locator(".bk-tab.bk-active", has_text="Simulate")
    simulate_tab.wait_for(state="visible", timeout=LOAD_TIMEOUT_MS)
    # The Simulate tab's orbit scene (drawn in the browser) shows the default preset.
    page.wait_for_function(
        "() => window.nbodyScenes && window.nbodyScenes['simulate-scene']"
        " && window.nbodyScenes['simulate-scene'].numBodies() > 0 && window.nbodyScenes['simulate-scene'].painted() > 0",
        timeout=LOAD_TIMEOUT_MS,
    )

    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    # The image holds the wheel only: the Lessons tab reads its lessons from the package data.
    lessons = sorted((Path(__file__).resolve().parents[2] / "app" / "lessons").glob("*.toml"))
    page.locator(".bk-tab", has_text="Lessons").first.click()
    picker = page.get_by_role("combobox", name="Lesson")
    picker.wait_for(timeout=LOAD_TIMEOUT_MS)
    assert picker.locator("option").count() == len(lessons) == 4
    assert errors == []
