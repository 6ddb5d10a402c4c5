"""Forces tab: autodiff against hand-coded forces on the current configuration, and timing.

Plain Bokeh models in ``pn.pane.Bokeh`` (the browser tests read them by name, all
``forces-*``): the scene with force arrows, |F| autodiff against |F| hand-coded, the
histogram of log10 relative differences in float64 and float32, and the timing sweep (ms vs
N on log-log axes, compile time apart, a table). Served, the comparison and the sweep run on
the process's worker pool through the session runner (app/runtime/), never on the event
loop; their results reach the page under the document lock.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import panel as pn
import param
from bokeh.models import (
    Arrow,
    ColumnDataSource,
    DataTable,
    HoverTool,
    NormalHead,
    NumberFormatter,
    Span,
    TableColumn,
    Title,
    Whisker,
)
from bokeh.plotting import figure

from nbody_explorer.runtime.messages import escape_markdown
from nbody_explorer.runtime.view import SessionView
from nbody_explorer.state.forces import FORCES_MAX_BODIES, ForcesState, log10_histogram, timing_method_names
from nbody_explorer.state.simulate import preset_label

__all__ = ["ForcesView"]

AUTODIFF_COLOR = "#d62728"
HAND_CODED_COLOR = "#1f77b4"
DTYPE_COLORS = {"float64": "#1f77b4", "float32": "#ff7f0e"}
PRECISION_COLOR = "#555555"
METHOD_COLORS = ["#7f7f7f", "#8c564b", "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#e377c2", "#17becf"]
HIST_EDGES = np.arange(-18.0, 0.25, 0.25)  # log10 relative difference bins; exact zeros go left
ARROW_FRACTION = 0.08  # typical arrow length as a fraction of the scene's span
_TOOLS = "pan,wheel_zoom,box_zoom,reset,save"


def _method_color(method: str) -> str:
    names = timing_method_names()
    index = names.index(method) if method in names else len(names)
    return METHOD_COLORS[index % len(METHOD_COLORS)]


class ForcesView(SessionView):
    """The Forces tab over one :class:`~nbody_explorer.state.forces.ForcesState` per session."""

    state = param.ClassSelector(class_=ForcesState, doc="Force comparison and timing shown by this view.")

    def __init__(self, state: ForcesState | None = None, **params):
        super().__init__(label="Forces", **params)
        # Served, the comparison is computed on the pool, never on the event loop.
        self.state = state or ForcesState(submit=self._submit_comparison if self.served else None)
        self._build_plots()
        self._build_widgets()
        self._layout = self._build_layout()
        self.state.param.watch(self.runner.locked(self._on_results), ["comparisons", "dtype", "show_arrows", "computing"])
        self.state.param.watch(self._on_potential, ["potential", "preset"])
        self.state.param.watch(self._on_error, ["error_count"])
        self._redraw()
        self._on_potential()
        if self.state.timing is not None:
            self._show_timing()

    def _submit_comparison(self, work, done, failed) -> None:
        """``ForcesState``'s ``submit``: ``work()`` as this view's "comparison" job (on the pool;
        asked for again if a reconnect drops it: :meth:`run_job`), callbacks in the session."""
        self.run_job("comparison", lambda job: work(), done=done, failed=failed)

    # ------------------------------------------------------------------ plots
    def _build_plots(self) -> None:
        self.body_source = ColumnDataSource({"x": [], "y": [], "mass": [], "size": []}, name="forces-bodies")
        empty_arrows = {"x0": [], "y0": [], "x1": [], "y1": []}
        self.autodiff_arrows = ColumnDataSource(dict(empty_arrows), name="forces-arrows-autodiff")
        self.hand_coded_arrows = ColumnDataSource(dict(empty_arrows), name="forces-arrows-hand-coded")
        scene = figure(
            name="forces-scene", title="Force on each body (x-y projection)", match_aspect=True,
            height=420, width=440, tools=_TOOLS, active_scroll="wheel_zoom",
            x_axis_label="x (length units)", y_axis_label="y (length units)",
        )
        self.scene_subtitle = Title(text="", text_font_style="normal", text_font_size="12px")
        scene.add_layout(self.scene_subtitle, "above")
        bodies = scene.scatter("x", "y", size="size", source=self.body_source, color="#333333", alpha=0.7)
        scene.add_tools(HoverTool(renderers=[bodies], tooltips=[("mass", "@mass{0.000e}")]))
        scene.add_layout(Arrow(
            end=NormalHead(size=7, fill_color=AUTODIFF_COLOR, line_color=AUTODIFF_COLOR),
            x_start="x0", y_start="y0", x_end="x1", y_end="y1", source=self.autodiff_arrows,
            line_color=AUTODIFF_COLOR, line_width=2.5, name="forces-arrows-autodiff-glyph",
        ))
        scene.add_layout(Arrow(
            end=NormalHead(size=5, fill_color=HAND_CODED_COLOR, line_color=HAND_CODED_COLOR),
            x_start="x0", y_start="y0", x_end="x1", y_end="y1", source=self.hand_coded_arrows,
            line_color=HAND_CODED_COLOR, line_width=1.2, line_dash="dashed", name="forces-arrows-hand-coded-glyph",
        ))
        self.scene = scene

        self.scatter_source = ColumnDataSource(
            {"hand_coded": [], "autodiff": [], "relative_difference": [], "body": []}, name="forces-scatter"
        )
        self.diagonal_source = ColumnDataSource({"x": [], "y": []}, name="forces-diagonal")
        scatter = figure(
            name="forces-scatter-figure", title="", x_axis_type="log", y_axis_type="log",
            height=420, width=420, tools=_TOOLS, x_axis_label="|F| hand-coded (force units)", y_axis_label="|F| autodiff (force units)",
        )
        scatter.line("x", "y", source=self.diagonal_source, color="#999999", line_dash="dashed", legend_label="y = x")
        points = scatter.scatter(
            "hand_coded", "autodiff", source=self.scatter_source, size=6, color=AUTODIFF_COLOR, alpha=0.7,
            legend_label="bodies",
        )
        scatter.add_tools(HoverTool(renderers=[points], tooltips=[
            ("body", "@body"), ("|F| hand-coded", "@hand_coded{0.0000000e}"),
            ("|F| autodiff", "@autodiff{0.0000000e}"), ("relative difference", "@relative_difference{0.00e}"),
        ]))
        scatter.legend.location = "top_left"
        self.scatter = scatter

        edges = HIST_EDGES
        self.hist_sources = {
            key: ColumnDataSource(
                {"left": edges[:-1], "right": edges[1:], "count": np.zeros(len(edges) - 1, dtype=int)},
                name=f"forces-hist-{key}",
            )
            for key in ("float64", "float32", "precision")
        }
        histogram = figure(
            name="forces-histogram", title="", height=360, width=880, tools=_TOOLS,
            x_axis_label="log10 relative difference per body (dashed: machine epsilon of float64, float32)",
            y_axis_label="bodies",
        )
        self.histogram_subtitle = Title(text="", text_font_style="normal", text_font_size="12px")
        histogram.add_layout(self.histogram_subtitle, "above")
        self._hist_renderers = {}
        for key in ("float64", "float32"):
            self._hist_renderers[key] = histogram.quad(
                top="count", bottom=0, left="left", right="right", source=self.hist_sources[key],
                fill_color=DTYPE_COLORS[key], line_color="white", fill_alpha=0.6, legend_label=key,
            )
        self._hist_renderers["precision"] = histogram.quad(
            top="count", bottom=0, left="left", right="right", source=self.hist_sources["precision"],
            fill_alpha=0.0, line_color=PRECISION_COLOR, line_width=2, line_dash="dotted",
            legend_label="float32 vs float64 autodiff",
        )
        for dtype, color in DTYPE_COLORS.items():
            eps = np.finfo(dtype).eps
            histogram.add_layout(Span(location=float(np.log10(eps)), dimension="height", line_color=color,
                                      line_dash="dashed", line_width=1.5))
        # Beside the plot, not over it: at top_left it covered the float64 bars (issue 28 item 7).
        histogram.add_layout(histogram.legend[0], "right")
        self.histogram = histogram

        self.timing_points = ColumnDataSource(
            {"method": [], "n": [], "run_ms": [], "run_min_ms": [], "run_max_ms": [], "color": [], "fill": [], "kind": []},
            name="forces-timing-points",
        )
        self.timing_lines = ColumnDataSource({"xs": [], "ys": [], "color": [], "method": []}, name="forces-timing-lines")
        self.compile_points = ColumnDataSource({"method": [], "n": [], "compile_ms": [], "color": []},
                                               name="forces-compile-points")
        self.timing_table_source = ColumnDataSource(
            {"method": [], "n": [], "run_ms": [], "spread": [], "compile_ms": [], "first_call_ms": [], "speedup": [],
             "note": []},
            name="forces-timing-table",
        )
        timing = figure(
            name="forces-timing-figure", title="Time per force evaluation (steady state, float64, Newtonian)",
            x_axis_type="log", y_axis_type="log", height=380, width=560, tools=_TOOLS,
            x_axis_label="N (bodies)", y_axis_label="ms per evaluation",
        )
        timing.multi_line("xs", "ys", source=self.timing_lines, line_color="color", line_width=2)
        timing_markers = timing.scatter(
            "n", "run_ms", source=self.timing_points, line_color="color", fill_color="color", fill_alpha="fill",
            size=8, line_width=2, legend_field="method", marker="circle",
        )
        # The spread of the repeats around each median: fastest to slowest call.
        timing.add_layout(Whisker(base="n", lower="run_min_ms", upper="run_max_ms", source=self.timing_points,
                                  line_color="color", name="forces-timing-spread"))
        timing.add_tools(HoverTool(renderers=[timing_markers], tooltips=[
            ("method", "@method"), ("N", "@n"), ("median ms", "@run_ms{0.000e}"),
            ("fastest–slowest ms", "@run_min_ms{0.000e} – @run_max_ms{0.000e}"), ("", "@kind"),
        ]))
        timing.legend.location = "top_left"
        compile_fig = figure(
            name="forces-compile-figure", title="JAX compile time (first call minus steady state)",
            x_axis_type="log", height=380, width=420, tools=_TOOLS, x_axis_label="N (bodies)",
            y_axis_label="compile ms",
        )
        compile_fig.scatter("n", "compile_ms", source=self.compile_points, color="color", size=9,
                            legend_field="method")
        compile_fig.legend.location = "top_left"
        number = NumberFormatter(format="0,0.000")
        self.timing_table = DataTable(
            source=self.timing_table_source, name="forces-timing-table-widget", height=260, width=980,
            reorderable=False,  # column drag needs jquery-ui, which BokehJS warns is missing
            index_position=None, columns=[
                TableColumn(field="method", title="method"),
                TableColumn(field="n", title="N"),
                TableColumn(field="run_ms", title="run ms (median)", formatter=number),
                TableColumn(field="spread", title="fastest – slowest ms"),
                TableColumn(field="compile_ms", title="compile ms", formatter=number),
                TableColumn(field="first_call_ms", title="first call ms", formatter=number),
                TableColumn(field="speedup", title="speedup vs NumPy loop", formatter=NumberFormatter(format="0,0.0")),
                TableColumn(field="note", title="note"),
            ],
        )
        self.timing_figure, self.compile_figure = timing, compile_fig

    # ------------------------------------------------------------------ widgets
    def _build_widgets(self) -> None:
        state = self.state
        self.preset_select = pn.widgets.Select.from_param(  # the Simulate tab's friendly names
            state.param.preset, label="Preset", options={preset_label(n): n for n in state.param.preset.objects})
        self.num_bodies_input = pn.widgets.IntInput.from_param(
            state.param.num_bodies, label=f"Bodies N (2 to {FORCES_MAX_BODIES})", width=135
        )
        # Two boxes in one row of the 330 px sidebar: 135 px each (at the default 300 px the
        # second one sat under the plots, issue 14).
        self.seed_input = pn.widgets.IntInput.from_param(state.param.seed, label="Seed", width=135)
        self.potential_select = pn.widgets.Select.from_param(state.param.potential, label="Potential")
        self.softening_input = pn.widgets.FloatInput.from_param(state.param.softening, label="Softening ε (length units)", step=0.005)
        self.screening_input = pn.widgets.FloatInput.from_param(
            state.param.screening_length, label="Screening length λ (Yukawa)", step=0.1
        )
        self.power_input = pn.widgets.FloatInput.from_param(state.param.power_index, label="Power index p", step=0.1)
        self.dtype_select = pn.widgets.RadioButtonGroup.from_param(state.param.dtype)
        self.arrows_toggle = pn.widgets.Checkbox.from_param(state.param.show_arrows, label="Show force arrows")

        self.timing_ns_input = pn.widgets.TextInput.from_param(state.param.timing_ns, label="Timing N values")
        self.timing_methods_select = pn.widgets.CheckBoxGroup.from_param(state.param.timing_methods, inline=False)
        self.timing_repeats_input = pn.widgets.IntInput.from_param(state.param.timing_repeats, label="Repeats", width=135)
        self.loop_cap_input = pn.widgets.IntInput.from_param(
            state.param.numpy_loop_max_n, label="NumPy loop up to N", width=135
        )
        self.run_timing_button = pn.widgets.Button(label="Run timing", color="primary")
        self.run_timing_button.on_click(self.runner.locked(lambda _: self.run_timing()))
        self.progress = pn.indicators.Progress(value=0, max=1, sizing_mode="stretch_width", bar_color="primary")
        self.timing_status = pn.pane.Markdown("Timing not run yet: press **Run timing**.", sizing_mode="stretch_width")
        # The result where the user looks, under the button (the plots are below the fold).
        self.timing_summary = pn.pane.Markdown("", name="forces-timing-summary", sizing_mode="stretch_width",
                                               visible=False)

        # The plots' row is wider than 1280 px screens leave the tab: the summary's width is capped
        # at the viewport's (it wrapped past the right edge, issue 14).
        self.status = pn.pane.Markdown("", sizing_mode="stretch_width",
                                       stylesheets=[":host { max-width: calc(100vw - 380px); }"])
        self.message = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")

    def _build_layout(self):
        label = partial(pn.pane.Markdown, margin=(4, 10, -8, 10))
        controls = pn.Column(
            pn.Card(
                self.preset_select, pn.Row(self.num_bodies_input, self.seed_input), self.potential_select,
                self.softening_input, self.screening_input, self.power_input,
                label("Precision of arrows and scatter"), self.dtype_select, self.arrows_toggle,
                title="Configuration", collapsible=True, sizing_mode="stretch_width",
            ),
            pn.Card(
                self.timing_ns_input, label("Methods"), self.timing_methods_select,
                pn.Row(self.timing_repeats_input, self.loop_cap_input), self.run_timing_button,
                self.progress, self.timing_summary,
                title="Timing", collapsible=True, sizing_mode="stretch_width",
            ),
            width=330, scroll=True, sizing_mode="stretch_height",
        )
        self.timing_heading = pn.pane.Markdown("### Timing against N", margin=(10, 10, 0, 10),
                                               name="forces-timing-heading")
        main = pn.Column(
            self.message,
            self.status,
            pn.Row(pn.pane.Bokeh(self.scene), pn.pane.Bokeh(self.scatter)),
            pn.pane.Bokeh(self.histogram),
            self.timing_heading,
            self.timing_status,
            pn.Row(pn.pane.Bokeh(self.timing_figure), pn.pane.Bokeh(self.compile_figure)),
            pn.pane.Bokeh(self.timing_table),
            sizing_mode="stretch_both", scroll=True,
        )
        self._main = main
        return pn.Row(controls, main, sizing_mode="stretch_both")

    def __panel__(self):
        return self._layout

    # ------------------------------------------------------------------ messages
    def _on_error(self, *_events) -> None:
        text = self.state.error
        if text:
            self.in_session(partial(self.notify, f"Refused: {text}. The previous configuration is kept."))

    # ------------------------------------------------------------------ force comparison
    def _on_potential(self, *_events) -> None:
        potential = self.state.potential
        self.screening_input.visible = potential == "yukawa"
        self.power_input.visible = potential == "power_law"
        self.num_bodies_input.disabled = self.seed_input.disabled = not self.state.scalable
        # A preset with a fixed count shows none (a greyed-out default N misread as the count).
        self.num_bodies_input.visible = self.seed_input.visible = self.state.scalable

    def _on_results(self, *_events) -> None:
        self.message.visible = False
        self._redraw()

    def _redraw(self) -> None:
        state = self.state
        comparisons = state.comparisons
        if state.computing or not comparisons:
            self.status.object = "Computing the forces of this configuration ..."
            if not comparisons:
                return
        current = state.current
        position = current.position
        span = float(np.ptp(position[:, :2], axis=0).max()) or 1.0
        mass = current.mass
        equal = np.ptp(mass) <= 1e-12 * mass.max()
        size = np.full(len(mass), 7.0) if equal else 4.0 + 10.0 * np.sqrt(mass / mass.max())
        self.body_source.data = {"x": position[:, 0], "y": position[:, 1], "mass": mass, "size": size}
        self.autodiff_arrows.data = self._arrows(position, current.autodiff, span)
        self.hand_coded_arrows.data = self._arrows(position, current.hand_coded, span)

        status = current.hand_coded_status
        marker = f"Hand-coded kernel: {status}" if status else None
        n = len(mass)
        if current.applicable:
            magnitude_hc = np.linalg.norm(current.hand_coded, axis=1)
            magnitude_ad = np.linalg.norm(current.autodiff, axis=1)
            self.scatter_source.data = {
                "hand_coded": magnitude_hc, "autodiff": magnitude_ad,
                "relative_difference": current.relative_difference, "body": np.arange(n),
            }
            positive = magnitude_hc[magnitude_hc > 0]
            low, high = (positive.min(), positive.max()) if len(positive) else (1e-3, 1.0)
            self.diagonal_source.data = {"x": [low, high], "y": [low, high]}
            self.scatter.title.text = f"|F| autodiff vs hand-coded ({state.dtype}, {n} bodies)"
        else:
            self.scatter_source.data = {"hand_coded": [], "autodiff": [], "relative_difference": [], "body": []}
            self.diagonal_source.data = {"x": [], "y": []}
            self.scatter.title.text = "Hand-coded: Newtonian only / not applicable to " + repr(state.potential)
        self.scene.title.text = f"Force on each body ({state.potential}, {state.dtype}, x-y projection)"
        self.scene_subtitle.text = (
            "arrows hidden" if not state.show_arrows
            else "autodiff: red; hand-coded: " + ("blue dashed" if current.applicable else "Newtonian only")
            + "; length ~ sqrt|F|"
        )

        medians, zeros = {}, 0
        for dtype in ("float64", "float32"):
            values = comparisons[dtype].relative_difference
            counts, exact = log10_histogram(values, edges=HIST_EDGES)
            zeros += exact
            self.hist_sources[dtype].data = dict(self.hist_sources[dtype].data, count=counts)
            if values is not None:
                medians[dtype] = float(np.median(values))
        counts, _ = log10_histogram(state.float32_difference, edges=HIST_EDGES)
        self.hist_sources["precision"].data = dict(self.hist_sources["precision"].data, count=counts)
        precision_median = float(np.median(state.float32_difference))
        if current.applicable:
            self.histogram.title.text = "|F autodiff - F hand-coded| / |F hand-coded| per body"
            self.histogram_subtitle.text = (
                f"median {medians['float64']:.1e} in float64, {medians['float32']:.1e} in float32; "
                f"dotted: float32 vs float64 autodiff (median {precision_median:.1e})"
                + (f"; {zeros} exact zeros in the leftmost bin" if zeros else "")
            )
            summary = (
                f"**Hand-coded kernel applies (Newtonian).** Median relative difference autodiff vs hand-coded: "
                f"**{medians['float64']:.1e}** in float64, **{medians['float32']:.1e}** in float32 "
                f"({medians['float32'] / max(medians['float64'], 1e-300):.0e} times larger)."
            )
        else:
            self.histogram.title.text = f"Hand-coded: Newtonian only / not applicable to {state.potential!r}"
            self.histogram_subtitle.text = (
                f"so only float32 vs float64 autodiff is shown (median {precision_median:.1e})"
            )
            summary = (
                f"**{marker}.** Autodiff forces come from -grad U of the {state.potential!r} potential with no "
                f"new force code; the histogram shows float32 against float64 autodiff (median "
                f"{precision_median:.1e})."
            )
        self.status.object = (
            summary + f" Floor of the relative difference: {comparisons['float64'].floor:.2e}"
            " (1e-3 x RMS |F|) for bodies whose net force cancels." if current.applicable else summary
        )

    def _arrows(self, position, force, span) -> dict:
        if force is None or not self.state.show_arrows:
            return {"x0": [], "y0": [], "x1": [], "y1": []}
        force = np.asarray(force, dtype=np.float64)[:, :2]
        magnitude = np.linalg.norm(force, axis=1)
        typical = float(np.median(magnitude[magnitude > 0])) if (magnitude > 0).any() else 1.0
        # Length ~ sqrt(|F| / median |F|), capped at 3x: readable when |F| spans decades.
        length = ARROW_FRACTION * span * np.minimum(np.sqrt(magnitude / typical), 3.0)
        direction = force / np.where(magnitude > 0, magnitude, 1.0)[:, None]
        end = position[:, :2] + length[:, None] * direction
        return {"x0": position[:, 0], "y0": position[:, 1], "x1": end[:, 0], "y1": end[:, 1]}

    # ------------------------------------------------------------------ timing
    def run_timing(self) -> None:
        """Start the timing sweep (a worker thread when served; blocking otherwise)."""
        if self.job_running("timing", message="A timing sweep is already running."):
            return
        try:  # refused in words before it starts: a bad N list, or over the CPU budget
            self.state.check_timing_cost()
        except ValueError as error:  # shown as every refusal of this tab is (_on_error)
            self.state.param.update(error=str(error), error_count=self.state.error_count + 1)
            self._after_timing(False)
            return
        self.run_timing_button.disabled = True
        self.progress.value, self.progress.max = 0, 1
        self.timing_status.object = "Timing: starting ..."
        self.timing_summary.visible = False

        def work(job):
            def progress(done, total, message):
                job.checkpoint()  # stops between two measurements; lets other sessions in
                self.in_session(partial(self._set_progress, done, total, message))

            return self.state.run_timing(progress)

        def failed(error):
            self.notify(f"Timing failed: {error}")
            self._after_timing(False)

        self.run_job("timing", work, done=lambda result: self._after_timing(result is not None), failed=failed)

    def _set_progress(self, done: int, total: int, message: str) -> None:
        self.progress.max = total
        self.progress.value = done
        self.timing_status.object = f"Timing {done}/{total}: {escape_markdown(message)}"

    def _after_timing(self, ok: bool) -> None:
        self.run_timing_button.disabled = False
        if ok:
            self._show_timing()
        else:
            # The error quotes the typed "Timing N values": text, never HTML.
            self.timing_status.object = "Timing not run: " + escape_markdown(self.state.error or "see the message above")

    def _show_timing(self) -> None:
        result = self.state.timing
        self.progress.max = max(len(result.records), 1)
        self.progress.value = len(result.records)
        table = {key: [] for key in self.timing_table_source.data}
        points = {key: [] for key in self.timing_points.data}
        compile_points = {key: [] for key in self.compile_points.data}
        lines = {key: [] for key in self.timing_lines.data}
        for method in result.methods:
            records = [r for r in result.records if r.method == method]
            color = _method_color(method)
            lines["xs"].append([r.num_bodies for r in records])
            lines["ys"].append([r.run_ms for r in records])
            lines["color"].append(color)
            lines["method"].append(method)
            for r in records:
                points["method"].append(method)
                points["n"].append(r.num_bodies)
                points["run_ms"].append(r.run_ms)
                points["run_min_ms"].append(r.run_ms if r.run_min_ms is None else r.run_min_ms)
                points["run_max_ms"].append(r.run_ms if r.run_max_ms is None else r.run_max_ms)
                points["color"].append(color)
                points["fill"].append(0.0 if r.extrapolated else 1.0)
                points["kind"].append(f"extrapolated as N^2 from N={r.extrapolated_from}" if r.extrapolated else "measured")
                if r.compile_ms is not None:
                    compile_points["method"].append(method)
                    compile_points["n"].append(r.num_bodies)
                    compile_points["compile_ms"].append(r.compile_ms)
                    compile_points["color"].append(color)
                table["method"].append(method)
                table["n"].append(r.num_bodies)
                table["run_ms"].append(r.run_ms)
                table["spread"].append("" if r.run_min_ms is None else f"{r.run_min_ms:.3g} – {r.run_max_ms:.3g}")
                table["compile_ms"].append(np.nan if r.compile_ms is None else r.compile_ms)
                table["first_call_ms"].append(np.nan if r.first_call_ms is None else r.first_call_ms)
                table["speedup"].append(np.nan if r.speedup_vs_numpy_loop is None else r.speedup_vs_numpy_loop)
                notes = []
                if r.extrapolated:
                    notes.append(f"extrapolated (N^2 from N={r.extrapolated_from})")
                elif r.speedup_extrapolated:
                    notes.append("speedup vs extrapolated loop")
                table["note"].append("; ".join(notes))
        self.timing_lines.data = lines
        self.timing_points.data = points
        self.compile_points.data = compile_points
        self.timing_table_source.data = table
        self.timing_status.object = (
            f"**{self.state.timing_message}** Run time is the median of {result.repeats} steady-state calls "
            f"on {result.device} (whiskers and the table: fastest to slowest call); compile time (first call "
            f"minus steady state) is plotted apart. The NumPy loop is measured up to N = "
            f"{result.numpy_loop_max_n} and extrapolated as N^2 above (hollow markers, marked in the table)."
        )
        self.timing_summary.object = timing_summary(result)
        self.timing_summary.visible = True
        # Bring the plots into view: the button sits at the top of the sidebar, they far below it.
        self._main.scroll_to(list(self._main.objects).index(self.timing_heading))


def timing_summary(result) -> str:
    """Markdown for beside the Run timing button: at the largest N, each measured method's median
    time with the spread of its repeats, fastest first."""
    largest = max(result.num_bodies)
    records = sorted((r for r in result.records if r.num_bodies == largest and not r.extrapolated),
                     key=lambda r: r.run_ms)
    lines = [f"**Done** (median of {result.repeats} calls, fastest – slowest) at N = {largest}:"]
    for r in records:
        spread = "" if r.run_min_ms is None else f" ({r.run_min_ms:.3g} – {r.run_max_ms:.3g})"
        lines.append(f"- {r.method}: {r.run_ms:.3g} ms{spread}")
    lines.append("Plots and table: *Timing against N*, right.")
    return "\n".join(lines)
