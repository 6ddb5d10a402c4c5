"""Accessibility of the served dashboard in headless Chromium (issue 14, "For the room").

An axe-core scan (axe-playwright-python) of every tab, each opened first (tabs are built when
first opened), and of projector mode: no serious or critical violation. Keyboard only: Tab
reaches the tab headers, the arrow keys move along them and Enter opens one, then the
Simulate tab's play / step / reset work from the keyboard; every control reached by Tab shows
a visible focus ring.
"""

from __future__ import annotations

import json
import re

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from nbody_explorer.dashboard import TABS

VIEWPORT = {"width": 1280, "height": 720}
TITLES = [title for title, _ in TABS]
FAILING_IMPACTS = {"serious", "critical"}
# Every rule axe-core runs by default (WCAG 2.0-2.2 A/AA and best practices); none excluded.
AXE_OPTIONS = {"resultTypes": ["violations"]}

AT_ZERO = re.compile(r"t = 0\s")  # the status line's "t = <b>0</b>&nbsp;·" (\s matches nbsp)
AFTER_ZERO = re.compile(r"t = (0\.\d*[1-9]|[1-9])")

# The element that has the keyboard focus, looked up through shadow roots: its class, text,
# role and the computed outline that marks it.
FOCUSED = """() => {
  let el = document.activeElement;
  while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  return {tag: el.tagName, cls: String(el.className), text: (el.textContent || '').trim().slice(0, 40),
          role: el.getAttribute('role'), selected: el.getAttribute('aria-selected'),
          outlineStyle: style.outlineStyle, outlineWidth: parseFloat(style.outlineWidth),
          visible: box.width > 0 && box.height > 0};
}"""


def _open_tab(page, title: str) -> None:
    page.get_by_role("tab", name=title).click()
    expect(page.get_by_text(f"Opening the {title} tab")).to_have_count(0, timeout=120_000)
    expect(page.get_by_role("tab", name=title)).to_have_attribute("aria-selected", "true")


def _serious(results) -> list[dict]:
    return [
        {"rule": v["id"], "impact": v["impact"], "targets": [n["target"] for n in v["nodes"]][:5]}
        for v in results.response["violations"] if v["impact"] in FAILING_IMPACTS
    ]


def test_keyboard_only_tabs_then_play_step_reset(page, open_app, ui):
    page.set_viewport_size(VIEWPORT)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_app()
    ui.wait_for_scene_bodies(page, 3)
    status = page.locator(".nbody-status").first
    expect(status).to_contain_text("paused", timeout=60_000)

    # Tab from the top of the page until the focus is on a tab header; every stop on the way
    # shows a focus ring.
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    stops = []
    for _ in range(40):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        assert focused is not None
        stops.append(focused)
        if focused["role"] == "tab":
            break
    assert stops[-1]["role"] == "tab", json.dumps(stops, indent=0)
    assert stops[-1]["text"] == TITLES[0] and stops[-1]["selected"] == "true"  # the tab list is entered at the open tab
    for stop in stops:
        assert stop["outlineStyle"] != "none" and stop["outlineWidth"] >= 2, stop  # a visible ring, >= 2 px

    # Arrows move along the headers without opening them; Enter opens the focused one.
    page.keyboard.press("ArrowRight")
    focused = page.evaluate(FOCUSED)
    assert focused["role"] == "tab" and focused["text"] == TITLES[1] and focused["selected"] == "false"
    expect(status).to_contain_text(AT_ZERO)  # → on a tab header is not the "step" shortcut
    page.keyboard.press("Enter")
    expect(page.get_by_role("tab", name=TITLES[1])).to_have_attribute("aria-selected", "true", timeout=60_000)
    expect(page.get_by_text(f"Opening the {TITLES[1]} tab")).to_have_count(0, timeout=120_000)
    # Tabs are dynamic: the Simulate view leaves the page while another tab is open, and is
    # drawn anew (new elements) when it is opened again.
    expect(page.locator(".nbody-status")).to_have_count(0, timeout=60_000)

    # Back to Simulate by the keyboard (End wraps to the last, Home to the first), with Space.
    page.keyboard.press("End")
    assert page.evaluate(FOCUSED)["text"] == TITLES[-1]
    page.keyboard.press("Home")
    assert page.evaluate(FOCUSED)["text"] == TITLES[0]
    page.keyboard.press(" ")
    expect(page.get_by_role("tab", name=TITLES[0])).to_have_attribute("aria-selected", "true", timeout=60_000)
    expect(status).to_contain_text("paused", timeout=60_000)  # Space on a tab header opened it: no play
    expect(page.get_by_role("button", name="▶ Play")).to_be_visible(timeout=60_000)
    focused = page.evaluate(FOCUSED)
    assert focused["role"] == "tab" and focused["text"] == TITLES[0], focused  # the focus stayed on the header

    # Tab onward to the Play button, then the simulation by the keyboard alone.
    for _ in range(10):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        assert focused["outlineStyle"] != "none" and focused["outlineWidth"] >= 2, focused
        if "Play" in focused["text"]:
            break
    assert "Play" in focused["text"], focused
    page.keyboard.press("Enter")
    expect(status).to_contain_text("playing", timeout=60_000)
    page.keyboard.press("Enter")
    expect(status).to_contain_text("paused", timeout=60_000)
    page.keyboard.press("Tab")
    assert "Step" in page.evaluate(FOCUSED)["text"]
    page.keyboard.press("Enter")
    expect(status).to_contain_text(AFTER_ZERO, timeout=60_000)
    page.keyboard.press("Tab")
    assert "Reset" in page.evaluate(FOCUSED)["text"]
    page.keyboard.press("Enter")
    expect(status).to_contain_text(AT_ZERO, timeout=60_000)
    page.screenshot(path=str(ui.results_dir / "keyboard-focus-ring.png"))
    assert errors == []


