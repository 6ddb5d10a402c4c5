"""Every tab's plots quiet and readable (issue 28 items 6 and 7), applied once per view.

Empty plots: until one of a figure's sources holds data, an invisible placeholder glyph gives
each auto-ranged axis an extent (0..1, or 0.1..10 on a log axis); from no data BokehJS logs
"could not set initial ranges" and "could not determine minimum data value for log axis" at
every render of every empty plot. Log axes: tick labels with the fewest significant digits
that tell the ticks apart ("0.007", "0.0071", "1e-12"), not Bokeh's "7.000e-3".
:func:`apply_plot_defaults` does both for every plot of a Panel view (and of the views it holds
as attributes, such as a lesson's stage).
"""

from __future__ import annotations

import panel as pn
from bokeh.models import (
    ColumnDataSource,
    CustomJSTickFormatter,
    DataRange1d,
    FactorRange,
    GlyphRenderer,
    LogAxis,
    LogScale,
    LogTickFormatter,
    Plot,
    Scatter,
)

__all__ = ["PLACEHOLDER_NAME", "apply_plot_defaults", "compact_log_ticks", "hold_ranges_until_data"]

PLACEHOLDER_NAME = "empty-plot-placeholder"
LINEAR_EXTENT = (0.0, 1.0)
LOG_EXTENT = (0.1, 10.0)  # BokehJS's own fallback for an empty log axis, without its warning


def _extent(plot: Plot, axis: str) -> tuple:
    data_range = getattr(plot, f"{axis}_range")
    if isinstance(data_range, FactorRange):  # categorical: its first category
        return data_range.factors[0], data_range.factors[0]
    if not isinstance(data_range, DataRange1d):  # a fixed range: a point inside it will do
        start = data_range.start if data_range.start is not None else 1.0
        return start, start
    return LOG_EXTENT if isinstance(getattr(plot, f"{axis}_scale"), LogScale) else LINEAR_EXTENT


def _has_data(source: ColumnDataSource) -> bool:
    return any(len(column) for column in source.data.values())


def hold_ranges_until_data(plot: Plot) -> None:
    """Give ``plot``'s auto-ranged axes an extent while none of its glyphs' sources holds data.

    Idempotent; a plot with no auto-ranged axis, or a categorical one without categories, is left alone. The
    placeholder follows its sources on the server (``on_change("data")`` sees assignments,
    streams and patches), so it drops out of the ranges as soon as data arrives.
    """
    if any(renderer.name == PLACEHOLDER_NAME for renderer in plot.renderers):
        return
    ranges = (plot.x_range, plot.y_range)
    if any(isinstance(r, FactorRange) and not r.factors for r in ranges) or not any(
            isinstance(r, DataRange1d) for r in ranges):
        return
    sources = [r.data_source for r in plot.renderers
               if isinstance(r, GlyphRenderer) and isinstance(r.data_source, ColumnDataSource)]
    (x0, x1), (y0, y1) = _extent(plot, "x"), _extent(plot, "y")
    corners = {"x": [x0, x1], "y": [y0, y1]}
    placeholder = ColumnDataSource({"x": [], "y": []})
    # size 0 and fully transparent: nothing drawn, nothing for a hover tool to hit.
    plot.add_glyph(placeholder, Scatter(x="x", y="y", size=0, fill_alpha=0, line_alpha=0), name=PLACEHOLDER_NAME)
    holding = [False]

    def sync():
        hold = not any(_has_data(source) for source in sources)
        if hold != holding[0]:
            holding[0] = hold
            placeholder.data = dict(corners) if hold else {"x": [], "y": []}

    def on_data(attr, old, new):  # Bokeh's on_change signature
        sync()

    for source in sources:
        source.on_change("data", on_data)
    sync()


#: The fewest significant digits (1 to 6) that give every tick of the axis its own label; JavaScript's
#: own number printing (plain decimals down to 1e-6, exponents below).
_COMPACT_LOG_TICKS = """
for (let digits = 1; digits <= 6; digits++) {
  const labels = ticks.map((t) => String(Number(t.toPrecision(digits))));
  if (digits === 6 || new Set(labels).size === ticks.length) {
    return labels[index];
  }
}
"""


def compact_log_ticks(plot: Plot) -> None:
    """Compact tick labels on ``plot``'s log axes whose formatter is Bokeh's untouched default
    (a formatter a view chose itself is kept)."""
    for axis in (*plot.left, *plot.right, *plot.above, *plot.below):
        formatter = getattr(axis, "formatter", None)
        if (isinstance(axis, LogAxis) and type(formatter) is LogTickFormatter
                and not formatter.properties_with_values(include_defaults=False)):
            axis.formatter = CustomJSTickFormatter(code=_COMPACT_LOG_TICKS)


def apply_plot_defaults(view) -> None:
    """:func:`hold_ranges_until_data` and :func:`compact_log_ticks` on every Bokeh plot shown by
    ``view`` (a Panel object or ``Viewer``) and by the ``Viewer`` objects it holds as attributes."""
    seen: set[int] = set()
    pending = [view]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, pn.viewable.Viewer):
            pending.extend(value for value in vars(item).values() if isinstance(value, pn.viewable.Viewer))
            item = item.__panel__()
        if not isinstance(item, pn.viewable.Viewable):
            continue
        for pane in item.select(pn.pane.Bokeh):
            if pane.object is not None:
                for plot in pane.object.select({"type": Plot}):
                    hold_ranges_until_data(plot)
                    compact_log_ticks(plot)
