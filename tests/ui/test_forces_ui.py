"""Forces tab in headless Chromium: arrows toggle, the "Newtonian only" marker, a timing sweep."""

SUM_COUNTS = (
    "(name) => { const m = Bokeh.documents[0].get_model_by_name(name);"
    " return m ? Array.from(m.data.count).reduce((a, b) => a + b, 0) : -1; }"
)


def _wait_js(page, expression, arg=None, timeout=60_000):
    page.wait_for_function(expression, arg=arg, timeout=timeout)


def _source_length_is(page, name, column, predicate):
    _wait_js(
        page,
        "([name, column, predicate]) => { const m = Bokeh.documents[0].get_model_by_name(name);"
        " if (!m) return false; const n = m.data[column].length;"
        " return predicate === 'empty' ? n === 0 : n > 0; }",
        [name, column, predicate],
    )


def test_forces_tab_arrows_potential_and_timing(page, open_app, ui):
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_app()
    # Bokeh's tab headers carry no ARIA role: click the header by its class and text.
    page.locator(".bk-tab", has_text="Forces").first.click()
    ui.wait_for_model(page, "forces-hist-float64")
    _wait_js(page, f"() => ({SUM_COUNTS})('forces-hist-float64') > 0 && ({SUM_COUNTS})('forces-hist-float32') > 0")
    bodies = ui.source_length(page, "forces-bodies", "x")
    assert bodies > 2
    assert ui.source_length(page, "forces-arrows-autodiff", "x0") == bodies
    assert ui.source_length(page, "forces-arrows-hand-coded", "x0") == bodies

    # Arrows off and on again.
    # Panel's checkbox label is a div, not a <label>: find the input inside the widget.
    arrows = page.locator(".bk-Checkbox", has_text="Show force arrows").locator("input[type=checkbox]")
    arrows.click()
    _source_length_is(page, "forces-arrows-autodiff", "x0", "empty")
    arrows.click()
    _source_length_is(page, "forces-arrows-autodiff", "x0", "filled")

    # Another potential: the hand-coded kernel is marked "Newtonian only", the histogram changes.
    page.get_by_role("combobox", name="Potential").select_option("yukawa")
    _wait_js(
        page,
        "() => Bokeh.documents[0].get_model_by_name('forces-scatter-figure').title.text.includes('Newtonian only')",
    )
    page.get_by_text("Newtonian only / not applicable").first.wait_for()
    _wait_js(page, f"() => ({SUM_COUNTS})('forces-hist-float64') === 0 && ({SUM_COUNTS})('forces-hist-precision') > 0")
    assert ui.source_length(page, "forces-arrows-hand-coded", "x0") == 0
    assert ui.source_length(page, "forces-scatter", "autodiff") == 0
    page.screenshot(path=str(ui.results_dir / "forces-yukawa.png"), full_page=True)

    # A tiny timing sweep fills the table and the plot.
    ns = page.get_by_role("textbox", name="Timing N values")
    ns.fill("8")
    ns.press("Enter")
    repeats = page.get_by_role("textbox", name="Repeats")
    repeats.fill("1")
    repeats.press("Enter")
    page.get_by_role("button", name="Run timing").click()
    _source_length_is(page, "forces-timing-table", "method", "filled")
    methods = page.evaluate(
        "() => Array.from(new Set(Bokeh.documents[0].get_model_by_name('forces-timing-table').data.method))"
    )
    assert {"numpy_loop", "numpy_vectorized", "jax_autodiff", "jax_analytic"} <= set(methods)
    assert ui.source_length(page, "forces-timing-table", "method") == len(methods)  # one N
    page.get_by_text("faster than the NumPy loop").first.wait_for()
    page.screenshot(path=str(ui.results_dir / "forces-timing.png"), full_page=True)
    assert errors == []
