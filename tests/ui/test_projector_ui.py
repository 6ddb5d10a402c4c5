"""Projector mode in headless Chromium: the header toggle enlarges control text (measured on a
real widget inside its shadow DOM) and turns itself off again."""


FONT_SIZE = """() => {
  const find = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) {
        const button = el.shadowRoot.querySelector('button.bk-btn');
        if (button && button.textContent.includes('Step')) return button;
        const inner = find(el.shadowRoot); if (inner) return inner;
      }
    }
    return null;
  };
  const b = find(document); return b ? parseFloat(getComputedStyle(b).fontSize) : -1;
}"""


def test_projector_mode_enlarges_controls(open_app, ui):
    page = open_app()
    ui.wait_for_scene_bodies(page, 3)
    page.wait_for_function(f"({FONT_SIZE})() > 0")
    before = page.evaluate(FONT_SIZE)
    page.get_by_role("button", name="Projector mode").click()
    page.wait_for_function("() => document.body.classList.contains('nbody-projector')")
    after = page.evaluate(FONT_SIZE)
    assert after >= 18 and after > before * 1.3, (before, after)  # measured 12.8 px before
    page.screenshot(path=str(ui.results_dir / "projector-mode.png"))
    page.get_by_role("button", name="Projector mode").click()
    page.wait_for_function("() => !document.body.classList.contains('nbody-projector')")
    assert page.evaluate(FONT_SIZE) == before
