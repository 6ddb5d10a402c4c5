"""Inference tab: HMC on an N-body posterior, every gradient of every leapfrog path shown live.

Plain Bokeh models in ``pn.pane.Bokeh`` (browser tests read them by name, all
``inference-*``): traces per parameter with the truth, the current proposal's leapfrog path
in a chosen parameter plane with gradient arrows (green accepted, red rejected), the gradient
norm along the path, the Hamiltonian error per proposal with divergences flagged, posterior
histograms with the truth, a diagnostics table (acceptance, ESS, R-hat) and the
finite-difference panel. Sampling runs as jobs of the view's session runner (app/runtime/),
one chunk of draws each; each chunk reaches the page under the document lock.
"""

from __future__ import annotations

import html
import math
from functools import partial

import numpy as np
import panel as pn
import param
from bokeh.models import Arrow, BoxAnnotation, ColumnDataSource, NormalHead, Span, Whisker
from bokeh.plotting import figure

from nbody_explorer.runtime.view import SessionView
from nbody_explorer.state.inference import COST_DIMS, InferenceState

__all__ = ["InferenceView"]

CHAIN_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]
ACCEPT_COLOR, REJECT_COLOR, TRUTH_COLOR = "#2ca02c", "#d62728", "#000000"
MAX_PARAMETERS = 5  # the largest parameter set: 3 masses + G + a velocity
RECENT_PROPOSALS = 40  # proposal end points kept in the path plane
ARROW_FRACTION = 0.15  # longest gradient arrow as a fraction of the plane's span
_TOOLS = "pan,wheel_zoom,box_zoom,reset,save"
_COST_KINDS = ("forward", "autodiff", "finite_difference")  # GradientCost's timings, in the cost plot


