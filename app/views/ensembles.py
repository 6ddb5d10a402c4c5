"""Ensembles tab: sweep a parameter over many vmapped members, plot outcomes, download.

Plain Bokeh models in ``pn.pane.Bokeh`` (the browser tests read them by name, all
``ensembles-*``): outcome against the swept parameter on log10 axes with a fitted slope per
integrator (energy error against dt shows each integrator's order), histograms of four
outcomes, and the measured time of the vmapped run against a Python loop over the jitted
single simulation. A run is a job of the view's session runner (app/runtime/): it computes on
the process's pool and its progress and results reach the page under the document lock, so
the server never blocks.
"""

from __future__ import annotations

import io
from functools import partial

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, HoverTool, Title
from bokeh.plotting import figure

from nbody_explorer.limits import LIMITS
from nbody_explorer.runtime.view import SessionView
from nbody_explorer.state.ensembles import INTEGRATOR_NAMES, NO_SWEEP, EnsemblesState, integrator_color, outcome_label
from nbody_explorer.state.simulate import preset_label

__all__ = ["EnsemblesView", "HISTOGRAMS", "INTEGRATOR_COLORS", "integrator_color"]



#: Integrator name -> colour at import time (use :func:`integrator_color` for live records).
INTEGRATOR_COLORS = {name: integrator_color(name) for name in INTEGRATOR_NAMES}
#: Outcomes with a histogram each; True = histogram of log10 of the value.
HISTOGRAMS = {
    "max_energy_error": True,
    "final_virial_ratio": False,
    "lagrangian_radius_50": False,
    "min_pair_distance": True,
}
HISTOGRAM_BINS = 20
_TOOLS = "pan,wheel_zoom,box_zoom,reset,save"
# Outcomes drawn on a log10 axis (positive and spanning decades).
_LOG_OUTCOMES = {"final_energy_error", "max_energy_error", "min_pair_distance", "momentum_drift", "angular_momentum_drift"}


def _log10(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)


