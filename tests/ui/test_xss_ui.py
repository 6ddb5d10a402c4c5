"""Script-bearing text through every input that reaches the page shows literally (issue 16
security items 1-2): an upload's file name (description line, message, toast), a link's
query value, the Forces tab's "Timing N values". Before the fix the upload name reached the
description through Markdown and ``<b>`` rendered bold; the Forces message and timing line
rendered the typed text as HTML and ran its script.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

SCRIPT = "<img src=x onerror=\"window.__xss=7\">"
BOLD = "<b>bold</b>"
CSV = b"m,x,y,z,vx,vy,vz\n1,-1,0,0,0,-0.5,0\n1,1,0,0,0,0.5,0\n"
MESSAGE_TIMEOUT_MS = 60_000


def _no_script_ran_and_no_bold(page) -> None:
    assert page.evaluate("() => window.__xss") is None, "a script in user text ran"
    bold = page.evaluate(
        "() => { const out = []; const visit = (root) => { for (const el of root.querySelectorAll('*')) {"
        " if (el.tagName === 'B' && el.textContent === 'bold') out.push(el.outerHTML);"
        " if (el.tagName === 'IMG' && el.getAttribute('src') === 'x') out.push(el.outerHTML);"
        " if (el.shadowRoot) visit(el.shadowRoot); } }; visit(document); return out; }"
    )
    assert bold == [], f"user text rendered as HTML: {bold}"


def test_upload_names_and_link_values_show_literally(open_app, ui):
    page = open_app(f"?integrator={SCRIPT}")
    ui.wait_for_model(page, "simulate-history")
    expect(page.get_by_text(re.compile(r"integrator=<img src=x")).first).to_be_visible(timeout=MESSAGE_TIMEOUT_MS)
    for name in (f"{SCRIPT}.csv", f"{BOLD}.csv"):
        page.locator("input[type=file]").set_input_files(files=[{"name": name, "mimeType": "text/csv", "buffer": CSV}])
        # The message and the description line both quote the name, as text.
        expect(page.get_by_text(f"Loaded {name}: 2 bodies").first).to_be_visible(timeout=MESSAGE_TIMEOUT_MS)
        expect(page.get_by_text(f"uploaded initial conditions ({name}, N = 2)").first).to_be_visible(
            timeout=MESSAGE_TIMEOUT_MS
        )
        _no_script_ran_and_no_bold(page)


def test_forces_timing_values_show_literally(open_app, ui):
    page = open_app()
    page.locator(".bk-tab", has_text="Forces").first.click()
    ui.wait_for_model(page, "forces-hist-float64")
    for text in (f"16, {SCRIPT}", f"16, {BOLD}"):
        field = page.get_by_role("textbox", name="Timing N values")
        field.fill(text)
        field.press("Enter")
        page.get_by_role("button", name="Run timing").click()
        expect(page.get_by_text(re.compile(re.escape(text.split(", ")[1]))).first).to_be_visible(
            timeout=MESSAGE_TIMEOUT_MS
        )
        _no_script_ran_and_no_bold(page)
