"""Lessons tab in headless Chromium: a shared link opens a lesson at a step; Next, Reveal and
Previous work; a chaos step draws the twin runs' separation."""


def test_link_opens_lesson_at_step_and_steps_through(page, open_app, ui):
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_app("?lesson=pythagorean_chaos&step=2")
    page.get_by_text("Step 2 of 3").first.wait_for(timeout=120_000)
    page.get_by_text("Twin runs: the same system beside a copy").first.wait_for()
    # The chaos step ran the twins: the separation curve reaches the page.
    page.wait_for_function(
        "() => { const m = Bokeh.documents[0].get_model_by_name('chaos-separation');"
        " return m !== null && m.data.t.length > 100; }",
        timeout=120_000,
    )
    answer = page.get_by_text("Answer: The separation grows by a factor e")
    assert answer.count() == 0 or not answer.first.is_visible()
    page.get_by_role("button", name="Reveal").click()
    answer.first.wait_for()
    page.get_by_role("button", name="Next ▶").click()
    page.get_by_text("Step 3 of 3").first.wait_for()
    page.get_by_text("Now move body 1 by only 1e-10").first.wait_for()
    page.get_by_role("button", name="◀ Previous").click()
    page.get_by_text("Step 2 of 3").first.wait_for()
    page.screenshot(path=str(ui.results_dir / "lessons-chaos-step.png"))
    assert errors == []



def test_one_reveal_at_a_time_and_the_dt_lesson_is_eccentric(page, open_app, ui):
    # The lesson's Reveal and Predict's Reveal showed together (issue 28, item 4).
    from playwright.sync_api import expect

    open_app("?lesson=why_dt_matters&step=1")
    page.get_by_text("Step 1 of 3").first.wait_for(timeout=120_000)
    expect(page.get_by_text("e = 0.9").first).to_be_visible(timeout=60_000)  # the run's description line
    ui.wait_for_scene_bodies(page, 2)
    reveals = page.get_by_role("button", name="Reveal", exact=True).filter(visible=True)
    expect(reveals).to_have_count(1, timeout=30_000)  # the lesson's
    page.get_by_role("button", name="Predict").click()
    expect(page.get_by_role("textbox", name="Body")).to_be_visible(timeout=30_000)
    expect(reveals).to_have_count(1, timeout=30_000)  # Predict's; the lesson's hides while predicting
    page.get_by_role("button", name="Predict").click()
    expect(page.get_by_role("textbox", name="Body")).to_be_hidden(timeout=30_000)
    expect(reveals).to_have_count(1, timeout=30_000)