class EnsemblesView(SessionView):
    """The Ensembles tab over one :class:`~nbody_explorer.state.ensembles.EnsemblesState` per session."""

    state = param.ClassSelector(class_=EnsemblesState, doc="Ensemble inputs and results shown by this view.")

    def __init__(self, state: EnsemblesState | None = None, **params):
        super().__init__(label="Ensembles", state=state or EnsemblesState(), **params)
        self._build_plots()
        self._build_widgets()
        self._layout = self._build_layout()
        self.state.param.watch(self._on_result, ["run_count"])
        self.state.param.watch(self.runner.locked(self._draw_outcome), ["outcome"])
        self.state.param.watch(self._on_error, ["error_count"])
        self.state.param.watch(self._on_system, ["system", "parameter"])
        self._on_system()
        if self.state.result is not None:
            self._on_result()

    # ------------------------------------------------------------------ plots
    def _build_plots(self) -> None:
        self.points = ColumnDataSource(
            {"x": [], "y": [], "value_x": [], "value_y": [], "integrator": [], "label": [], "color": [], "member": []},
            name="ensembles-points",
        )
        self.fits = ColumnDataSource({"xs": [], "ys": [], "color": []}, name="ensembles-fits")
        outcome = figure(
            name="ensembles-outcome", title="Run an ensemble to see its outcomes", height=420, width=620,
            tools=_TOOLS, active_scroll="wheel_zoom", x_axis_label="swept parameter", y_axis_label="outcome",
        )
        self.outcome_subtitle = Title(text="", text_font_style="normal", text_font_size="12px")
        outcome.add_layout(self.outcome_subtitle, "above")
        outcome.multi_line("xs", "ys", source=self.fits, line_color="color", line_width=2, line_dash="dashed")
        markers = outcome.scatter("x", "y", source=self.points, color="color", size=6, alpha=0.7, legend_field="label")
        outcome.add_tools(HoverTool(renderers=[markers], tooltips=[
            ("member", "@member"), ("integrator", "@integrator"), ("parameter", "@value_x{0.000e}"),
            ("outcome", "@value_y{0.000e}"),
        ]))
        outcome.legend.location = "top_left"
        self.outcome_figure = outcome

        self.hist_sources, self.hist_figures = {}, {}
        for name, log in HISTOGRAMS.items():
            source = ColumnDataSource({"left": [], "right": [], "count": []}, name=f"ensembles-hist-{name}")
            fig = figure(
                name=f"ensembles-hist-figure-{name}", height=220, width=300, tools="save,reset",
                title=("log10 " if log else "") + outcome_label(name), y_axis_label="members",
            )
            fig.quad(top="count", bottom=0, left="left", right="right", source=source,
                     fill_color="#1f4e79", line_color="white", fill_alpha=0.8)
            self.hist_sources[name], self.hist_figures[name] = source, fig

        self.speedup_source = ColumnDataSource({"method": [], "seconds": [], "color": []}, name="ensembles-speedup")
        speed = figure(
            name="ensembles-speedup-figure", y_range=["Python loop (same members)", "vmap runner"], height=180,
            width=620,
            title="Run time of this ensemble, compile excluded", x_axis_label="seconds", tools="save",
        )
        speed.hbar(y="method", right="seconds", height=0.6, color="color", source=self.speedup_source)
        self.speedup_figure = speed

    # ------------------------------------------------------------------ widgets
    def _build_widgets(self) -> None:
        state = self.state
        self.system_select = pn.widgets.Select.from_param(  # the Simulate tab's friendly names
            state.param.system, label="System", options={preset_label(n): n for n in state.param.system.objects})
        self.num_bodies_input = pn.widgets.IntInput.from_param(
            state.param.num_bodies, label=f"Bodies N per member (≤ {LIMITS.max_ensemble_bodies})"
        )
        self.members_input = pn.widgets.IntInput.from_param(
            state.param.num_members, label=f"Members M (≤ {LIMITS.max_ensemble_members})"
        )
        self.steps_input = pn.widgets.IntInput.from_param(state.param.num_steps, label="Steps (at base dt)")
        self.dt_input = pn.widgets.FloatInput.from_param(state.param.dt, label="Base dt", step=1e-4, format="0.[00000]")
        self.softening_input = pn.widgets.FloatInput.from_param(state.param.softening, label="Base softening",
                                                                step=1e-3, format="0.[00000]")
        self.parameter_select = pn.widgets.Select.from_param(state.param.parameter, label="Swept parameter")
        self.low_input = pn.widgets.FloatInput.from_param(state.param.low, label="From", format="0.[00000]")
        self.high_input = pn.widgets.FloatInput.from_param(state.param.high, label="To", format="0.[00000]")
        self.log_toggle = pn.widgets.Checkbox.from_param(state.param.log_scale, label="Log spacing")
        # Inline boxes wrap onto a second line in the 340 px sidebar ("yoshida4_" was cut at its edge).
        self.integrators_select = pn.widgets.CheckBoxGroup.from_param(
            state.param.integrators, inline=True, stylesheets=[".bk-input-group { flex-wrap: wrap; column-gap: 12px; }"])
        self.design_select = pn.widgets.RadioButtonGroup.from_param(state.param.design)
        self.seed_input = pn.widgets.IntInput.from_param(state.param.seed, label="Seed")
        self.shared_toggle = pn.widgets.Checkbox.from_param(
            state.param.shared_initial_conditions, label="Same initial conditions for every member"
        )
        self.outcome_select = pn.widgets.Select.from_param(state.param.outcome, label="Outcome plotted")
        self.run_button = pn.widgets.Button(label="Run ensemble", color="primary")
        self.run_button.on_click(self.runner.locked(lambda _: self.run()))
        self.progress = pn.indicators.Progress(value=0, max=1, sizing_mode="stretch_width", bar_color="primary")
        self.run_status = pn.pane.Markdown("Not run yet: press **Run ensemble**.", sizing_mode="stretch_width")
        self.queue_status = self.queue_line(name="ensembles-queue")
        self.download = pn.widgets.FileDownload(
            callback=self._download_file, filename="ensemble.npz", label="Download data (.npz)",
            disabled=True, sizing_mode="stretch_width",
        )
        self.speedup_status = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.message = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")

    def _build_layout(self):
        label = partial(pn.pane.Markdown, margin=(4, 10, -8, 10))
        controls = pn.Column(
            pn.Card(
                self.system_select, self.num_bodies_input, self.members_input,
                self.steps_input, self.dt_input, self.softening_input,
                title="Members", collapsible=True, sizing_mode="stretch_width",
            ),
            pn.Card(
                self.parameter_select, self.low_input, self.high_input, self.log_toggle,
                label("Integrators"), self.integrators_select, label("Design"), self.design_select,
                self.seed_input, self.shared_toggle,
                title="Sweep", collapsible=True, sizing_mode="stretch_width",
            ),
            self.run_button, self.progress, self.queue_status, self.run_status, self.download,
            width=340, scroll=True, sizing_mode="stretch_height",
        )
        main = pn.Column(
            self.message,
            self.speedup_status,
            pn.Row(self.outcome_select),
            pn.pane.Bokeh(self.outcome_figure),
            pn.pane.Bokeh(self.speedup_figure),
            pn.pane.Markdown("### Outcomes over the ensemble", margin=(10, 10, 0, 10)),
            pn.Row(*(pn.pane.Bokeh(fig) for fig in self.hist_figures.values())),
            sizing_mode="stretch_both", scroll=True,
        )
        return pn.Row(controls, main, sizing_mode="stretch_both")

    def __panel__(self):
        return self._layout

    # ------------------------------------------------------------------ messages
    def _on_error(self, *_events) -> None:
        if self.state.error:
            self.notify(f"Refused: {self.state.error}. The previous result is kept.")

    def _on_system(self, *_events) -> None:
        scalable = self.state.scalable
        self.num_bodies_input.disabled = not scalable
        swept = self.state.parameter != NO_SWEEP
        for widget in (self.low_input, self.high_input, self.log_toggle):
            widget.disabled = not swept

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """Validate and start a run (a worker thread when served; blocking otherwise)."""
        if self.job_running("ensemble", message="An ensemble is already running."):
            return
        spec = self.state.prepare()
        if spec is None:
            return  # refused: _on_error showed why, the previous result stays
        self.message.visible = False
        self.run_button.disabled = True
        self.state.running = True
        self.progress.value, self.progress.max = 0, 1
        self.run_status.object = f"Compiling and running {spec.num_members} members ..."
        loop_members = self.state.loop_members

        def work(job):
            def progress(done, total):
                self.in_session(partial(self._set_progress, done, total))

            def should_stop():
                # Between bounded pieces: raises Cancelled once the tab closed or Stop was
                # pressed, and gives the slot to another session's waiting job first.
                job.checkpoint()
                return False

            return self.state.compute(spec, loop_members=loop_members, progress=progress, should_stop=should_stop)

        self.run_job("ensemble", work, done=lambda outcome: self._after_run(outcome, None),
                     failed=lambda error: self._after_run(None, f"{type(error).__name__}: {error}"))

    def _set_progress(self, done: int, total: int) -> None:
        self.progress.max = max(total, 1)
        self.progress.value = done
        if done < total:
            self.run_status.object = f"Chunk {done} of {total} done ..."
        else:
            self.run_status.object = "Timing the Python-loop baseline ..."

    def _after_run(self, outcome, failure: str | None) -> None:
        self.run_button.disabled = False
        self.state.running = False
        if outcome is None:
            self.run_status.object = "Run failed; the previous result is kept."
            self.notify(f"The ensemble failed: {failure}. The previous result is kept.")
            return
        self.state.accept(*outcome)

    # ------------------------------------------------------------------ drawing
    def _on_result(self, *_events) -> None:
        state = self.state
        result = state.result
        spec = result.spec
        self.message.visible = False
        self.progress.max = max(result.timing.get("num_chunks", 1), 1)
        self.progress.value = self.progress.max
        finite = int(result.summaries["finite"].sum())
        self.run_status.object = (
            f"**Done:** {spec.num_members} members of {spec.system} (N = {spec.num_bodies}), t_end = "
            f"{spec.t_end:.4g}; {finite} of {spec.num_members} stayed finite."
        )
        self.speedup_status.object = f"**{state.speedup_message}**"
        s = state.speedup
        loop_label = state.loop_label
        self.speedup_figure.y_range.factors = [loop_label, "vmap runner"]
        self.speedup_source.data = {
            "method": ["vmap runner", loop_label],
            "seconds": [s["vmap_run_s"], s["loop_extrapolated_s"]],
            "color": ["#1f4e79", "#999999"],
        }
        ratio = s["ratio"]
        verdict = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
        self.speedup_figure.title.text = f"Wall time of this ensemble, compile excluded: the vmap runner is {verdict}"
        for name, log in HISTOGRAMS.items():
            values = result.summaries[name]
            values = _log10(values) if log else values
            values = values[np.isfinite(values)]
            if values.size:
                low, high = float(values.min()), float(values.max())
                if high <= low:
                    low, high = low - 0.5, high + 0.5
                counts, edges = np.histogram(values, bins=HISTOGRAM_BINS, range=(low, high))
            else:
                counts, edges = np.zeros(0, int), np.zeros(1)
            self.hist_sources[name].data = {"left": edges[:-1], "right": edges[1:], "count": counts}
        self.download.filename = state.download_name()
        self.download.disabled = False
        self._draw_outcome()

    def _draw_outcome(self, *_events) -> None:
        state = self.state
        result = state.result
        if result is None:
            return
        outcome = state.outcome
        name = state.swept_name()
        y_raw = result.summaries[outcome]
        log_y = outcome in _LOG_OUTCOMES
        log_x = name is not None and state.swept_log_scale()
        x_raw = state.swept_values() if name is not None else result.table.ic_index.astype(float)
        x = _log10(x_raw) if log_x else x_raw
        y = _log10(y_raw) if log_y else y_raw
        integrators = result.table.integrator
        slopes = state.slopes(outcome) if (log_x and log_y) else {}
        labels = np.array([
            f"{n} (slope {slopes[n]:.2f})" if np.isfinite(slopes.get(n, np.nan)) else str(n) for n in integrators
        ])
        self.points.data = {
            "x": x, "y": y, "value_x": x_raw, "value_y": y_raw, "integrator": integrators, "label": labels,
            "color": [integrator_color(n) for n in integrators],
            "member": np.arange(result.num_members),
        }
        fits = {"xs": [], "ys": [], "color": []}
        for integrator, slope in slopes.items():
            chosen = (integrators == integrator) & np.isfinite(x) & np.isfinite(y)
            if not np.isfinite(slope) or chosen.sum() < 2:
                continue
            intercept = np.mean(y[chosen] - slope * x[chosen])
            ends = np.array([x[chosen].min(), x[chosen].max()])
            fits["xs"].append(ends.tolist())
            fits["ys"].append((slope * ends + intercept).tolist())
            fits["color"].append(integrator_color(integrator))
        self.fits.data = fits
        x_label = "member (seed index)" if name is None else ("log10 " if log_x else "") + (
            "dt (step taken)" if name == "dt" else name)
        y_label = ("log10 " if log_y else "") + outcome_label(outcome)
        self.outcome_figure.xaxis.axis_label = x_label
        self.outcome_figure.yaxis.axis_label = y_label
        self.outcome_figure.title.text = f"{outcome_label(outcome)} against {name or 'member'}"
        self.outcome_subtitle.text = (
            "dashed: least-squares power law per integrator"
            + (" (slope = measured order of the integrator)" if name == "dt" else "") if fits["xs"] else
            f"{result.num_members} members, one point each"
        )

    # ------------------------------------------------------------------ download
    def _download_file(self):
        if self.state.result is None:
            self.notify("Run an ensemble first; there is nothing to download yet.", level="info")
            return None
        return io.BytesIO(self.state.download_bytes())
