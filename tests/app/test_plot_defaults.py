"""app/views/plot_defaults.py without a browser: the placeholder that keeps an empty plot's
ranges defined follows its sources, and log axes get the compact formatter (the browser side,
no console entry at all, is tests/ui/test_quiet_console_ui.py)."""

import panel as pn
from bokeh.models import CustomJSTickFormatter, LogTickFormatter
from bokeh.plotting import figure

from nbody_explorer.views.plot_defaults import PLACEHOLDER_NAME, apply_plot_defaults, hold_ranges_until_data


def _placeholder(fig):
    (renderer,) = [r for r in fig.renderers if r.name == PLACEHOLDER_NAME]
    return renderer.data_source.data


def test_an_empty_plot_holds_an_extent_until_data_arrives_and_again_when_emptied():
    fig = figure(y_axis_type="log")
    line = fig.line("x", "y", source={"x": [], "y": []})
    hold_ranges_until_data(fig)
    hold_ranges_until_data(fig)  # idempotent: one placeholder
    assert _placeholder(fig) == {"x": [0.0, 1.0], "y": [0.1, 10.0]}  # linear x, log y
    line.data_source.data = {"x": [1.0, 2.0], "y": [1e-9, 1e-8]}
    assert _placeholder(fig) == {"x": [], "y": []}  # out of the way of the data's own range
    line.data_source.data = {"x": [], "y": []}
    assert _placeholder(fig)["y"] == [0.1, 10.0]
    line.data_source.stream({"x": [3.0], "y": [1e-7]})  # streamed points count too
    assert _placeholder(fig) == {"x": [], "y": []}


def test_a_categorical_axis_holds_its_first_category():
    fig = figure(y_range=["a", "b"])
    fig.hbar(y="y", right="right", source={"y": [], "right": []})
    hold_ranges_until_data(fig)
    assert _placeholder(fig) == {"x": [0.0, 1.0], "y": ["a", "a"]}
    empty = figure(x_range=[])
    empty.vbar(x="x", top="top", source={"x": [], "top": []})
    hold_ranges_until_data(empty)  # no category to stand on: left alone
    assert not [r for r in empty.renderers if r.name == PLACEHOLDER_NAME]


def test_views_and_their_subviews_get_compact_log_ticks_unless_they_chose_a_formatter():
    own = figure(x_axis_type="log")
    own.xaxis.formatter = LogTickFormatter(min_exponent=3)  # a view's own choice stays
    default = figure(x_axis_type="log", y_axis_type="log")
    for fig in (own, default):
        fig.scatter("x", "y", source={"x": [], "y": []})

    class Inner(pn.viewable.Viewer):
        def __panel__(self):
            return pn.pane.Bokeh(default)

    class Outer(pn.viewable.Viewer):
        def __init__(self, **params):
            super().__init__(**params)
            self.inner = Inner()  # a lesson's stage: held, not necessarily shown yet

        def __panel__(self):
            return pn.Column(pn.pane.Bokeh(own))

    apply_plot_defaults(Outer())
    assert type(own.xaxis[0].formatter) is LogTickFormatter
    assert isinstance(default.xaxis[0].formatter, CustomJSTickFormatter)
    assert isinstance(default.yaxis[0].formatter, CustomJSTickFormatter)
    assert _placeholder(own) and _placeholder(default)
