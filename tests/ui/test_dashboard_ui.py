"""The served dashboard shell loads in headless Chromium without console errors."""


def test_dashboard_loads_without_console_errors(page, open_app, ui):
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_app()
    page.get_by_text("N-body Explorer").first.wait_for()
    page.screenshot(path=str(ui.results_dir / "dashboard-shell.png"))
    assert errors == []