class InferenceView(SessionView):
    """The Inference tab over one :class:`~nbody_explorer.state.inference.InferenceState` per session."""

    state = param.ClassSelector(class_=InferenceState, doc="Inference settings and results shown here.")

    def __init__(self, state: InferenceState | None = None, **params):
        super().__init__(label="Inference", state=state or InferenceState(), **params)
        self._run_epoch = 0  # bumped by Start and Stop: a chunk of an older run is dropped
        self.runner.on_destroyed(self._on_session_destroyed)
        self._build_plots()
        self._build_widgets()
        self._layout = self._build_layout()
        self.state.param.watch(self.runner.locked(self._on_plane), ["plane_x", "plane_y"])
        self.state.param.watch(self._on_status, ["status", "running"])

    # ------------------------------------------------------------------ plots
    def _build_plots(self) -> None:
        # The diagnostics table is HTML (a Bokeh DataTable in a Panel pane did not redraw its
        # cells after the first update here); "inference-stats" holds the same numbers as a
        # named source drawn as truth-vs-mean points, so tests can read them from the page.
        self.stats_source = ColumnDataSource(
            {"parameter": [], "truth": [], "mean": [], "sd": [], "ess_bulk": [], "r_hat": []}, name="inference-stats"
        )
        self.stats_table = pn.pane.HTML("", name="inference-stats-table", sizing_mode="stretch_width")

        trace_columns = {"iteration": []}
        for i in range(MAX_PARAMETERS):
            for c in range(len(CHAIN_COLORS)):
                trace_columns[f"p{i}_c{c}"] = []
        self.trace_source = ColumnDataSource(trace_columns, name="inference-trace")
        self.trace_figures, self.truth_spans, self.hist_sources, self.hist_figures = [], [], [], []
        self.warmup_boxes, self.hist_truth = [], []
        for i in range(MAX_PARAMETERS):
            fig = figure(
                name=f"inference-trace-{i}", height=150, sizing_mode="stretch_width", tools=_TOOLS,
                x_axis_label="iteration", y_axis_label=f"p{i}",
            )
            for c, color in enumerate(CHAIN_COLORS):
                fig.line("iteration", f"p{i}_c{c}", source=self.trace_source, color=color, alpha=0.8)
            span = Span(location=0, dimension="width", line_color=TRUTH_COLOR, line_dash="dashed", line_width=2)
            box = BoxAnnotation(left=0, right=0, fill_color="#bbbbbb", fill_alpha=0.25)
            fig.add_layout(span)
            fig.add_layout(box)
            self.trace_figures.append(fig)
            self.truth_spans.append(span)
            self.warmup_boxes.append(box)
            hist_source = ColumnDataSource({"left": [], "right": [], "count": []}, name=f"inference-hist-{i}")
            hist = figure(
                name=f"inference-hist-figure-{i}", height=150, width=220, tools=_TOOLS, x_axis_label=f"p{i}",
            )
            hist.quad(left="left", right="right", bottom=0, top="count", source=hist_source, fill_color="#1f77b4",
                      line_color="white", alpha=0.7)
            truth = Span(location=0, dimension="height", line_color=TRUTH_COLOR, line_dash="dashed", line_width=2)
            hist.add_layout(truth)
            self.hist_sources.append(hist_source)
            self.hist_figures.append(hist)
            self.hist_truth.append(truth)

        # Leapfrog path of the current proposal in a parameter plane, with gradient arrows.
        self.path_source = ColumnDataSource({"x": [], "y": [], "step": []}, name="inference-path")
        self.path_line_source = ColumnDataSource({"x": [], "y": [], "color": []}, name="inference-path-line")
        self.arrow_source = ColumnDataSource({"x0": [], "y0": [], "x1": [], "y1": []}, name="inference-path-arrows")
        self.proposal_source = ColumnDataSource({"x": [], "y": [], "color": []}, name="inference-proposals")
        self.draws_plane_source = ColumnDataSource({"x": [], "y": []}, name="inference-plane-draws")
        self.truth_point = ColumnDataSource({"x": [], "y": []}, name="inference-plane-truth")
        plane = figure(
            name="inference-path-figure", title="Current proposal: leapfrog path and gradient of log p",
            height=380, sizing_mode="stretch_width", tools=_TOOLS,
        )
        plane.scatter("x", "y", source=self.draws_plane_source, size=3, color="#999999", alpha=0.4,
                      legend_label="draws")
        plane.scatter("x", "y", source=self.proposal_source, size=6, color="color", alpha=0.6, marker="x",
                      legend_label="proposal ends")
        plane.multi_line("x", "y", source=self.path_line_source, color="color", line_width=2)
        plane.scatter("x", "y", source=self.path_source, size=6, color="#333333", legend_label="leapfrog steps")
        plane.scatter("x", "y", source=self.truth_point, size=14, marker="star", color="gold",
                      line_color="black", legend_label="truth")
        plane.add_layout(Arrow(
            end=NormalHead(size=6, fill_color="#9467bd", line_color="#9467bd"), x_start="x0", y_start="y0",
            x_end="x1", y_end="y1", source=self.arrow_source, line_color="#9467bd", line_width=1.5,
        ))
        stats_glyph = plane.scatter("truth", "mean", source=self.stats_source, size=0, alpha=0)
        stats_glyph.visible = False  # carries the named diagnostics source into the document
        plane.x_range.only_visible = plane.y_range.only_visible = True
        plane.legend.location = "top_left"
        plane.legend.background_fill_alpha = 0.5
        plane.legend.click_policy = "hide"
        self.plane = plane

        self.gradnorm_source = ColumnDataSource({"step": [], "norm": []}, name="inference-gradnorm")
        gradnorm = figure(
            name="inference-gradnorm-figure", title="|grad log p| along the current path", height=190,
            sizing_mode="stretch_width", y_axis_type="log", tools=_TOOLS, x_axis_label="leapfrog step",
        )
        gradnorm.line("step", "norm", source=self.gradnorm_source, color="#9467bd", line_width=2)
        gradnorm.scatter("step", "norm", source=self.gradnorm_source, color="#9467bd", size=6)
        self.gradnorm = gradnorm

        self.energy_source = ColumnDataSource({"iteration": [], "delta": [], "color": []}, name="inference-energy")
        self.divergence_source = ColumnDataSource({"iteration": [], "delta": []}, name="inference-divergences")
        energy = figure(
            name="inference-energy-figure", title="Hamiltonian error per proposal (red x: divergent)",
            height=190, sizing_mode="stretch_width", tools=_TOOLS, x_axis_label="iteration",
            y_axis_label="H(end) - H(start)",
        )
        energy.scatter("iteration", "delta", source=self.energy_source, color="color", size=3, alpha=0.6)
        energy.scatter("iteration", "delta", source=self.divergence_source, color=REJECT_COLOR, size=10, marker="x")
        self.energy = energy

        self.fd_source = ColumnDataSource({"h": [], "error": []}, name="inference-fd-sweep")
        fd = figure(
            name="inference-fd-error-figure", title="Finite-difference gradient: relative error vs h",
            x_axis_type="log", y_axis_type="log", height=260, sizing_mode="stretch_width", tools=_TOOLS,
            x_axis_label="h", y_axis_label="|g_FD - g_AD| / |g_AD|",
        )
        fd.line("h", "error", source=self.fd_source, line_width=2)
        fd.scatter("h", "error", source=self.fd_source, size=6)
        self.fd_figure = fd
        # Medians of the repeats, with the fastest and slowest call (whiskers): one call is noise.
        self.cost_source = ColumnDataSource(
            {"d": [], **{f"{kind}_{stat}": [] for kind in _COST_KINDS for stat in ("ms", "min_ms", "max_ms")}},
            name="inference-fd-cost",
        )
        cost = figure(
            name="inference-fd-cost-figure", title="Cost per call vs number of parameters d (median, whiskers: fastest–slowest)",
            x_axis_type="log", y_axis_type="log", height=260, sizing_mode="stretch_width", tools=_TOOLS,
            x_axis_label="d", y_axis_label="ms per call",
        )
        for column, color, label in (
            ("forward_ms", "#7f7f7f", "one log density"),
            ("autodiff_ms", "#2ca02c", "autodiff gradient"),
            ("finite_difference_ms", "#d62728", "finite differences (2d evaluations)"),
        ):
            cost.line("d", column, source=self.cost_source, color=color, line_width=2, legend_label=label)
            cost.scatter("d", column, source=self.cost_source, color=color, size=7)
            kind = column.removesuffix("_ms")
            cost.add_layout(Whisker(base="d", lower=f"{kind}_min_ms", upper=f"{kind}_max_ms", source=self.cost_source,
                                    line_color=color))
        cost.legend.location = "top_left"
        self.cost_figure = cost

    # ------------------------------------------------------------------ widgets
    def _build_widgets(self) -> None:
        s = self.state
        self.problem_select = pn.widgets.Select.from_param(s.param.problem, label="System")
        self.parameters_select = pn.widgets.Select.from_param(s.param.parameters, label="Parameters")
        self.noise_input = pn.widgets.FloatInput.from_param(s.param.noise, label="Noise (length units)", step=0.005)
        self.num_obs_input = pn.widgets.IntInput.from_param(s.param.num_obs, label="Observations")
        self.metric_select = pn.widgets.Select.from_param(s.param.metric, label="Metric")
        self.auto_step = pn.widgets.Checkbox.from_param(s.param.auto_step_size, label="Tune step size (dual averaging)")
        self.step_input = pn.widgets.FloatInput.from_param(s.param.step_size, label="Step size", step=0.001)
        self.leapfrog_input = pn.widgets.IntSlider.from_param(s.param.leapfrog_steps, label="Leapfrog steps L")
        self.chains_input = pn.widgets.IntInput.from_param(s.param.num_chains, label="Chains")
        self.warmup_input = pn.widgets.IntInput.from_param(s.param.num_warmup, label="Warm-up")
        self.samples_input = pn.widgets.IntInput.from_param(s.param.num_samples, label="Samples")
        self.seed_input = pn.widgets.IntInput.from_param(s.param.seed, label="Seed")
        self.plane_x = pn.widgets.Select.from_param(s.param.plane_x, label="Plane x")
        self.plane_y = pn.widgets.Select.from_param(s.param.plane_y, label="Plane y")
        self.start_button = pn.widgets.Button(label="▶ Start sampling", color="success")
        self.stop_button = pn.widgets.Button(label="■ Stop", color="danger", disabled=True)
        self.fd_button = pn.widgets.Button(label="Measure finite differences", color="primary")
        self.start_button.on_click(self.runner.locked(self._on_start))
        self.stop_button.on_click(self.runner.locked(self._on_stop))
        self.fd_button.on_click(self._on_measure)
        self.status = pn.pane.HTML(
            html.escape(self.state.status), name="inference-status", css_classes=["inference-status"],
            sizing_mode="stretch_width",
        )
        self.queue_status = self.queue_line(name="inference-queue")
        self.summary = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.fd_status = pn.pane.Markdown("Measured on this machine when you press the button.")
        self.message = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")

    def _build_layout(self):
        controls = pn.Column(
            pn.Row(self.start_button, self.stop_button),
            pn.Card(self.problem_select, self.parameters_select, self.noise_input, self.num_obs_input,
                    self.seed_input, title="Problem", sizing_mode="stretch_width"),
            pn.Card(self.metric_select, self.auto_step, self.step_input, self.leapfrog_input, self.chains_input,
                    self.warmup_input, self.samples_input, title="Sampler", sizing_mode="stretch_width"),
            pn.Card(self.plane_x, self.plane_y, title="Path plane", sizing_mode="stretch_width"),
            pn.pane.Markdown(
                "Priors: log m ~ Normal(log nominal, 0.5); log G ~ Normal(0, 0.5); "
                "vx ~ Normal(nominal, 0.1). Likelihood: every observed coordinate ~ Normal(simulated, noise). "
                "With G among the parameters only the products G·m are constrained by positions: the "
                "chains wander along that ridge, and R-hat says so."
            ),
            width=320, scroll=True, sizing_mode="stretch_height",
        )
        # Only the panels of the problem's parameters are in the page: a hidden figure's ranges
        # are NaN, and BokehJS logs "could not set initial ranges" for it at every render.
        self.trace_panes = [pn.pane.Bokeh(f, sizing_mode="stretch_width") for f in self.trace_figures]
        self.hist_panes = [pn.pane.Bokeh(f) for f in self.hist_figures]
        self.trace_column = pn.Column(*self.trace_panes, sizing_mode="stretch_width")
        self.hist_row = pn.Row(*self.hist_panes)
        live = pn.Column(
            self.status, self.queue_status, self.message, self.summary, self.stats_table,
            pn.Row(
                pn.Column(pn.pane.Bokeh(self.plane, sizing_mode="stretch_width"),
                          pn.pane.Bokeh(self.gradnorm, sizing_mode="stretch_width"),
                          pn.pane.Bokeh(self.energy, sizing_mode="stretch_width"), sizing_mode="stretch_width"),
                self.trace_column, sizing_mode="stretch_width",
            ),
            self.hist_row,
            sizing_mode="stretch_both",
        )
        fd_panel = pn.Column(
            self.fd_button, self.fd_status,
            pn.Row(pn.pane.Bokeh(self.fd_figure, sizing_mode="stretch_width"),
                   pn.pane.Bokeh(self.cost_figure, sizing_mode="stretch_width"), sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
        self._show_parameter_panels()
        return pn.Row(
            controls,
            pn.Tabs(("Sampling", live), ("Finite differences", fd_panel), sizing_mode="stretch_both", dynamic=False),
            sizing_mode="stretch_both",
        )

    def __panel__(self):
        return self._layout

    # ------------------------------------------------------------------ session
    def _on_session_destroyed(self) -> None:
        self._run_epoch += 1  # the runner has cancelled the running chunk; nothing more is drawn

    def _on_status(self, *_events) -> None:
        self.write_in_order(self._draw_status)

    def _draw_status(self) -> None:
        self.status.object = html.escape(self.state.status)  # may quote an error's text
        running = self.state.running
        self.start_button.disabled = running
        self.stop_button.disabled = not running

    # ------------------------------------------------------------------ sampling
    def _on_start(self, *_events) -> None:
        if self.state.running:
            return
        try:
            run = self.state.start()
        except ValueError as error:
            self.notify(f"Refused: {error}")
            return
        self.message.visible = False
        self._reset_plots()
        self._start_worker(run)

    def _start_worker(self, run) -> None:
        """Warm-up, then one chunk of draws per pool job: the slot is free between chunks
        (other sessions take their turn), Stop cancels the chunk being computed, and the next
        chunk is asked for only once this one is drawn (no backlog for a slow browser)."""
        self._run_epoch += 1
        epoch = self._run_epoch
        if not self.served:
            try:
                self._apply_chunk(run.warmup())
                while not run.done:
                    self._apply_chunk(run.next_chunk())
            except Exception as error:  # noqa: BLE001 - reported in the page; the session lives on
                self._failed(str(error))
                return
            self._finished(False)
            return
        self._submit_chunk(epoch, run, warmup=True)

    def _submit_chunk(self, epoch: int, run, *, warmup: bool) -> None:
        def work(job):
            job.checkpoint()
            # The warm-up runs as blocks of transitions; before each, a closed tab or Stop
            # ends the job and a waiting session gets the slot.
            return run.warmup(before_block=lambda _done: job.checkpoint()) if warmup else run.next_chunk()

        self.run_job("chunk", work, done=partial(self._chunk_done, epoch, run),
                     failed=partial(self._chunk_failed, epoch))

    def _chunk_done(self, epoch: int, run, chunk) -> None:
        if epoch != self._run_epoch:
            return  # stopped meanwhile
        self._apply_chunk(chunk)
        if run.done:
            self._finished(False)
        else:
            self._submit_chunk(epoch, run, warmup=False)

    def _chunk_failed(self, epoch: int, error: BaseException) -> None:
        if epoch != self._run_epoch:
            return
        self._failed(str(error))

    def _on_stop(self, *_events) -> None:
        if not self.state.running:
            return
        self._run_epoch += 1
        self.cancel_job("chunk")  # a chunk being computed stops at its end; it is not drawn
        self._finished(True)

    def _failed(self, text: str) -> None:
        self.state.finish(f"Stopped: {text}")
        self.notify(f"Sampling failed: {text}")

    def _finished(self, stopped: bool) -> None:
        self.state.finish(
            f"Stopped by the user after {self.state.num_post_warmup} draws per chain." if stopped else None
        )

    def _reset_plots(self) -> None:
        self.trace_source.data = {key: [] for key in self.trace_source.data}
        for source in (self.path_source, self.path_line_source, self.arrow_source, self.proposal_source,
                       self.draws_plane_source, self.gradnorm_source, self.energy_source, self.divergence_source):
            source.data = {key: [] for key in source.data}
        for source in self.hist_sources:
            source.data = {key: [] for key in source.data}
        self._show_parameter_panels()

    def _show_parameter_panels(self) -> None:
        problem = self.state.problem_obj
        names = problem.parameter_names if problem is not None else self.state.parameter_names()
        truth = problem.truth if problem is not None else [math.nan] * len(names)
        shown = len(names)
        if len(self.trace_column.objects) != shown:
            self.trace_column.objects = self.trace_panes[:shown]
            self.hist_row.objects = self.hist_panes[:shown]
        for i in range(MAX_PARAMETERS):
            visible = i < shown
            self.trace_figures[i].visible = self.hist_figures[i].visible = visible
            if visible:
                self.trace_figures[i].yaxis.axis_label = names[i]
                self.trace_figures[i].title.text = f"trace of {names[i]} (dashed: truth; grey: warm-up)"
                self.hist_figures[i].xaxis.axis_label = names[i]
                if math.isfinite(truth[i]):
                    self.truth_spans[i].location = float(truth[i])
                    self.hist_truth[i].location = float(truth[i])
        if problem is not None:
            self._update_truth_point()
        for box in self.warmup_boxes:
            box.right = self.state.num_warmup

    def _apply_chunk(self, chunk) -> None:
        """Append a chunk to the state and to every plot (session thread, document locked)."""
        self._draw_chunk(chunk)

    def _draw_chunk(self, chunk) -> None:
        state = self.state
        state.record(chunk)
        position = chunk.position
        chains, k, d = position.shape
        if k == 0:
            return
        rows = {"iteration": list(range(chunk.start, chunk.start + k))}
        for key in self.trace_source.data:
            if key == "iteration":
                continue
            i, c = (int(part[1:]) for part in key.split("_"))
            rows[key] = position[c, :, i].tolist() if (i < d and c < chains) else [math.nan] * k
        self.trace_source.stream(rows)
        delta = np.asarray(chunk.info.hamiltonian_error)
        divergent = np.asarray(chunk.info.is_divergent)
        iterations = np.broadcast_to(np.arange(chunk.start, chunk.start + k), (chains, k))
        colors = np.broadcast_to(np.array(CHAIN_COLORS[:chains])[:, None], (chains, k))
        finite = np.isfinite(delta)
        # Clip for display: a divergent step's error can be 1e300; the red x marks it.
        shown = np.clip(np.where(finite, delta, 0.0), -50.0, 50.0)
        self.energy_source.stream({
            "iteration": iterations[finite].tolist(), "delta": shown[finite].tolist(), "color": colors[finite].tolist(),
        })
        if divergent.any():
            self.divergence_source.stream({
                "iteration": iterations[divergent].tolist(), "delta": np.clip(np.nan_to_num(delta[divergent], posinf=50.0),
                                                                               -50.0, 50.0).tolist(),
            })
        self._draw_path(chunk)
        self._draw_histograms()
        self._draw_stats()

    def _plane_indices(self):
        problem = self.state.problem_obj
        names = list(problem.parameter_names)
        return names.index(self.state.plane_x), names.index(self.state.plane_y)

    def _update_truth_point(self) -> None:
        ix, iy = self._plane_indices()
        truth = self.state.problem_obj.truth
        self.truth_point.data = {"x": [float(truth[ix])], "y": [float(truth[iy])]}
        self.plane.xaxis.axis_label = self.state.plane_x
        self.plane.yaxis.axis_label = self.state.plane_y

    def _on_plane(self, *_events) -> None:
        problem = self.state.problem_obj
        if problem is None or not {self.state.plane_x, self.state.plane_y} <= set(problem.parameter_names):
            return
        self._update_truth_point()
        if self.state.last_info is not None:
            self._draw_path(None)

    def _draw_path(self, chunk) -> None:
        """The latest proposal of chain 0: path, gradient arrows, accept/reject colour."""
        state = self.state
        info = state.last_info
        if info is None or state.problem_obj is None:
            return
        ix, iy = self._plane_indices()
        path = np.asarray(info.path_position[0, -1])  # [L + 1, d]
        grad = np.asarray(info.path_gradient[0, -1])
        accepted = bool(np.asarray(info.is_accepted[0, -1]))
        x, y = path[:, ix], path[:, iy]
        self.path_source.data = {"x": x.tolist(), "y": y.tolist(), "step": list(range(len(x)))}
        color = ACCEPT_COLOR if accepted else REJECT_COLOR
        self.path_line_source.data = {"x": [x.tolist()], "y": [y.tolist()], "color": [color]}
        # Arrows: direction and relative size of the gradient in the plane, the longest one a
        # fixed fraction of the plane's current span (the raw gradient is in 1/parameter units).
        draws = state.posterior_draws()[0] if state.num_post_warmup else state.draws[0]
        span_x = max(np.ptp(np.concatenate([x, draws[-200:, ix]])), 1e-12)
        span_y = max(np.ptp(np.concatenate([y, draws[-200:, iy]])), 1e-12)
        gx, gy = grad[:, ix] / span_x, grad[:, iy] / span_y  # in plane-span units
        longest = max(float(np.max(np.hypot(gx, gy))), 1e-300)
        scale = ARROW_FRACTION / longest
        self.arrow_source.data = {
            "x0": x.tolist(), "y0": y.tolist(),
            "x1": (x + scale * gx * span_x).tolist(), "y1": (y + scale * gy * span_y).tolist(),
        }
        self.gradnorm_source.data = {
            "step": list(range(len(x))), "norm": np.linalg.norm(np.asarray(info.path_gradient[0, -1]), axis=-1).tolist()
        }
        if chunk is not None:
            ends = np.asarray(chunk.info.path_position[0, :, -1])
            accepted_all = np.asarray(chunk.info.is_accepted[0])
            self.proposal_source.stream(
                {"x": ends[:, ix].tolist(), "y": ends[:, iy].tolist(),
                 "color": [ACCEPT_COLOR if a else REJECT_COLOR for a in accepted_all]},
                rollover=RECENT_PROPOSALS,
            )
        # Recent draws (post-warm-up once there are some, so the plane zooms to the posterior).
        recent = state.posterior_draws() if state.num_post_warmup else state.draws
        recent = recent[:, -300:]
        self.draws_plane_source.data = {"x": recent[..., ix].ravel().tolist(), "y": recent[..., iy].ravel().tolist()}

    def _draw_histograms(self) -> None:
        draws = self.state.posterior_draws()
        if draws.shape[1] < 2:
            return
        for i in range(draws.shape[2]):
            values = draws[..., i].ravel()
            counts, edges = np.histogram(values, bins=30)
            self.hist_sources[i].data = {"left": edges[:-1].tolist(), "right": edges[1:].tolist(),
                                         "count": counts.tolist()}

    def _draw_stats(self) -> None:
        d = self.state.diagnostics
        rows = d.get("parameters", {})
        self.stats_source.data = {
            "parameter": list(rows),
            **{column: [row[column] for row in rows.values()] for column in ("truth", "mean", "sd", "ess_bulk", "r_hat")},
        }
        acceptance = d.get("acceptance_rate", math.nan)
        self.stats_table.object = _stats_html(rows)
        self.summary.object = (
            f"**Acceptance rate** {acceptance:.3f} · **divergences** {d.get('divergences', 0)} "
            f"(warm-up {d.get('warmup_divergences', 0)}) · **draws per chain** {d.get('num_draws', 0)}"
            if math.isfinite(acceptance) else
            f"Warm-up: {self.state.num_warmup_done} iterations, {d.get('warmup_divergences', 0)} divergent."
        )

    # ------------------------------------------------------------------ finite differences
    def _on_measure(self, *_events) -> None:
        self.fd_button.disabled = True
        self.fd_status.object = "Measuring the error sweep at the current point ..."

        def work(job):
            sweep = self.state.gradient_error_sweep()
            self.in_session(partial(self._show_sweep, sweep))
            job.checkpoint()  # between the sweep and the cost measurements
            return self.state.gradient_costs(COST_DIMS)

        def done(costs):
            self._show_costs(costs)
            self.fd_button.disabled = False

        def failed(error):
            self.notify(f"Finite-difference measurement failed: {error}")
            self.fd_button.disabled = False

        self.run_job("finite differences", work, done=done, failed=failed)

    def _show_sweep(self, sweep) -> None:
        errors = np.asarray(sweep["relative_error"])
        positive = errors > 0
        self.fd_source.data = {"h": np.asarray(sweep["h"])[positive].tolist(), "error": errors[positive].tolist()}
        best = int(np.argmin(errors))
        self.fd_status.object = (
            f"Best h = {sweep['h'][best]:.1e}: relative error {errors[best]:.1e}. Truncation error grows as h², "
            f"round-off as 1/h. Now timing gradients at d = {', '.join(map(str, COST_DIMS))} (compiling each) ..."
        )

    def _show_costs(self, costs) -> None:
        data = {"d": [c.num_parameters for c in costs]}
        medians = {}
        for kind in _COST_KINDS:
            # Every steady call when recorded (median and spread), else the one best time.
            times = [np.asarray(getattr(c, f"{kind}_times_s") or (getattr(c, f"{kind}_s"),)) for c in costs]
            data[f"{kind}_ms"] = [1e3 * float(np.median(t)) for t in times]
            data[f"{kind}_min_ms"] = [1e3 * float(t.min()) for t in times]
            data[f"{kind}_max_ms"] = [1e3 * float(t.max()) for t in times]
            medians[kind] = data[f"{kind}_ms"][-1]
        self.cost_source.data = data
        last = costs[-1]
        calls = len(last.forward_times_s) or 1
        self.fd_status.object = (
            f"{self.fd_status.object.split(' Now timing')[0]} At d = {last.num_parameters} (medians of "
            f"{calls} calls; whiskers: fastest to slowest): one log density {medians['forward']:.3g} ms "
            f"({data['forward_min_ms'][-1]:.3g}–{data['forward_max_ms'][-1]:.3g}), autodiff gradient "
            f"{medians['autodiff'] / medians['forward']:.1f}× it, finite differences "
            f"{medians['finite_difference'] / medians['forward']:.0f}× (2d = {2 * last.num_parameters} evaluations)."
        )


def _fmt(value, digits: int) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _stats_html(rows: dict) -> str:
    """Diagnostics as an HTML table: truth, posterior mean and sd, bulk ESS, split R-hat."""
    head = "".join(f"<th>{h}</th>" for h in ("parameter", "truth", "mean", "sd", "ESS (bulk)", "R-hat"))
    body = "".join(
        f"<tr><td>{name}</td><td>{_fmt(r['truth'], 5)}</td><td>{_fmt(r['mean'], 5)}</td>"
        f"<td>{_fmt(r['sd'], 5)}</td><td>{_fmt(r['ess_bulk'], 0)}</td><td>{_fmt(r['r_hat'], 3)}</td></tr>"
        for name, r in rows.items()
    )
    return (
        '<table class="inference-stats" style="width:100%;text-align:right;border-collapse:collapse">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )
