"""Emulator tab in headless Chromium: run a tiny sweep, train a tiny model, see the plots, and
check one point live against fresh simulations."""


def fill(page, label, value):
    box = page.get_by_role("textbox", name=label, exact=True)
    box.fill(str(value))
    box.press("Enter")


def test_train_a_tiny_emulator_from_the_tab(page, open_app, ui):
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_app()
    page.locator(".bk-tab", has_text="Emulator").first.click()
    ui.wait_for_model(page, "emulator-scatter")
    # Tiny on purpose (N = 4, 96 members, 10 steps, 2 networks of width 8): the wiring is tested.
    fill(page, "Bodies N", 4)
    fill(page, "Members M", 96)
    fill(page, "Steps (dt 0.02)", 10)
    fill(page, "Networks", 2)
    fill(page, "Width", 8)
    fill(page, "Max training steps", 100)
    page.get_by_role("button", name="Run softening × virial-ratio sweep").click()
    page.get_by_text("Ready: press").first.wait_for(timeout=240_000)
    page.get_by_role("button", name="Train emulator").click()
    page.wait_for_function(
        "() => Bokeh.documents[0].get_model_by_name('emulator-scatter').data.simulated.length > 0",
        timeout=300_000,
    )
    assert ui.source_length(page, "emulator-band", "x") == 120
    assert ui.source_length(page, "emulator-curve", "members") == 3
    page.get_by_text("MLP test RMSE").first.wait_for()
    page.get_by_role("button", name="Run the simulator here").click()
    page.wait_for_function(
        "() => Bokeh.documents[0].get_model_by_name('emulator-check').data.y.length === 8", timeout=240_000
    )
    page.get_by_text("fresh simulations inside").first.wait_for()
    page.get_by_role("button", name="Infer from this observation").click()
    page.wait_for_function(
        "() => Bokeh.documents[0].get_model_by_name('emulator-posterior').data.x.length === 201", timeout=120_000
    )
    page.get_by_text("95 % interval").first.wait_for()
    page.screenshot(path=str(ui.results_dir / "emulator-trained.png"), full_page=True)
    assert errors == []