def test_axe_finds_no_serious_violation_on_any_tab_or_in_projector_mode(page, open_app, ui):
    page.set_viewport_size(VIEWPORT)
    open_app()
    ui.wait_for_scene_bodies(page, 3)
    axe = Axe()
    found, summary = {}, {}
    for title in TITLES:
        _open_tab(page, title)
        results = axe.run(page, options=AXE_OPTIONS)
        found[title] = _serious(results)
        summary[title] = {v["id"]: f"{v['impact']} x{len(v['nodes'])}" for v in results.response["violations"]}
    _open_tab(page, TITLES[0])
    page.get_by_role("button", name="Projector mode").click()
    page.wait_for_function("() => document.body.classList.contains('nbody-projector')")
    results = axe.run(page, options=AXE_OPTIONS)
    found["projector mode"] = _serious(results)
    summary["projector mode"] = {v["id"]: f"{v['impact']} x{len(v['nodes'])}" for v in results.response["violations"]}
    (ui.results_dir / "axe-summary.json").write_text(json.dumps(summary, indent=1))
    assert all(not v for v in found.values()), json.dumps(found, indent=1)


def test_card_headers_are_named_buttons_that_say_whether_they_are_open(page, open_app, ui):
    """A collapsible card's header is a button named after its title with aria-expanded kept in
    step: the name must not depend on when the title pane paints (the axe button-name failure
    seen once in projector mode), and a screen reader hears "collapsed"/"expanded"."""
    page.set_viewport_size(VIEWPORT)
    open_app()
    ui.wait_for_scene_bodies(page, 3)
    header = page.get_by_role("button", name="Record a movie")
    expect(header).to_have_attribute("aria-expanded", "false", timeout=30_000)
    header.click()
    expect(header).to_have_attribute("aria-expanded", "true")
    header.click()
    expect(header).to_have_attribute("aria-expanded", "false")
    page.get_by_role("button", name="Projector mode").click()
    page.wait_for_function("() => document.body.classList.contains('nbody-projector')")
    expect(page.get_by_role("button", name="Record a movie")).to_have_attribute("aria-expanded", "false")


def test_ladder_sliders_say_their_label_and_value_in_units(page, open_app, ui):
    """The dt and softening ladders (DiscreteSliders) were named "slider" and said an option index
    ("9.00"): the handle is named after the label and says the value in the run's units, also
    after the keyboard moves it and after a preset changes the units (the solar system: yr, AU)."""
    page.set_viewport_size(VIEWPORT)
    open_app("?preset=figure_eight&dt=0.001&softening=0")
    ui.wait_for_scene_bodies(page, 3)
    dt = page.get_by_role("slider", name="dt (time step, time units)")
    expect(dt).to_have_attribute("aria-valuetext", "0.001 time units", timeout=30_000)
    softening = page.get_by_role("slider", name="Softening ε (length units)")
    expect(softening).to_have_attribute("aria-valuetext", "0 length units")
    dt.focus()
    page.keyboard.press("ArrowRight")  # one rung up the 1-2-5 ladder
    expect(dt).to_have_attribute("aria-valuetext", "0.002 time units")
    open_app("?preset=solar_system")
    expect(page.get_by_role("slider", name=re.compile(r"^dt \(.*yr"))).to_have_attribute(
        "aria-valuetext", re.compile(r"^[0-9.e-]+ yr$"), timeout=60_000)
