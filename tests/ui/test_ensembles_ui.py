"""Ensembles tab in headless Chromium: the issue's "done" check at the tab's defaults.

Sweep softening over 256 Plummer spheres (N = 32, 200 steps) from the browser, see the
outcome plot, the histograms and the measured timing against a Python loop over the same
members, and download the npz.
"""

import json

import numpy as np

SUM_COUNTS = (
    "(name) => { const m = Bokeh.documents[0].get_model_by_name(name);"
    " return m ? Array.from(m.data.count).reduce((a, b) => a + b, 0) : -1; }"
)


def test_softening_sweep_over_256_plummer_spheres_and_download(page, open_app, ui, tmp_path):
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_app()
    # Bokeh's tab headers carry no ARIA role: click the header by its class and text.
    page.locator(".bk-tab", has_text="Ensembles").first.click()
    ui.wait_for_model(page, "ensembles-points")
    assert ui.source_length(page, "ensembles-points", "x") == 0

    # Bad input first: a notification, and nothing runs.
    members = page.get_by_role("textbox", name="Members M")
    members.fill("0")
    members.press("Enter")
    page.get_by_role("button", name="Run ensemble").click()
    page.get_by_text("Refused: number of ensemble members must be at least 1").first.wait_for()
    assert ui.source_length(page, "ensembles-points", "x") == 0
    members.fill("256")
    members.press("Enter")

    # The defaults: Plummer, N = 32, 256 members, 200 steps, softening 0.001..0.1 (log).
    page.get_by_role("button", name="Run ensemble").click()
    page.wait_for_function(
        "() => Bokeh.documents[0].get_model_by_name('ensembles-points').data.x.length === 256",
        timeout=240_000,
    )
    page.wait_for_function(f"() => ({SUM_COUNTS})('ensembles-hist-max_energy_error') === 256")
    assert ui.source_length(page, "ensembles-speedup", "seconds") == 2
    # The loop is timed over the same 256 members (no extrapolation) and the verdict is
    # stated as measured, faster or slower, in the paragraph and the chart's title.
    page.get_by_text("Python loop over the jitted single simulation").first.wait_for()
    page.get_by_text("s for the same 256 members, one after another").first.wait_for()
    speed_title = page.evaluate(
        "() => Bokeh.documents[0].get_model_by_name('ensembles-speedup-figure').title.text"
    )
    assert speed_title.startswith("Wall time of this ensemble, compile excluded: the vmap runner is ")
    assert speed_title.endswith(("x faster", "x slower"))
    factors = page.evaluate(
        "() => Bokeh.documents[0].get_model_by_name('ensembles-speedup-figure').y_range.factors"
    )
    assert factors == ["Python loop (same members)", "vmap runner"]
    x_label = page.evaluate(
        "() => Bokeh.documents[0].get_model_by_name('ensembles-outcome').below[0].axis_label"
    )
    assert x_label == "log10 softening"
    page.screenshot(path=str(ui.results_dir / "ensembles-softening-sweep.png"), full_page=True)

    # The download link gives the npz of this run.
    with page.expect_download(timeout=60_000) as download_info:
        page.get_by_text("Download data (.npz)").first.click()
    download = download_info.value
    assert download.suggested_filename == "ensemble_plummer_softening_256.npz"
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    data = np.load(path)
    # Requested inputs only: dt (fixed) and softening (swept); the Plummer sphere's virial
    # ratio is not requested here, so it has no column (no NaN columns in the file).
    assert data["parameters"].shape == (256, 2)
    assert data["parameter_names"].tolist() == ["dt", "softening"]
    assert data["parameter_swept"].tolist() == [False, True]
    np.testing.assert_allclose(data["param_softening"], np.geomspace(0.001, 0.1, 256))
    assert data["summaries"].shape[0] == 256 and data["finite"].all()
    metadata = json.loads(str(data["metadata"]))
    assert metadata["spec"]["num_bodies"] == 32 and metadata["spec"]["num_steps"] == 200
    assert errors == []
