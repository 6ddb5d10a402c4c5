"""Warnings never cover a plot (issue 28, item 2), in headless Chromium at three screen sizes:
the energy-error warning of a run that drifts is one inline box with role=alert, no toast pops
up over the plots, the box lies apart from the scene and the plots, and Dismiss hides it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .conftest import MODEL_BOX

VIEWPORTS = [(1280, 720), (1600, 1000), (1920, 1080)]

# Boxes of every visible element, in the page or any shadow root, whose own text says `text`:
# the inline box and any toast or popup repeating it.
TEXT_BOXES = """(text) => {
  const out = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) walk(el.shadowRoot);
      const own = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent).join('');
      if (!own.includes(text)) continue;
      const r = el.getBoundingClientRect();
      if (r.width > 0 && r.height > 0) out.push([r.left, r.top, r.right, r.bottom]);
    }
  };
  walk(document);
  return out;
}"""


def _overlap(a, b) -> float:
    """Area shared by two [left, top, right, bottom] boxes (px²)."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


@pytest.mark.parametrize(("width", "height"), VIEWPORTS, ids=lambda v: str(v))
def test_energy_warning_is_one_dismissable_inline_alert(page, open_app, ui, width, height):
    page.set_viewport_size({"width": width, "height": height})
    # The figure-eight with Euler and a coarse step: the energy error passes 1 % within a second.
    open_app("?integrator=euler&dt=0.05")
    ui.wait_for_scene_bodies(page, 3)
    page.get_by_role("button", name="▶ Play").click()
    alert = page.get_by_role("alert").filter(has_text="Energy error")
    expect(alert).to_be_visible(timeout=120_000)
    page.get_by_role("button", name="Pause").click()
    boxes = page.evaluate(TEXT_BOXES, "Energy error")
    # One box says it: no toast repeats it (Panel's notifications drew a second one, over the plot).
    assert len(boxes) == 1, boxes
    (box,) = boxes
    for name in ("simulate-scene", "simulate-energy", "simulate-momentum"):
        page.wait_for_function(f"() => {{ const b = ({MODEL_BOX})({name!r}); return b && b[3] > b[1]; }}")
        plot = page.evaluate(MODEL_BOX, name)
        assert _overlap(box, plot) == 0, (name, box, plot)
    page.get_by_role("button", name="Dismiss").click()
    expect(alert).to_be_hidden(timeout=30_000)
    expect(page.get_by_role("button", name="Dismiss")).to_be_hidden()
    assert page.evaluate(TEXT_BOXES, "Energy error") == []
