"""Emulator tab: train a fast surrogate of the simulator on an ensemble and check it honestly.

Plain Bokeh models in ``pn.pane.Bokeh`` (the browser tests read them by name, all
``emulator-*``): predicted against simulated on the held-out test members with ±2 sd
whiskers, the learning curve (test RMSE against training members), and the prediction with
its ±2 sd band along one swept input with the simulated members of that slice on top and the
live "run the simulator here" checks in red. Generating, training and checking are jobs of
the session's :class:`~nbody_explorer.runtime.session.SessionRunner` (the process-wide fair pool; each
progress report is a checkpoint, so closing the tab stops the job); progress and results
reach the page under the document lock, so the server never blocks.
"""

from __future__ import annotations

import io
from functools import partial

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, Title, Whisker
from bokeh.plotting import figure

from nbody_explorer.limits import LIMITS
from nbody_explorer.runtime.messages import escape_markdown
from nbody_explorer.runtime.view import SessionView
from nbody_explorer.state.emulator import EmulatorState

__all__ = ["EmulatorView"]

_TOOLS = "pan,wheel_zoom,box_zoom,reset,save"
_BLUE, _RED, _GREY = "#1f4e79", "#d62728", "#7f7f7f"


class EmulatorView(SessionView):
    """The Emulator tab over one :class:`~nbody_explorer.state.emulator.EmulatorState` per session."""

    state = param.ClassSelector(class_=EmulatorState, doc="Emulator data, settings and results shown here.")

    def __init__(self, state: EmulatorState | None = None, **params):
        super().__init__(label="emulator", state=state or EmulatorState(), **params)
        self._build_plots()
        self._build_widgets()
        self._layout = self._build_layout()
        self.state.param.watch(self._on_data, ["data_count"])
        self.state.param.watch(self._on_trained, ["train_count"])
        self.state.param.watch(self.runner.locked(self._draw), ["output", "axis"])
        self.state.param.watch(self._draw_check, ["check_count"])
        self.state.param.watch(self._draw_posterior, ["posterior_count"])
        self.state.param.watch(self._on_error, ["error_count"])

    # ------------------------------------------------------------------ plots
    def _build_plots(self) -> None:
        self.scatter_source = ColumnDataSource({"simulated": [], "predicted": [], "lower": [], "upper": []},
                                               name="emulator-scatter")
        self.diagonal = ColumnDataSource({"x": [], "y": []}, name="emulator-diagonal")
        scatter = figure(name="emulator-scatter-figure", title="Train an emulator to see its test points", height=360,
                         width=420, tools=_TOOLS, x_axis_label="simulated", y_axis_label="emulator (mean ± 2 sd)")
        scatter.line("x", "y", source=self.diagonal, color=_GREY, line_dash="dashed")
        scatter.add_layout(Whisker(source=self.scatter_source, base="simulated", lower="lower", upper="upper",
                                   line_color=_BLUE, line_alpha=0.35))
        scatter.scatter("simulated", "predicted", source=self.scatter_source, color=_BLUE, size=6, alpha=0.8)
        # The counts on a line of their own: in the title of a 420 px plot they were cut off
        # ("... (97% inside ±2 s", issue 28 item 7).
        self.scatter_subtitle = Title(text="", text_font_style="normal", text_font_size="12px",
                                      name="emulator-scatter-subtitle")
        scatter.add_layout(self.scatter_subtitle, "above")
        self.scatter_figure = scatter

        self.curve_source = ColumnDataSource({"members": [], "rmse": []}, name="emulator-curve")
        curve = figure(name="emulator-curve-figure", title="Learning curve", height=360, width=380, tools=_TOOLS,
                       x_axis_type="log", y_axis_type="log", x_axis_label="training members",
                       y_axis_label="test RMSE")
        curve.line("members", "rmse", source=self.curve_source, color=_BLUE, line_width=2)
        curve.scatter("members", "rmse", source=self.curve_source, color=_BLUE, size=8)
        self.curve_figure = curve

        self.band_source = ColumnDataSource({"x": [], "mean": [], "lower": [], "upper": []}, name="emulator-band")
        self.sim_source = ColumnDataSource({"x": [], "y": []}, name="emulator-simulated")
        self.check_source = ColumnDataSource({"x": [], "y": []}, name="emulator-check")
        band = figure(name="emulator-band-figure", title="Prediction ± 2 sd", height=380, width=820, tools=_TOOLS)
        band.varea("x", "lower", "upper", source=self.band_source, fill_color=_BLUE, fill_alpha=0.2,
                   legend_label="emulator ± 2 sd")
        band.line("x", "mean", source=self.band_source, color=_BLUE, line_width=2, legend_label="emulator mean")
        band.scatter("x", "y", source=self.sim_source, color=_GREY, size=5, alpha=0.7, legend_label="simulated (slice)")
        band.scatter("x", "y", source=self.check_source, color=_RED, size=8, marker="diamond",
                     legend_label="run here (fresh)")
        band.legend.location = "top_left"
        self.band_figure = band

        self.posterior_source = ColumnDataSource({"x": [], "density": []}, name="emulator-posterior")
        posterior = figure(name="emulator-posterior-figure", title="Posterior from one observed value", height=260,
                           width=820, tools=_TOOLS, y_axis_label="posterior mass per grid cell")
        posterior.varea("x", 0, "density", source=self.posterior_source, fill_color=_BLUE, fill_alpha=0.3)
        posterior.line("x", "density", source=self.posterior_source, color=_BLUE, line_width=2)
        self.posterior_figure = posterior

    # ------------------------------------------------------------------ widgets
    def _build_widgets(self) -> None:
        s = self.state
        self.gen_bodies = pn.widgets.IntInput.from_param(s.param.gen_bodies, label="Bodies N")
        self.gen_members = pn.widgets.IntInput.from_param(s.param.gen_members, label="Members M")
        self.gen_steps = pn.widgets.IntInput.from_param(s.param.gen_steps, label="Steps (dt 0.02)")
        self.generate_button = pn.widgets.Button(label="Run softening × virial-ratio sweep", color="primary")
        self.generate_button.on_click(self.runner.locked(lambda _: self.generate()))
        # The label is the file box's accessible name too (an unlabelled <input type=file> failed axe's "label").
        self.upload = pn.widgets.FileInput(
            accept=".npz", multiple=False, sizing_mode="stretch_width",
            label=f"…or upload an ensemble npz (≤ {LIMITS.max_upload_bytes / 1e6:g} MB)",
        )
        # An empty file arrives as value None with a file name: watch both (as the Simulate tab).
        self.upload.param.watch(self.runner.locked(self._on_upload), ["value", "filename"])
        self.dataset_status = pn.pane.Markdown("No ensemble yet.", sizing_mode="stretch_width")
        self.networks_input = pn.widgets.IntInput.from_param(s.param.num_networks, label="Networks")
        self.width_input = pn.widgets.IntInput.from_param(s.param.width, label="Width")
        self.steps_input = pn.widgets.IntInput.from_param(s.param.max_steps, label="Max training steps")
        self.curve_toggle = pn.widgets.Checkbox.from_param(s.param.learning_curve, label="Learning curve (3 trainings)")
        self.train_button = pn.widgets.Button(label="Train emulator", color="primary", disabled=True)
        self.train_button.on_click(self.runner.locked(lambda _: self.train()))
        self.progress = pn.indicators.Progress(value=0, max=1000, sizing_mode="stretch_width", bar_color="primary")
        self.status = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.output_select = pn.widgets.Select.from_param(s.param.output, label="Output")
        self.axis_select = pn.widgets.Select.from_param(s.param.axis, label="Along")
        self.check_input = pn.widgets.FloatInput.from_param(s.param.check_value, label="Value", format="0.[0000]")
        self.check_button = pn.widgets.Button(label="Run the simulator here", disabled=True)
        self.check_button.on_click(self.runner.locked(lambda _: self.check()))
        self.check_status = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.observed_input = pn.widgets.FloatInput.from_param(s.param.observed_value, label="Observed output",
                                                               format="0.[0000]")
        self.infer_button = pn.widgets.Button(label="Infer from this observation", disabled=True)
        self.infer_button.on_click(self.runner.locked(lambda _: self.infer()))
        self.posterior_status = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.metrics = pn.pane.Markdown("", sizing_mode="stretch_width", name="emulator-metrics")
        self.accuracy_button = pn.widgets.Button(label="Measure accuracy against the simulator", disabled=True)
        self.accuracy_button.on_click(self.runner.locked(lambda _: self.measure_accuracy()))
        self.accuracy_table = pn.pane.Markdown("", sizing_mode="stretch_width", name="emulator-accuracy")
        self.state.param.watch(lambda *_: self._draw_accuracy(), ["accuracy_count", "train_count"])
        self.download = pn.widgets.FileDownload(callback=self._download_file, filename="emulator.npz",
                                                label="Download model (.npz)", disabled=True, sizing_mode="stretch_width")
        self.message = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")

    def _build_layout(self):
        controls = pn.Column(
            pn.Card(self.gen_bodies, self.gen_members, self.gen_steps, self.generate_button,
                    self.upload,
                    self.dataset_status, title="Ensemble", collapsible=True, sizing_mode="stretch_width"),
            pn.Card(self.networks_input, self.width_input, self.steps_input, self.curve_toggle,
                    title="Network", collapsible=True, sizing_mode="stretch_width"),
            self.train_button, self.progress, self.status, self.download,
            width=340, scroll=True, sizing_mode="stretch_height",
        )
        main = pn.Column(
            self.message, self.metrics, self.accuracy_button, self.accuracy_table,
            pn.Row(self.output_select, self.axis_select),
            pn.Row(pn.pane.Bokeh(self.scatter_figure), pn.pane.Bokeh(self.curve_figure)),
            pn.pane.Bokeh(self.band_figure),
            pn.Row(self.check_input, self.check_button),
            self.check_status,
            pn.pane.Markdown("### Inference with the emulator as forward model", margin=(10, 10, 0, 10)),
            pn.Row(self.observed_input, self.infer_button),
            self.posterior_status,
            pn.pane.Bokeh(self.posterior_figure),
            sizing_mode="stretch_both", scroll=True,
        )
        return pn.Row(controls, main, sizing_mode="stretch_both")

    def __panel__(self):
        return self._layout

    # ------------------------------------------------------------------ plumbing
    def _on_error(self, *_events) -> None:
        if self.state.error:
            self.notify(f"Refused: {self.state.error}")

    def _busy(self) -> bool:
        return self.job_running("emulator", message="Busy: wait for the current job to finish.")

    def _start(self, work, done, failure: str) -> None:
        """Run ``work(job)`` on the session's runner; ``done(result)`` or a message after."""
        self.generate_button.disabled = self.train_button.disabled = True
        self.check_button.disabled = self.infer_button.disabled = self.accuracy_button.disabled = True
        self.state.running = True
        self.run_job("emulator", work, done=done,
                     failed=lambda error: self._failed(f"{failure}: {type(error).__name__}: {error}"))

    def _progress(self, job, fraction: float, text: str) -> None:
        """From the job's thread: a checkpoint (stops a closed tab's job), then the bar."""
        job.checkpoint()
        self.in_session(partial(self._set_progress, fraction, text))

    def _finish(self) -> None:
        self.state.running = False
        self.generate_button.disabled = False
        self.train_button.disabled = self.state.data is None
        self.check_button.disabled = self.infer_button.disabled = self.state.emulator is None
        self.accuracy_button.disabled = self.state.emulator is None

    def _set_progress(self, fraction: float, text: str) -> None:
        self.progress.value = int(1000 * fraction)
        self.status.object = escape_markdown(text)

    # ------------------------------------------------------------------ actions
    def generate(self) -> None:
        """Run the built-in sweep as the training ensemble."""
        if self._busy():
            return
        try:
            spec = self.state.generate_spec()
        except ValueError as error:
            self.state.refuse(str(error))
            return
        self.message.visible = False
        self.progress.value = 0
        self.status.object = f"Running {spec.num_members} members ..."

        def work(job):
            return self.state.compute_generate(
                progress=lambda d, t: self._progress(job, d / max(t, 1), f"chunk {d} of {t}"),
                should_stop=job.cancelled)

        self._start(work, self._after_generate, "The ensemble failed")

    def _after_generate(self, outcome) -> None:
        self.state.accept_data(*outcome)
        self._finish()

    def _failed(self, text: str) -> None:
        self._finish()
        self.status.object = "Failed; the previous result is kept."
        self.notify(text)

    def _on_upload(self, *_events) -> None:
        if self._busy():
            return
        self.message.visible = False
        self.state.load_upload(self.upload.value, self.upload.filename)
        self._finish()

    def train(self) -> None:
        """Train on the current ensemble (a worker thread when served)."""
        if self._busy():
            return
        if self.state.data is None:
            self.notify("Run or upload an ensemble first.", level="info")
            return
        try:
            self.state.config()
        except ValueError as error:
            self.state.refuse(str(error))
            return
        self.message.visible = False
        self.progress.value = 0
        self.status.object = "Compiling and training ..."

        def work(job):
            return self.state.compute_training(progress=lambda f, t: self._progress(job, f, t),
                                               should_stop=job.cancelled)

        self._start(work, self._after_train, "Training failed")

    def _after_train(self, outcome) -> None:
        self.state.accept_training(*outcome)
        self._finish()

    def check(self) -> None:
        """Run fresh simulations at the chosen point and compare with the band."""
        if self._busy() or self.state.emulator is None:
            return
        try:
            point = self.state.check_point()
        except ValueError as error:
            self.state.refuse(str(error))
            return
        self.check_status.object = "Simulating 8 fresh members here ..."

        self._start(lambda job: self.state.compute_check(point), self._after_check, "The check failed")

    def infer(self) -> None:
        """Grid posterior of the band's input from the observed value (a runner job)."""
        if self._busy() or self.state.emulator is None:
            return
        self.posterior_status.object = "Computing the posterior ..."
        self._start(lambda job: self.state.compute_posterior(), self._after_posterior, "Inference failed")

    def _after_posterior(self, posterior) -> None:
        self.state.accept_posterior(posterior)
        self._finish()

    def _draw_posterior(self, *_events) -> None:
        posterior = self.state.posterior
        if posterior is None:
            self.posterior_source.data = {"x": [], "density": []}
            self.posterior_status.object = ""
            return
        name = posterior.names[0]
        self.posterior_source.data = {"x": posterior.grids[0], "density": posterior.marginals[0]}
        lo, hi = posterior.interval[0]
        self.posterior_figure.title.text = f"Posterior of {name} from {self.state.output} = {self.state.observed_value:.4g}"
        self.posterior_figure.xaxis.axis_label = name
        self.posterior_status.object = escape_markdown(
            f"{name} = {posterior.mean[0]:.4g} ± {posterior.sd[0]:.3g} (95 % interval [{lo:.4g}, {hi:.4g}]), "
            f"{posterior.forward_evaluations} emulator evaluations in {posterior.seconds * 1000:.0f} ms; uniform prior "
            "over the trained range, likelihood N(mean, sd²) from the emulator.")

    def measure_accuracy(self) -> None:
        """Replicas on a grid over the box: the emulator's error of the mean beside the baselines."""
        if self._busy() or self.state.emulator is None:
            return
        g, r = self.state.ACCURACY_GRID, self.state.ACCURACY_REPLICAS
        self.accuracy_table.object = f"Simulating {g ** len(self.state.data.input_names) * r} members on a grid ..."
        self._start(lambda job: self.state.compute_accuracy(should_stop=job.cancelled),
                    self._after_accuracy, "The accuracy check failed")

    def _after_accuracy(self, outcome) -> None:
        self.state.accept_accuracy(outcome)
        self._finish()

    def _draw_accuracy(self) -> None:
        accuracy = self.state.accuracy
        if accuracy is None:
            self.accuracy_table.object = ""
            return
        names = list(next(iter(accuracy["models"].values())))
        rows = [f"Error of the mean / scatter (debiased, at {len(accuracy['points'])} points x "
                f"{accuracy['replicas']} fresh simulations; 0 = as good as infinitely many runs; 95 % bootstrap "
                "interval over points). Baselines fitted on the same training split:", "",
                "| model | " + " | ".join(escape_markdown(n) for n in names) + " |", "|---|" + "---|" * len(names)]
        for label, metrics in accuracy["models"].items():
            rows.append(f"| {label} | " + " | ".join(
                f"{metrics[n]['ratio']:.2f} ({metrics[n]['low']:.2f}–{metrics[n]['high']:.2f})" for n in names) + " |")
        self.accuracy_table.object = "\n".join(rows)

    def _after_check(self, outcome) -> None:
        self.state.accept_check(outcome)
        self._finish()

    # ------------------------------------------------------------------ drawing
    def _on_data(self, *_events) -> None:
        data = self.state.data
        self.progress.value = 1000
        dropped = f", {data.dropped_nonfinite} non-finite dropped" if data.dropped_nonfinite else ""
        if data.dropped_unconverged:
            dropped += (f", {data.dropped_unconverged} dropped over the energy-error target "
                        f"{data.energy_tolerance:g} (unconverged runs)")
        self.dataset_status.object = escape_markdown(
            f"{self.state.dataset_name}: {data.num_members} members{dropped}; inputs "
            f"{', '.join(data.input_names)}; outputs {', '.join(data.output_names)}")
        self.status.object = "Ready: press **Train emulator**."
        for source in (self.scatter_source, self.curve_source, self.band_source, self.sim_source, self.check_source,
                       self.posterior_source):
            source.data = {key: [] for key in source.data}
        self.metrics.object = ""
        self.check_status.object = self.posterior_status.object = ""
        self.train_button.disabled = False
        self.check_button.disabled = self.infer_button.disabled = True
        self.download.disabled = True

    def _on_trained(self, *_events) -> None:
        report = self.state.report
        sizes = self.state.emulator.header["training"]["split_sizes"]
        self.progress.value = 1000
        self.status.object = (f"**Trained** in {report.seconds['train']:.1f} s ({report.steps_run} steps; train "
                              f"{sizes['train']}, validation {sizes['validation']}, test {sizes['test']} members).")
        rows = ["| output | MLP test RMSE | in ±2 sd | GP RMSE | GP in ±2 sd |", "|---|---|---|---|---|"]
        for name, m in report.metrics["mlp"].items():
            g = report.metrics.get("gp", {}).get(name)
            gp = f"{g['rmse']:.4g} | {g['coverage_2sigma']:.0%}" if g else "– | –"
            rows.append(f"| {escape_markdown(name)} | {m['rmse']:.4g} | {m['coverage_2sigma']:.0%} | {gp} |")
        self.metrics.object = "\n".join(rows)
        self.download.filename = self.state.download_name()
        self.download.disabled = False
        self.check_source.data = {"x": [], "y": []}
        self.check_status.object = ""
        self._draw_posterior()
        self._draw()

    def _draw(self, *_events) -> None:
        state = self.state
        if state.emulator is None or state.output is None:
            return
        points = state.test_points()
        self.scatter_source.data = {"simulated": points["simulated"], "predicted": points["predicted"],
                                    "lower": points["predicted"] - 2 * points["sd"],
                                    "upper": points["predicted"] + 2 * points["sd"]}
        ends = [float(np.min(points["simulated"])), float(np.max(points["simulated"]))]
        self.diagonal.data = {"x": ends, "y": ends}
        inside = np.mean(np.abs(points["predicted"] - points["simulated"]) <= 2 * points["sd"])
        self.scatter_figure.title.text = f"{state.output}: test members"
        self.scatter_subtitle.text = f"{len(points['simulated'])} members, {inside:.0%} inside ±2 sd"
        self.scatter_figure.xaxis.axis_label = f"simulated {state.output}"
        curve = [row for row in state.curve if np.isfinite(row["rmse"][state.output])]
        self.curve_source.data = {"members": [r["members"] for r in curve],
                                  "rmse": [r["rmse"][state.output] for r in curve]}
        self.curve_figure.title.text = f"Learning curve: {state.output}"
        band = state.band()
        self.band_source.data = {"x": band["x"], "mean": band["mean"], "lower": band["mean"] - 2 * band["sd"],
                                 "upper": band["mean"] + 2 * band["sd"]}
        self.sim_source.data = {"x": band["sim_x"], "y": band["sim_y"]}
        others = ", ".join(f"{n} = {v:.3g}" for n, v in state.fixed_values().items() if n != state.axis)
        self.band_figure.title.text = f"{state.output} against {state.axis}" + (f" ({others})" if others else "")
        self.band_figure.xaxis.axis_label = state.axis + (" (log spacing)" if band["log_x"] else "")
        self.band_figure.yaxis.axis_label = state.output
        self.check_source.data = {"x": [], "y": []}

    def _draw_check(self, *_events) -> None:
        check = self.state.last_check
        if check is None:
            return
        x = check["point"][self.state.axis]
        if check["output"] == self.state.output:
            self.check_source.data = {"x": [x] * len(check["simulated"]), "y": check["simulated"]}
        self.check_status.object = escape_markdown(
            f"At {self.state.axis} = {x:.4g}: emulator {check['predicted']:.4g} ± {check['sd']:.3g} (sd); "
            f"{check['inside']} of {check['replicas']} fresh simulations inside ±2 sd."
        )

    def _download_file(self):
        if self.state.emulator is None:
            self.notify("Train an emulator first.", level="info")
            return None
        return io.BytesIO(self.state.download_bytes())
